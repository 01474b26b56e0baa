package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// Duration is a positive length of time. Its text form is a Go duration
// ("36h", "90m") or whole weeks and days, optionally followed by a Go
// duration ("8d", "2w", "1w2d", "1d12h").
type Duration time.Duration

// ParseDuration parses the text form of a Duration. Zero and negative
// durations are errors.
func ParseDuration(s string) (Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errors.New("empty duration; use e.g. 8d, 2w or 36h")
	}
	if strings.HasPrefix(in, "-") {
		return 0, fmt.Errorf("duration %q is negative; use a positive one such as 8d", s)
	}
	var total time.Duration
	rest := in
	for _, u := range []struct {
		suffix byte
		unit   time.Duration
	}{{'w', week}, {'d', day}} {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i >= len(rest) || rest[i] != u.suffix {
			continue
		}
		n, err := strconv.ParseInt(rest[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("duration %q is too large", s)
		}
		total += time.Duration(n) * u.unit
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration; use e.g. 8d, 2w, 36h or 1d12h", s)
		}
		total += d
	}
	if total <= 0 {
		return 0, fmt.Errorf("duration %q is not positive; use e.g. 8d", s)
	}
	return Duration(total), nil
}

// String renders whole days as "Nd" and anything else as a Go duration.
func (d Duration) String() string {
	if d > 0 && time.Duration(d)%day == 0 {
		return strconv.FormatInt(int64(time.Duration(d)/day), 10) + "d"
	}
	return time.Duration(d).String()
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

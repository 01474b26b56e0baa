package config

import (
	"errors"
	"strconv"
	"strings"
)

// ErrConfig is matched (errors.Is) by every error from this package, so the
// CLI can map them all to the usage/configuration exit code.
var ErrConfig = errors.New("configuration error")

// Warning is a problem that does not stop a run but should be read.
type Warning string

// Error is one configuration problem: where it is, what is wrong and what to
// do about it. It renders as
//
//	config.yaml:7: destinations[1].bukcet: unknown key; did you mean "bucket"?
type Error struct {
	File    string // the config file, "" when the problem is not in one
	Line    int    // 1-based line in File, 0 if none
	Key     string // dotted key such as "destinations[1].bucket", "" if none
	Problem string // what is wrong
	Fix     string // what to do; may be ""
	Err     error  // underlying cause, if any (for errors.Is/As)
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Problem)
	if e.Fix != "" {
		b.WriteString("; " + e.Fix)
	}
	return b.String()
}

// Is makes every *Error match ErrConfig.
func (e *Error) Is(target error) bool { return target == ErrConfig }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// errs collects problems so they can all be reported at once.
type errs []error

func (l *errs) add(e *Error) { *l = append(*l, e) }

func (l errs) join() error { return errors.Join(l...) }

package config

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name, in string
		want     time.Duration
		wantErr  bool
	}{
		{"days are 24 hours", "8d", 8 * 24 * time.Hour, false},
		{"weeks are 7 days", "2w", 14 * 24 * time.Hour, false},
		{"a Go duration is accepted", "36h", 36 * time.Hour, false},
		{"days combine with a Go duration", "1d12h", 36 * time.Hour, false},
		{"weeks combine with days", "1w2d", 9 * 24 * time.Hour, false},
		{"zero is refused", "0", 0, true},
		{"zero days are refused", "0d", 0, true},
		{"a negative duration is refused", "-1d", 0, true},
		{"text is refused", "abc", 0, true},
		{"an empty string is refused", "", 0, true},
		{"a fractional day is refused", "1.5d", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseDuration(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if time.Duration(got) != tt.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, time.Duration(got), tt.want)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"whole days render as days", 8 * 24 * time.Hour, "8d"},
		{"whole weeks render as days", 14 * 24 * time.Hour, "14d"},
		{"other durations render as Go durations", 36 * time.Hour, "36h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Duration(tt.in).String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

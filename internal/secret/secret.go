// Package secret owns the one type that carries secret values (passwords,
// DSNs, keys) through keyescrow, and the scrubber that removes any secret
// that still slips into text bound for a log, an error or stdout.
//
// A Value never prints itself: fmt verbs, slog, JSON and encoding.Text all see
// "[REDACTED]". The only way to the bytes is Reveal, so every place that uses
// a secret is greppable.
package secret

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Redacted is what a Value shows wherever it is printed.
const Redacted = "[REDACTED]"

// Value holds a secret string. The zero Value is empty.
//
// The string sits behind a pointer so that the verbs fmt never routes through
// Format (%p) and a Value inside a struct's unexported field (which fmt
// prints by reflection) show an address, never the secret.
type Value struct {
	v *string
}

// New wraps s.
func New(s string) Value { return Value{v: &s} }

// Reveal returns the secret itself. Call it only where the secret is used.
func (s Value) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// Empty reports whether the secret is the empty string.
func (s Value) Empty() bool { return s.Reveal() == "" }

// String implements fmt.Stringer.
func (s Value) String() string { return Redacted }

// GoString implements fmt.GoStringer so %#v redacts too.
func (s Value) GoString() string { return Redacted }

// Format implements fmt.Formatter: every verb prints Redacted.
func (s Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue implements slog.LogValuer.
func (s Value) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON implements json.Marshaler.
func (s Value) MarshalJSON() ([]byte, error) { return json.Marshal(Redacted) }

// MarshalText implements encoding.TextMarshaler.
func (s Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

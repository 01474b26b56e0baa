package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

const pw = "hunter2-Pa55!"

func TestValueRedactsUnderEveryVerb(t *testing.T) {
	v := New(pw)
	type holder struct {
		Name     string
		Password Value
	}
	h := holder{Name: "x", Password: v}
	for _, format := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%d", "%10s"} {
		for name, arg := range map[string]any{"value": v, "pointer": &v, "struct": h, "struct pointer": &h, "slice": []Value{v}, "map": map[string]Value{"k": v}} {
			got := fmt.Sprintf(format, arg)
			if strings.Contains(got, pw) || strings.Contains(got, "hunter") || !strings.Contains(got, Redacted) {
				t.Errorf("Sprintf(%q, %s) = %q", format, name, got)
			}
		}
	}
	if got := fmt.Sprint(v); got != Redacted {
		t.Errorf("Sprint = %q", got)
	}
	if err := fmt.Errorf("connecting with %v", v); strings.Contains(err.Error(), pw) {
		t.Errorf("an error leaks: %v", err)
	}
}

func TestValueRedactsInSlog(t *testing.T) {
	handlers := map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			log := slog.New(h(&b)).With("dsn", New(pw))
			log.Info("connecting", "password", New(pw), slog.Group("g", "pw", New(pw)), slog.Any("any", New(pw)))
			if strings.Contains(b.String(), pw) || strings.Count(b.String(), Redacted) != 4 {
				t.Errorf("the %s log leaks or does not redact every attribute: %s", name, b.String())
			}
		})
	}
}

func TestValueRedactsInJSON(t *testing.T) {
	v := New(pw)
	doc, err := json.Marshal(struct {
		User     string
		Password Value
		Ptr      *Value
		Map      map[Value]Value
	}{"u", v, &v, map[Value]Value{v: v}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(doc), pw) || strings.Count(string(doc), Redacted) != 4 {
		t.Errorf("json = %s", doc)
	}
	text, err := v.MarshalText()
	if err != nil || string(text) != Redacted {
		t.Errorf("MarshalText = %q, %v", text, err)
	}
}

func TestRevealReturnsTheSecret(t *testing.T) {
	if got := New(pw).Reveal(); got != pw {
		t.Errorf("Reveal = %q", got)
	}
	if !(Value{}).Empty() || New("").Reveal() != "" || New("x").Empty() {
		t.Error("Empty is wrong")
	}
}

func TestScrubberReplacesEveryFormOfASecret(t *testing.T) {
	s := NewScrubber()
	s.Add(New("p@ss w'rd/1"), New("ab"), New(""))
	cases := []struct{ name, in, want string }{
		{"the raw value", "pw=p@ss w'rd/1;", "pw=[REDACTED];"},
		{"the query-escaped value", "sqlserver://h?password=p%40ss+w%27rd%2F1&x=1", "sqlserver://h?password=[REDACTED]&x=1"},
		{"the path-escaped value", "p%40ss%20w%27rd%2F1", "[REDACTED]"},
		{"the user-info form", "sqlserver://sa:" + userInfo("p@ss w'rd/1") + "@h", "sqlserver://sa:[REDACTED]@h"},
		{"the quote-doubled T-SQL form", "PASSWORD = N'p@ss w''rd/1'", "PASSWORD = N'[REDACTED]'"},
		{"every occurrence", "p@ss w'rd/1 and p@ss w'rd/1", "[REDACTED] and [REDACTED]"},
		{"short secrets are not scrubbed", "ab cd", "ab cd"},
		{"text without secrets is untouched", "nothing here", "nothing here"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.String(tc.in); got != tc.want {
				t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// userInfo is p as a DSN's user info carries it.
func userInfo(p string) string {
	return strings.TrimPrefix(url.UserPassword("sa", p).String(), "sa:")
}

func TestScrubberReplacesLongerSecretsFirst(t *testing.T) {
	s := NewScrubber()
	s.Add(New("secret"))
	s.Add(New("secret-and-more"))
	if got := s.String("x secret-and-more y secret z"); got != "x [REDACTED] y [REDACTED] z" {
		t.Errorf("got %q: the longer secret was cut by the shorter one", got)
	}
	s2 := NewScrubber()
	s2.Add(New("secret-and-more"), New("secret"))
	if got := s2.String("secret-and-more"); got != Redacted {
		t.Errorf("got %q", got)
	}
}

func TestANilOrEmptyScrubberPassesTextThrough(t *testing.T) {
	var s *Scrubber
	s.Add(New("whatever"))
	if got := s.String("whatever"); got != "whatever" {
		t.Errorf("nil scrubber: %q", got)
	}
	if got := NewScrubber().String("whatever"); got != "whatever" {
		t.Errorf("empty scrubber: %q", got)
	}
}

func TestScrubberWriter(t *testing.T) {
	s := NewScrubber()
	s.Add(New(pw))
	var b bytes.Buffer
	w := s.Writer(&b)
	in := "line with " + pw + "\n"
	n, err := w.Write([]byte(in))
	if err != nil || n != len(in) {
		t.Errorf("Write = %d, %v; want %d, nil (the caller's length)", n, err, len(in))
	}
	if b.String() != "line with [REDACTED]\n" {
		t.Errorf("wrote %q", b.String())
	}
	if _, err := s.Writer(failWriter{}).Write([]byte("x")); err == nil {
		t.Error("a failing writer's error was swallowed")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

type stringer struct{}

func (stringer) String() string { return "stringer says " + pw }

func TestScrubberHandler(t *testing.T) {
	for name, mk := range map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			s := NewScrubber()
			s.Add(New(pw))
			var b bytes.Buffer
			log := slog.New(s.Handler(mk(&b)))
			log = log.With("dsn", "sqlserver://sa:"+pw+"@h", slog.Group("with", "pw", pw))
			log.WithGroup("grp").Info("message with "+pw,
				"str", pw,
				"err", fmt.Errorf("login failed: %s", pw),
				slog.Group("g", "inner", pw, slog.Group("deeper", "x", pw), "e", errors.New(pw)),
				"stringer", stringer{},
				"n", 42,
				"ok", true,
			)
			out := b.String()
			if strings.Contains(out, pw) {
				t.Fatalf("the handler leaked the secret:\n%s", out)
			}
			if got := strings.Count(out, Redacted); got != 9 {
				t.Errorf("%d redactions, want 9:\n%s", got, out)
			}
			for _, want := range []string{"42", "true", "stringer says", "login failed"} {
				if !strings.Contains(out, want) {
					t.Errorf("the log lost %q:\n%s", want, out)
				}
			}
			if !log.Enabled(t.Context(), slog.LevelInfo) || log.Enabled(t.Context(), slog.LevelDebug) {
				t.Error("Enabled does not follow the wrapped handler")
			}
		})
	}
}

func TestPointerVerbAndUnexportedFieldsNeverShowTheSecret(t *testing.T) {
	const pw = "Leak-Me-Not#1"
	type holder struct{ pw Value }
	for _, got := range []string{
		fmt.Sprintf("%p", New(pw)),
		fmt.Sprintf("%v", holder{New(pw)}),
		fmt.Sprintf("%+v", holder{New(pw)}),
		fmt.Sprintf("%#v", holder{New(pw)}),
	} {
		if strings.Contains(got, pw) {
			t.Errorf("the secret shows: %s", got)
		}
	}
	if New(pw).Reveal() != pw || (Value{}).Reveal() != "" || !(Value{}).Empty() {
		t.Error("Reveal/Empty changed")
	}
}

func TestScrubberCatchesJSONAndQuotedForms(t *testing.T) {
	const pw = `wörd&1<"x\y>`
	s := NewScrubber()
	s.Add(New(pw))
	enc, _ := json.Marshal(map[string]string{"k": pw})
	var plain strings.Builder
	e := json.NewEncoder(&plain)
	e.SetEscapeHTML(false)
	_ = e.Encode(pw)
	for _, text := range []string{string(enc), plain.String(), strconv.Quote(pw), strconv.QuoteToASCII(pw)} {
		if out := s.String(text); out == text || strings.Contains(out, "wörd") || strings.Contains(out, `w\u00f6rd`) {
			t.Errorf("not scrubbed: %s → %s", text, out)
		}
	}
}

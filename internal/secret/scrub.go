package secret

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// minScrubLen is the shortest secret the scrubber replaces: shorter strings
// would blank out ordinary words. Passwords SQL Server accepts are at least 8.
const minScrubLen = 4

// Scrubber replaces every registered secret (and its URL-escaped form, as it
// appears inside a DSN) with Redacted. It is the last line of defence: code
// must not put secrets into text in the first place.
type Scrubber struct {
	mu       sync.RWMutex
	replacer *strings.Replacer
	values   []string
}

// NewScrubber returns a scrubber that knows no secrets yet.
func NewScrubber() *Scrubber { return &Scrubber{} }

// Add registers secrets; empty or very short values are ignored.
func (s *Scrubber) Add(vals ...Value) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vals {
		if len(v.Reveal()) < minScrubLen {
			continue
		}
		s.values = append(s.values, variants(v.Reveal())...)
	}
	// Longer values first, so a secret that contains another is replaced whole.
	slices.SortFunc(s.values, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(s.values))
	for _, v := range s.values {
		pairs = append(pairs, v, Redacted)
	}
	s.replacer = strings.NewReplacer(pairs...)
}

// String returns text with every registered secret replaced.
func (s *Scrubber) String(text string) string {
	if s == nil {
		return text
	}
	s.mu.RLock()
	r := s.replacer
	s.mu.RUnlock()
	if r == nil {
		return text
	}
	return r.Replace(text)
}

// Writer wraps w so that everything written through it is scrubbed. Each
// Write is scrubbed on its own; callers write whole lines or documents.
func (s *Scrubber) Writer(w io.Writer) io.Writer { return scrubWriter{s: s, w: w} }

type scrubWriter struct {
	s *Scrubber
	w io.Writer
}

func (sw scrubWriter) Write(p []byte) (int, error) {
	out := sw.s.String(string(p))
	if _, err := io.WriteString(sw.w, out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Handler wraps an slog.Handler so that messages and string attributes are
// scrubbed before they are formatted.
func (s *Scrubber) Handler(h slog.Handler) slog.Handler { return scrubHandler{s: s, h: h} }

type scrubHandler struct {
	s *Scrubber
	h slog.Handler
}

func (sh scrubHandler) Enabled(ctx context.Context, l slog.Level) bool { return sh.h.Enabled(ctx, l) }

func (sh scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, sh.s.String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(sh.scrubAttr(a))
		return true
	})
	return sh.h.Handle(ctx, nr)
}

func (sh scrubHandler) scrubAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, sh.s.String(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]any, 0, len(attrs))
		for _, g := range attrs {
			out = append(out, sh.scrubAttr(g))
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, sh.s.String(err.Error()))
		}
		return slog.String(a.Key, sh.s.String(v.String()))
	default:
		return slog.Attr{Key: a.Key, Value: v}
	}
}

func (sh scrubHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = sh.scrubAttr(a)
	}
	return scrubHandler{s: sh.s, h: sh.h.WithAttrs(out)}
}

func (sh scrubHandler) WithGroup(name string) slog.Handler {
	return scrubHandler{s: sh.s, h: sh.h.WithGroup(name)}
}

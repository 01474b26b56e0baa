package cli

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"unicode"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/secret"
)

// newLogger builds the stderr logger; every record passes the scrubber.
func newLogger(w io.Writer, scrub *secret.Scrubber, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "text", "":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", format)
	}
	return slog.New(scrub.Handler(h)), nil
}

// logFailure reports a run's failure on stderr: as one plain line for people
// (cron mails it), or as a JSON log record for machines.
func (inv *invocation) logFailure(msg string, err error) {
	code := exitcode.Code(err)
	if strings.EqualFold(inv.logFormat, "json") {
		inv.log.Error(msg, "exit_code", code, "exit", exitcode.Name(code), "err", err.Error())
		return
	}
	fmt.Fprintln(inv.stderr, failureLine(msg, err))
}

// failureLine is a failure as exactly one line: the process's exit code and
// its name in front of the failure that carries that code, then every other
// failure of the run with its own code ("; also (exit 2, usage): …"). An
// error made of several (errors.Join: several destinations, or a check's
// SQL Server and destination parts) would otherwise print one line each,
// the first under the wrong label.
func failureLine(msg string, err error) string {
	type part struct {
		code int
		text string
	}
	var parts []part
	seen := map[string]bool{}
	var walk func(err error, inherited int)
	walk = func(err error, inherited int) {
		if err == nil {
			return
		}
		if e, ok := err.(*exitcode.Error); ok && e.Code > inherited {
			inherited = e.Code
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, inner := range j.Unwrap() {
				walk(inner, inherited)
			}
			return
		}
		// A wrapper that adds no words (exitcode.Error) may hide a join.
		if u, ok := err.(interface{ Unwrap() error }); ok {
			if inner := u.Unwrap(); inner != nil && inner.Error() == err.Error() {
				walk(inner, inherited)
				return
			}
		}
		code := exitcode.Code(err)
		if code == exitcode.Internal && inherited > code {
			code = inherited
		}
		text := oneLine(err.Error())
		if text == "" || seen[text] {
			return
		}
		seen[text] = true
		parts = append(parts, part{code, text})
	}
	walk(err, 0)
	code := exitcode.Code(err)
	// The process's code first, then the others from the most serious down.
	slices.SortStableFunc(parts, func(a, b part) int {
		return cmp.Compare(rank(b.code, code), rank(a.code, code))
	})
	var b strings.Builder
	fmt.Fprintf(&b, "keyescrow: %s (exit %d, %s)", msg, code, exitcode.Name(code))
	for i, p := range parts {
		if i == 0 && (p.code == code || len(parts) == 1) {
			b.WriteString(": " + p.text)
			continue
		}
		fmt.Fprintf(&b, "; also (exit %d, %s): %s", p.code, exitcode.Name(p.code), p.text)
	}
	return b.String()
}

// rank orders codes for failureLine: the process's own code first, then by
// size.
func rank(c, processCode int) int {
	if c == processCode {
		return 1 << 20
	}
	return c
}

// oneLine folds a message's line breaks and control characters into "; "
// and spaces.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i, l := range lines {
		lines[i] = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, strings.TrimSpace(l))
	}
	return strings.Join(slices.DeleteFunc(lines, func(l string) bool { return l == "" }), "; ")
}

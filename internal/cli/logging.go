package cli

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

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
	fmt.Fprintf(inv.stderr, "keyescrow: %s (exit %d, %s): %s\n", msg, code, exitcode.Name(code), err)
}

package cli

import (
	"context"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/deadline"
)

// limitsOf converts the configuration's timeouts section.
func limitsOf(cfg *config.Config) deadline.Limits {
	t := cfg.Timeouts
	return deadline.Limits{
		Connect: time.Duration(t.Connect), Request: time.Duration(t.Request),
		Idle: time.Duration(t.Idle), Run: time.Duration(t.Run),
	}
}

// withRun bounds ctx by timeouts.run, counted from the start of the
// command, and tells the App's RunLimit hook (the process watchdog). Call
// it once the configuration is loaded; before, the defaults apply.
func (inv *invocation) withRun(ctx context.Context) (context.Context, context.CancelFunc) {
	if inv.app.RunLimit != nil {
		inv.app.RunLimit(inv.limits.Run - time.Since(inv.began))
	}
	return deadline.WithRun(ctx, inv.began, inv.limits.Run)
}

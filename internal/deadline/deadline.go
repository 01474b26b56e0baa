// Package deadline owns the time limits of a run: the four limits of the
// configuration's timeouts section (connect, request, idle, run), the error
// that says which one was hit and which key to raise, an HTTP guard that
// every storage SDK request passes through (a per-attempt limit that
// covers the body, and an idle watchdog on request and response bodies),
// a storage.Backend decorator that bounds each operation and returns at
// its deadline even when the backend does not, and the last-resort
// watchdog that ends a process outliving its run.
//
// Nothing here decides an exit code: callers attach the code of the step
// that timed out (a destination transfer 5, SQL Server 3).
package deadline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Limits are the time limits of one run.
type Limits struct {
	// Connect bounds a TCP connect plus TLS handshake (and, for SQL
	// Server, the login).
	Connect time.Duration
	// Request bounds one storage operation (with the SDK's retries and
	// reading its body) and each attempt of it, and one SQL statement.
	Request time.Duration
	// Idle bounds how long no byte may move on a request or response
	// (waiting for the answer's first byte counts).
	Idle time.Duration
	// Run bounds the whole command.
	Run time.Duration
}

// The defaults of the configuration's timeouts section.
const (
	DefaultConnect = 30 * time.Second
	DefaultRequest = 2 * time.Minute
	DefaultIdle    = 30 * time.Second
	DefaultRun     = 10 * time.Minute
)

// Default returns the default limits.
func Default() Limits {
	return Limits{Connect: DefaultConnect, Request: DefaultRequest, Idle: DefaultIdle, Run: DefaultRun}
}

// orDefault fills zero limits with the defaults.
func (l Limits) orDefault() Limits {
	d := Default()
	if l.Connect <= 0 {
		l.Connect = d.Connect
	}
	if l.Request <= 0 {
		l.Request = d.Request
	}
	if l.Idle <= 0 {
		l.Idle = d.Idle
	}
	if l.Run <= 0 {
		l.Run = d.Run
	}
	return l
}

// The configuration keys of the limits, as messages name them.
const (
	KeyConnect = "timeouts.connect"
	KeyRequest = "timeouts.request"
	KeyIdle    = "timeouts.idle"
	KeyRun     = "timeouts.run"
)

// Error is a limit that was hit. It matches context.DeadlineExceeded and
// storage.ErrUnavailable with errors.Is, never context.Canceled (a timeout
// is not an interruption).
type Error struct {
	Key   string        // KeyConnect, KeyRequest, KeyIdle or KeyRun
	Limit time.Duration // the configured value
}

// NewError returns the error for the limit named by key.
func NewError(key string, limit time.Duration) *Error { return &Error{Key: key, Limit: limit} }

func (e *Error) Error() string {
	var what string
	switch e.Key {
	case KeyConnect:
		what = fmt.Sprintf("could not connect within %s", e.Limit)
	case KeyRequest:
		what = fmt.Sprintf("did not complete within %s", e.Limit)
	case KeyIdle:
		what = fmt.Sprintf("no byte moved for %s", e.Limit)
	case KeyRun:
		what = fmt.Sprintf("the run reached its limit of %s", e.Limit)
	default:
		what = fmt.Sprintf("%s reached", e.Limit)
	}
	return fmt.Sprintf("timed out: %s (%s; raise it, or %s, for a slow link)", what, e.Key, EnvName(e.Key))
}

// Is makes errors.Is(err, context.DeadlineExceeded) and
// errors.Is(err, storage.ErrUnavailable) hold.
func (e *Error) Is(target error) bool {
	return target == context.DeadlineExceeded || target == storage.ErrUnavailable
}

// Timeout marks it as a timeout for net.Error-style checks (SDK retryers).
func (e *Error) Timeout() bool { return true }

// Temporary lets SDK retryers retry an attempt that timed out.
func (e *Error) Temporary() bool { return true }

// EnvName is the environment variable that overrides a timeouts key.
func EnvName(key string) string {
	switch key {
	case KeyConnect:
		return "KEYESCROW_TIMEOUTS_CONNECT"
	case KeyRequest:
		return "KEYESCROW_TIMEOUTS_REQUEST"
	case KeyIdle:
		return "KEYESCROW_TIMEOUTS_IDLE"
	case KeyRun:
		return "KEYESCROW_TIMEOUTS_RUN"
	}
	return ""
}

// Of returns the limit err says was hit: the *Error in err's tree, else
// the cause of ctx when ctx ended with one. It returns nil when neither.
func Of(ctx context.Context, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if ctx != nil && ctx.Err() != nil && errors.As(context.Cause(ctx), &e) {
		return e
	}
	return nil
}

// WithRun bounds ctx by the run limit, counted from started; when it is
// hit, context.Cause names timeouts.run.
func WithRun(ctx context.Context, started time.Time, run time.Duration) (context.Context, context.CancelFunc) {
	return context.WithDeadlineCause(ctx, started.Add(run), NewError(KeyRun, run))
}

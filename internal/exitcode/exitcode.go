// Package exitcode owns the process exit codes of the contract (docs/exit-codes.md)
// and the error type that carries one. Code walks an error tree (wrapped and
// joined errors) and returns the largest code it finds, so a run with several
// failing destinations exits with the most serious one.
package exitcode

import (
	"context"
	"errors"
)

// The exit codes of the contract.
const (
	OK          = 0
	Internal    = 1
	Usage       = 2 // usage or configuration error, missing secret, weak password
	SQLServer   = 3 // connect, login, permission, BACKUP/RESTORE error
	Policy      = 4 // a destination does not meet policy; nothing was written to it
	Transfer    = 5 // upload or download failed
	Verify      = 6 // verification failed
	Locked      = 7 // another run holds the lock
	Stale       = 8 // verify: newest verified copy older than max_age
	Interrupted = 130
)

// Error attaches an exit code to an error.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Wrap returns err carrying code, or nil when err is nil.
func Wrap(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Code returns the exit code for err: 0 for nil, 130 when the run was
// interrupted, else the largest code attached anywhere in the error tree, and
// 1 (internal) when none is attached.
func Code(err error) int {
	if err == nil {
		return OK
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrInterrupted) {
		return Interrupted
	}
	if c := maxCode(err); c > 0 {
		return c
	}
	return Internal
}

// ErrInterrupted marks a run stopped by a signal.
var ErrInterrupted = errors.New("interrupted")

func maxCode(err error) int {
	best := 0
	var e *Error
	if errors.As(err, &e) && e.Code > best {
		best = e.Code
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, inner := range u.Unwrap() {
			if c := maxCode(inner); c > best {
				best = c
			}
		}
	case interface{ Unwrap() error }:
		if c := maxCode(u.Unwrap()); c > best {
			best = c
		}
	}
	return best
}

// Name is a short, stable word for a code, used in receipts and metrics.
func Name(code int) string {
	switch code {
	case OK:
		return "ok"
	case Usage:
		return "usage"
	case SQLServer:
		return "sqlserver"
	case Policy:
		return "policy"
	case Transfer:
		return "transfer"
	case Verify:
		return "verify"
	case Locked:
		return "locked"
	case Stale:
		return "stale"
	case Interrupted:
		return "interrupted"
	default:
		return "internal"
	}
}

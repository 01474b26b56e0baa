package exitcode

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestCode(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"no error is success", nil, OK},
		{"an error without a code is internal", boom, Internal},
		{"a wrapped code", Wrap(Verify, boom), Verify},
		{"a code inside fmt.Errorf %w", fmt.Errorf("archiving: %w", Wrap(Transfer, boom)), Transfer},
		{"a code under several layers", fmt.Errorf("a: %w", fmt.Errorf("b: %w", Wrap(Policy, boom))), Policy},
		{"a joined error picks the largest code", errors.Join(Wrap(Policy, boom), Wrap(Verify, boom), Wrap(Transfer, boom)), Verify},
		{"a join inside a wrap inside a join", errors.Join(Wrap(Usage, boom), fmt.Errorf("x: %w", errors.Join(boom, Wrap(Locked, boom)))), Locked},
		{"an outer code below an inner one", Wrap(Transfer, Wrap(Verify, boom)), Verify},
		{"an outer code above an inner one", Wrap(Verify, Wrap(Transfer, boom)), Verify},
		{"a join of uncoded errors is internal", errors.Join(boom, errors.New("bang")), Internal},
		{"a join with nils", errors.Join(nil, Wrap(SQLServer, boom)), SQLServer},
		{"a cancelled context is an interruption", context.Canceled, Interrupted},
		{"a wrapped cancellation is an interruption", fmt.Errorf("backup: %w", context.Canceled), Interrupted},
		{"a cancellation beats a larger code", errors.Join(Wrap(Verify, boom), context.Canceled), Interrupted},
		{"ErrInterrupted is an interruption", ErrInterrupted, Interrupted},
		{"an explicit 130", Wrap(Interrupted, boom), Interrupted},
		{"a deadline is not an interruption", context.DeadlineExceeded, Internal},
		{"a multi-%w Errorf picks the largest", fmt.Errorf("%w and %w", Wrap(Policy, boom), Wrap(Stale, boom)), Stale},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Code(tc.err); got != tc.want {
				t.Errorf("Code(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	if Wrap(Verify, nil) != nil {
		t.Error("Wrap(code, nil) is not nil")
	}
	boom := errors.New("boom")
	err := Wrap(Transfer, boom)
	if err.Error() != "boom" || !errors.Is(err, boom) {
		t.Errorf("Wrap changes the message or hides the cause: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != Transfer {
		t.Errorf("errors.As = %+v", e)
	}
}

func TestName(t *testing.T) {
	want := map[int]string{
		OK: "ok", Internal: "internal", Usage: "usage", SQLServer: "sqlserver", Policy: "policy",
		Transfer: "transfer", Verify: "verify", Locked: "locked", Stale: "stale", Interrupted: "interrupted",
		42: "internal", -1: "internal",
	}
	for code, name := range want {
		if got := Name(code); got != name {
			t.Errorf("Name(%d) = %q, want %q", code, got, name)
		}
	}
}

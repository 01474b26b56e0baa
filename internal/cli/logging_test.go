package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/exitcode"
)

func TestFailureLineIsOneLineWithTheRightLabelInFront(t *testing.T) {
	pw := exitcode.Wrap(exitcode.Usage, errors.New("backup.password: file /etc/pw does not exist; create it"))
	s3 := fmt.Errorf("s3: preflight failed: %w", exitcode.Wrap(exitcode.Transfer, errors.New("no usable AWS credentials")))
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"a single failure", pw,
			"keyescrow: check failed (exit 2, usage): backup.password: file /etc/pw does not exist; create it"},
		{"the largest code leads, the others follow with their own",
			errors.Join(pw, s3),
			"keyescrow: check failed (exit 5, transfer): s3: preflight failed: no usable AWS credentials; also (exit 2, usage): backup.password: file /etc/pw does not exist; create it"},
		{"a join under a code that adds no words keeps that code for its parts",
			exitcode.Wrap(exitcode.Policy, errors.Join(errors.New("a refused"), errors.New("b refused"))),
			"keyescrow: check failed (exit 4, policy): a refused; also (exit 4, policy): b refused"},
		{"a message with line breaks is folded",
			exitcode.Wrap(exitcode.SQLServer, errors.New("Msg 15247\nno permission\r\n\tgrant it")),
			"keyescrow: check failed (exit 3, sqlserver): Msg 15247; no permission; grant it"},
		{"an interruption leads",
			errors.Join(s3, fmt.Errorf("backup: %w", context.Canceled)),
			"keyescrow: check failed (exit 130, interrupted): backup: context canceled; also (exit 5, transfer): s3: preflight failed: no usable AWS credentials"},
		{"the same failure twice is said once", errors.Join(pw, pw),
			"keyescrow: check failed (exit 2, usage): backup.password: file /etc/pw does not exist; create it"},
		{"an error without a code is internal", errors.New("boom"),
			"keyescrow: check failed (exit 1, internal): boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := failureLine("check failed", tc.err)
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if strings.ContainsAny(got, "\r\n") {
				t.Errorf("more than one line: %q", got)
			}
		})
	}
}

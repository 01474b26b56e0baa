// Package testutil holds small helpers shared by tests and test servers:
// a skip that CI turns into a failure, and random names. It imports nothing
// of the project, so any test package may use it.
package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
)

// DisallowSkip is the variable CI sets to 1 so that a skipped test fails.
const DisallowSkip = "KEYESCROW_TEST_DISALLOW_SKIP"

// Skip skips t for the reason given (formatted like fmt.Sprintf), or fails
// it when KEYESCROW_TEST_DISALLOW_SKIP=1 (CI), so that a skip there is a
// failure.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv(DisallowSkip) == "1" {
		t.Fatalf("skip not allowed (%s=1): %s", DisallowSkip, reason)
	}
	t.Skip(reason)
}

// RandHex returns n random bytes as 2n hex digits, for unique names and
// throw-away secrets.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

package mssqltest

import (
	"os"
	"testing"
)

// skipOrFail skips the test, unless KEYESCROW_TEST_DISALLOW_SKIP=1 turns
// every skip into a failure (for CI that must run everything).
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("KEYESCROW_TEST_DISALLOW_SKIP") == "1" {
		t.Fatalf("KEYESCROW_TEST_DISALLOW_SKIP=1 but the test would skip: "+format, args...)
	}
	t.Skipf(format, args...)
}

package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestSkipFailsWhenSkipsAreDisallowed runs a test that skips in a child
// process, once with skips allowed and once under DisallowSkip=1.
func TestSkipFailsWhenSkipsAreDisallowed(t *testing.T) {
	if os.Getenv("TESTUTIL_CHILD") == "1" {
		Skip(t, "nothing to run against (%d)", 42)
		return
	}
	for _, tc := range []struct {
		disallow string
		fails    bool
		says     string
	}{
		{"", false, "nothing to run against (42)"},
		{"1", true, "skip not allowed (KEYESCROW_TEST_DISALLOW_SKIP=1): nothing to run against (42)"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestSkipFailsWhenSkipsAreDisallowed$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTUTIL_CHILD=1", DisallowSkip+"="+tc.disallow)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.fails || !strings.Contains(string(out), tc.says) {
			t.Errorf("%s=%q: err %v, want failure %v saying %q:\n%s", DisallowSkip, tc.disallow, err, tc.fails, tc.says, out)
		}
	}
}

func TestRandHex(t *testing.T) {
	a, b := RandHex(8), RandHex(8)
	if len(a) != 16 || a == b || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("RandHex(8) = %q, %q", a, b)
	}
}

package s3store_test

import (
	"os"
	"strings"
	"testing"
)

// TestMain clears the machine's AWS_* variables (this machine sets
// AWS_CA_BUNDLE), so no test inherits credentials, a profile or trust.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			os.Unsetenv(k)
		}
	}
	os.Exit(m.Run())
}

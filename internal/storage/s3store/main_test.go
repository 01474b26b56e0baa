package s3store_test

import (
	"os"
	"strings"
	"testing"
)

// machineAWS holds the AWS_* variables TestMain cleared, for the real-AWS
// run only (KEYESCROW_TEST_S3_BUCKET set).
var machineAWS = map[string]string{}

// TestMain clears the machine's AWS_* variables (this machine sets
// AWS_CA_BUNDLE), so no test inherits credentials, a profile or trust.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			machineAWS[k] = v
			os.Unsetenv(k)
		}
	}
	os.Exit(m.Run())
}

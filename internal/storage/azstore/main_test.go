package azstore

import (
	"os"
	"strings"
	"testing"
)

// realAzureEnv keeps the machine's AZURE_* variables for the real-Azure
// run only; every other test runs without them.
var realAzureEnv = map[string]string{}

func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AZURE_") || strings.HasPrefix(k, "MSI_") || strings.HasPrefix(k, "IDENTITY_") {
			realAzureEnv[k] = v
			os.Unsetenv(k)
		}
	}
	os.Exit(m.Run())
}

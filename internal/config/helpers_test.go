package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// designExample is the full example of docs/configuration.md.
const designExample = `sqlserver:
  dsn_env: KEYESCROW_SQLSERVER_DSN    # or dsn_file; go-mssqldb URL form, e.g. sqlserver://host:1433?encrypt=true
backup:
  server_directory: /var/opt/mssql/keyescrow   # where SQL Server writes (as the server sees the path)
  local_directory: ""                  # the same folder as this host sees it, when different
  password_env: KEYESCROW_BACKUP_PASSWORD      # or password_file
  keep_local: false                    # delete the local file after every destination verified
home_region: eu-west-1                 # where this host lives; destinations must prove they are elsewhere
destinations:
  - name: offsite-s3
    type: s3                           # s3 | azureblob | file
    bucket: corp-sql-keys
    region: us-east-2
    prefix: sqlkeys/
    endpoint: ""                       # S3-compatible endpoint; empty = AWS
    path_style: false                  # true for most S3-compatible stores
    ca_file: ""                        # extra CA bundle (PEM) for a private endpoint
    retention: {mode: COMPLIANCE, days: 3650}   # days >= 1; a warning under 365
  - name: offsite-azure
    type: azureblob
    account_url: https://corpkeys.blob.core.windows.net
    container: sqlkeys
    auth: default                      # default | managed-identity | workload-identity | client-secret |
                                       # client-certificate | cli | shared-key (account_key_env) | sas (sas_env)
    resource_id: ""                    # ARM id of the account, to prove its region
    retention: {mode: locked, days: 3650}
  - name: usb
    type: file                         # a mounted removable medium or share
    path: /mnt/keys
waive: []                              # checks knowingly given up: region, versioning, immutability; every receipt lists them
metrics_file: ""                       # Prometheus textfile-collector output, written atomically
max_age: 8d                            # ` + "`verify`" + `: the newest copy must be younger than this
lock_file: ""                          # default: in the OS's run/temp folder
`

// writeFile writes body to name in a new temp folder and returns its path.
func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// noEnv is an environment with nothing in it.
func noEnv(string) (string, bool) { return "", false }

// loadString loads body as a config file with env m.
func loadString(t *testing.T, body string, m map[string]string) (*Config, []Warning, error) {
	t.Helper()
	env, list := MapEnv(m)
	return LoadEnv(writeFile(t, "config.yaml", body), env, list)
}

// mustLoad loads body and fails the test on error.
func mustLoad(t *testing.T, body string, m map[string]string) *Config {
	t.Helper()
	c, _, err := loadString(t, body, m)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return c
}

// wantErr checks that err is a configuration error containing every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	if !errors.Is(err, ErrConfig) {
		t.Errorf("error %v does not match ErrConfig", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

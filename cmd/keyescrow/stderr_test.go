package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
)

// noIMDS is an instance metadata service that refuses everything, as on a
// host that is not an EC2 instance: the AWS SDK then tries IMDSv1 and says
// so in its own log.
func noIMDS(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// s3WithoutCredentials writes a config whose s3 destination has no
// credentials anywhere and whose backup password file is missing, and
// points the SDK at an IMDS that refuses.
func s3WithoutCredentials(t *testing.T, e *env) (missing string) {
	missing = filepath.Join(e.root, "no-such-password")
	cfg := fmt.Sprintf(`sqlserver:
  dsn_env: KEYESCROW_SQLSERVER_DSN
backup:
  server_directory: %q
  password_file: %q
home_region: eu-west-1
destinations:
  - name: offsite-s3
    type: s3
    bucket: corp-sql-keys
    region: us-east-2
    endpoint: https://127.0.0.1:9
    path_style: true
    retention: {mode: COMPLIANCE, days: 3650}
lock_file: %q
`, e.keyDir, missing, e.lockF)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	delete(e.vars, "KEYESCROW_BACKUP_PASSWORD")
	e.vars["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = noIMDS(t)
	return missing
}

var textLogLine = regexp.MustCompile(`^time=\S+ level=(DEBUG|INFO|WARN|ERROR) msg=`)

func TestAFailureEndsWithOnePlainLineUnderTheRightLabel(t *testing.T) {
	t.Run("check: the largest code leads, the password file is labelled usage", func(t *testing.T) {
		e := newEnv(t, mssqltest.Config{})
		missing := s3WithoutCredentials(t, e)
		r := e.run("check", "--config", e.cfgPath)
		if r.code != 5 {
			t.Fatalf("exit %d, want 5\n%s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "keyescrow: check failed (exit 5, transfer): offsite-s3: ") ||
			!strings.Contains(last, "no usable AWS credentials") ||
			!strings.HasSuffix(last, "; also (exit 2, usage): backup.password: file "+missing+" does not exist; create it, or correct backup.password_file") {
			t.Errorf("last stderr line:\n%s", last)
		}
		for _, l := range lines[:len(lines)-1] {
			if !textLogLine.MatchString(l) {
				t.Errorf("a line before the last is not a log record: %q", l)
			}
		}
	})
	t.Run("backup: a missing password file is exit 2, usage, on one line", func(t *testing.T) {
		e := newEnv(t, mssqltest.Config{})
		missing := s3WithoutCredentials(t, e)
		r := e.run("backup", "--config", e.cfgPath)
		want := "keyescrow: run failed (exit 2, usage): backup.password: file " + missing + " does not exist; create it, or correct backup.password_file\n"
		lines := strings.Split(r.stderr, "\n")
		if r.code != 2 || len(lines) < 2 || lines[len(lines)-1] != "" || lines[len(lines)-2]+"\n" != want {
			t.Errorf("exit %d, want 2; stderr must end with\n%s\ngot:\n%s", r.code, want, r.stderr)
		}
	})
}

func TestTheSDKsLogThroughTheProgramsLogger(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t, mssqltest.Config{})
			s3WithoutCredentials(t, e)
			e.vars["KEYESCROW_BACKUP_PASSWORD"] = backupPW
			e.writeConfig("") // password from the variable: the run reaches the SDK
			if err := os.WriteFile(e.cfgPath, []byte(strings.Replace(mustRead(t, e.cfgPath), "destinations:\n  - name: usb\n    type: file\n", "destinations:\n  - name: offsite-s3\n    type: s3\n    bucket: corp-sql-keys\n    region: us-east-2\n    endpoint: https://127.0.0.1:9\n    path_style: true\n    retention: {mode: COMPLIANCE, days: 3650}\n  - name: usb\n    type: file\n", 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			r := e.run("check", "--config", e.cfgPath, "--log-format", format)
			if r.code != 5 {
				t.Fatalf("exit %d, want 5\n%s", r.code, r.stderr)
			}
			sawSDK := false
			for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
				switch format {
				case "text":
					if !textLogLine.MatchString(l) && !strings.HasPrefix(l, "keyescrow: check failed (exit 5, transfer): ") {
						t.Errorf("a line in another format: %q", l)
					}
				case "json":
					var rec map[string]any
					if err := json.Unmarshal([]byte(l), &rec); err != nil {
						t.Errorf("a line that is not one JSON record: %q", l)
					}
				}
				if strings.Contains(l, "aws sdk: falling back to IMDSv1") {
					sawSDK = true
				}
			}
			if !sawSDK {
				t.Errorf("the SDK's IMDSv1 warning did not come through the logger:\n%s", r.stderr)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

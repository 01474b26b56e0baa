package deploytest

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

const linuxDir = "../../deploy/linux"

func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		testutil.Skip(t, "%s is not installed (apt-get install systemd)", tool)
	}
	return p
}

// unitCopies copies the units into a temp folder with ExecStart pointing at
// an executable that exists here (verify checks that it does).
func unitCopies(t *testing.T) (dir string, units []string) {
	t.Helper()
	dir = t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"keyescrow-backup.service", "keyescrow-backup.timer", "keyescrow-verify.service", "keyescrow-verify.timer"} {
		b, err := os.ReadFile(filepath.Join(linuxDir, u))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("ExecStart=/usr/local/bin/keyescrow "), []byte("ExecStart="+exe+" "))
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	return dir, units
}

func TestSystemdUnitsPassSystemdAnalyzeVerify(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd units are checked on Linux")
	}
	sa := need(t, "systemd-analyze")
	_, units := unitCopies(t)
	out, err := exec.Command(sa, append([]string{"verify"}, units...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The check can fail: an unknown key and a missing binary are reported.
	bad := filepath.Join(t.TempDir(), "bad.service")
	b, _ := os.ReadFile(units[0])
	b = append(bytes.ReplaceAll(b, []byte("ExecStart="), []byte("ExecStart=/nonexistent/keyescrow ")), "\nHardenning=yes\n"...)
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sa, "verify", bad).CombinedOutput(); err == nil && len(out) == 0 {
		t.Error("systemd-analyze verify accepted a broken unit: the check proves nothing")
	}
}

// The service's exposure stays low: systemd's own security score, offline.
func TestSystemdServiceIsHardened(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd units are checked on Linux")
	}
	sa := need(t, "systemd-analyze")
	_, units := unitCopies(t)
	for _, u := range []string{units[0], units[2]} {
		out, err := exec.Command(sa, "security", "--offline=yes", "--threshold=20", u).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: exposure above 2.0 (systemd-analyze security): %v\n%s", filepath.Base(u), err, out)
		}
	}
	// verify reads no secret at all: no credential, nothing writable but
	// the metrics folder.
	if v, _ := os.ReadFile(units[2]); bytes.Contains(v, []byte("LoadCredential")) || bytes.Contains(v, []byte("/var/opt/mssql")) || !bytes.Contains(v, []byte(" verify")) {
		t.Errorf("keyescrow-verify.service:\n%s", v)
	}
	unit, _ := os.ReadFile(units[0])
	for _, want := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "LoadCredential=backup-password:", "LoadCredential=sqlserver-dsn:",
		"KEYESCROW_BACKUP_PASSWORD_FILE=%d/backup-password", "ReadWritePaths=/var/opt/mssql/keyescrow"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("the service lacks %q", want)
		}
	}
	// Secrets never travel in the environment or the command line.
	for _, bad := range []string{"KEYESCROW_BACKUP_PASSWORD=", "KEYESCROW_SQLSERVER_DSN=", "EnvironmentFile="} {
		if bytes.Contains(unit, []byte(bad)) {
			t.Errorf("the service puts a secret in the environment: %q", bad)
		}
	}
}

func script(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(linuxDir, "install.sh")}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func fakeBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keyescrow")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInstallScriptPlacesEveryFileWithItsMode(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the install script is for Linux")
	}
	root := t.TempDir()
	out, err := script(t, "--binary", fakeBinary(t), "--root", root, "--no-users")
	if err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	want := map[string]fs.FileMode{
		"usr/local/bin/keyescrow":                     0o755,
		"etc/keyescrow":                               fs.ModeDir | 0o750,
		"etc/keyescrow/keyescrow.yaml":                0o640,
		"etc/keyescrow/secrets":                       fs.ModeDir | 0o700,
		"etc/keyescrow/secrets/backup-password":       0o600,
		"etc/keyescrow/secrets/sqlserver-dsn":         0o600,
		"var/opt/mssql/keyescrow":                     fs.ModeDir | fs.ModeSetgid | 0o770,
		"var/log/keyescrow":                           fs.ModeDir | 0o750,
		"etc/systemd/system/keyescrow-backup.service": 0o644,
		"etc/systemd/system/keyescrow-backup.timer":   0o644,
		"etc/systemd/system/keyescrow-verify.service": 0o644,
		"etc/systemd/system/keyescrow-verify.timer":   0o644,
		"etc/cron.d/keyescrow.disabled":               0o644,
	}
	for rel, mode := range want {
		st, err := os.Stat(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if got := st.Mode() & (fs.ModeDir | fs.ModeSetgid | fs.ModePerm); got != mode {
			t.Errorf("%s: mode %v, want %v", rel, got, mode)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/keyescrow/secrets/backup-password")); len(b) != 0 {
		t.Error("the secret file is not empty: the script must never invent a secret")
	}

	// A second run keeps the operator's config and secrets.
	cfg := filepath.Join(root, "etc/keyescrow/keyescrow.yaml")
	if err := os.WriteFile(cfg, []byte("# mine\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/keyescrow/secrets/backup-password"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := script(t, "--binary", fakeBinary(t), "--root", root, "--no-users"); err != nil || !strings.Contains(out, "keeping existing /etc/keyescrow/keyescrow.yaml") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "# mine\n" {
		t.Errorf("the second run replaced the config: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/keyescrow/secrets/backup-password")); string(b) != "x" {
		t.Error("the second run replaced a secret")
	}
}

func TestInstallScriptDryRunAndBadInput(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the install script is for Linux")
	}
	root := t.TempDir()
	out, err := script(t, "--binary", fakeBinary(t), "--root", root, "--no-users", "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "+ install -m 0755") || !strings.Contains(out, "+ install -d -m 2770") {
		t.Errorf("the dry run does not list its actions:\n%s", out)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("the dry run changed %s: %v", root, ents)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--binary PATH is required"},
		{[]string{"--binary", "/nonexistent/keyescrow"}, "is not an executable file"},
		{[]string{"--binary", fakeBinary(t), "--frobnicate"}, "unknown option --frobnicate"},
	} {
		out, err := script(t, tc.args...)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("install.sh %v: %v\n%s\nwant exit 2 saying %q", tc.args, err, out, tc.want)
		}
	}
}

// The example config, with the environment the systemd unit sets (the
// secrets' files as credentials), validates for backup.
func TestTheExampleConfigIsValidUnderTheUnitsEnvironment(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(linuxDir, "keyescrow-backup.service"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(unit), "\n") {
		if kv, ok := strings.CutPrefix(line, "Environment="); ok {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = strings.NewReplacer("%d", "/run/credentials/keyescrow-backup.service", "%t", "/run").Replace(v)
		}
	}
	if vars["KEYESCROW_SQLSERVER_DSN_FILE"] == "" || vars["KEYESCROW_BACKUP_PASSWORD_FILE"] == "" {
		t.Fatalf("the unit does not point the agent at its credentials: %v", vars)
	}
	env, list := config.MapEnv(vars)
	cfg, warns, err := config.LoadEnv(filepath.Join(linuxDir, "keyescrow.yaml.example"), env, list)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ValidateFor("backup"); err != nil {
		t.Fatalf("the example config does not validate: %v", err)
	}
	if len(warns) > 0 {
		t.Errorf("warnings: %v", warns)
	}
	if got := cfg.PasswordSource().File; got != "/run/credentials/keyescrow-backup.service/backup-password" {
		t.Errorf("password from %q, want the unit's credential", got)
	}
}

// The cron.d lines (backup daily, verify every 6 hours) have the system
// crontab's seven fields, run as keyescrow and report a failed run.
func TestCronLine(t *testing.T) {
	f, err := os.Open(filepath.Join(linuxDir, "keyescrow.cron"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var jobs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.Contains(strings.Fields(line)[0], "=") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 7 || fields[5] != "keyescrow" || fields[6] != "keyescrow" {
			t.Errorf("not a system crontab line running keyescrow as user keyescrow: %q", line)
			continue
		}
		for _, cmd := range []string{"backup", "verify"} {
			if strings.Contains(line, " "+cmd+" ") {
				jobs = append(jobs, cmd)
			}
		}
		if !strings.Contains(line, "|| echo") {
			t.Errorf("a failed run must produce output (cron mails it): %q", line)
		}
	}
	if strings.Join(jobs, " ") != "backup verify" {
		t.Errorf("jobs %v, want backup and verify", jobs)
	}
}

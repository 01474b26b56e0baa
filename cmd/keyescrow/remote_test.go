package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
)

// The remote-mode server folder is a Windows path this (Linux or macOS)
// runner does not have: the stand-in maps it onto its own disk, so a run
// that looked for the file locally would fail.
const remoteServerDir = `D:\SQLKeys\it's here`

// Logins of the remote-mode tests (all with loginPW, which assertNoSecrets
// watches for).
const (
	ciUser       = "ci-deployer" // sysadmin
	operatorUser = "operator"    // CONTROL SERVER, not sysadmin
	noBulkUser   = "nobulk"      // CONTROL SERVER, DENY ADMINISTER BULK OPERATIONS
)

// newRemoteEnv is an env with backup.remote: true, the server's key folder
// at remoteServerDir (on the stand-in's disk: e.keyDir), and a TMPDIR of
// its own, so the test can prove the agent wrote nothing on its host but
// the copy, the lock and what it was told to write.
func newRemoteEnv(t *testing.T, user string, mods ...func(*mssqltest.Config)) *env {
	t.Helper()
	var serverDisk string
	cfg := mssqltest.Config{
		Logins: []mssqltest.Login{
			{User: ciUser, Password: loginPW, Sysadmin: true},
			{User: operatorUser, Password: loginPW, ControlServer: true},
			{User: noBulkUser, Password: loginPW, ControlServer: true, DenyBulk: true},
		},
		MapPath: func(p string) (string, error) {
			rest, ok := strings.CutPrefix(p, remoteServerDir+`\`)
			if !ok || strings.ContainsAny(rest, `\/`) {
				return "", fmt.Errorf("%q is not in the server folder", p)
			}
			return filepath.Join(serverDisk, rest), nil
		},
	}
	for _, m := range mods {
		m(&cfg)
	}
	e := newEnv(t, cfg)
	serverDisk = e.keyDir
	e.vars["KEYESCROW_SQLSERVER_DSN"] = e.srv.DSN(user, loginPW, nil)
	e.vars["TMPDIR"] = filepath.Join(e.root, "tmp")
	if err := os.Mkdir(e.vars["TMPDIR"], 0o700); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`sqlserver:
  dsn_env: KEYESCROW_SQLSERVER_DSN
backup:
  remote: true
  server_directory: '%s'
  password_env: KEYESCROW_BACKUP_PASSWORD
home_region: eu-west-1
destinations:
  - name: usb
    type: file
    path: %q
lock_file: %q
`, strings.ReplaceAll(remoteServerDir, "'", "''"), e.usbDir, e.lockF)
	if err := os.WriteFile(e.cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// agentFiles lists what exists under the agent's root, apart from the
// server's disk (keyDir), the destination, the lock folder and the state
// folder (the host identity backup records: names, no key material).
func (e *env) agentFiles() []string {
	e.t.Helper()
	var out []string
	for _, f := range files(e.t, e.root) {
		switch {
		case strings.HasPrefix(f, e.keyDir+string(filepath.Separator)),
			strings.HasPrefix(f, e.usbDir+string(filepath.Separator)),
			strings.HasPrefix(f, filepath.Dir(e.lockF)+string(filepath.Separator)),
			strings.HasPrefix(f, e.vars["STATE_DIRECTORY"]+string(filepath.Separator)) && strings.HasPrefix(filepath.Base(f), "identity-"):
			continue
		}
		out = append(out, f)
	}
	return out
}

func TestRemoteBackupReadsTheKeyOverSQLAndRemovesItFromTheServer(t *testing.T) {
	e := newRemoteEnv(t, ciUser)
	r := e.run("backup", "--config", e.cfgPath, "--json", "--log-level", "debug")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rec := parseReceipt(t, r.stdout)
	if rec.Status != "ok" || rec.ExitCode != 0 || rec.Host != "SQLHOST01" || rec.Instance != "INST1" || len(rec.Destinations) != 1 {
		t.Fatalf("receipt: %+v", rec)
	}
	d := rec.Destinations[0]
	if d.Status != "verified" || !d.ReadBack || !d.Checksum.Match || d.Checksum.Local != rec.File.SHA256 {
		t.Fatalf("destination: %+v", d)
	}
	stored, err := os.ReadFile(d.Location)
	if err != nil || sha(stored) != rec.File.SHA256 || int64(len(stored)) != rec.File.Bytes {
		t.Fatalf("the copy at %s: %v, sha %s, receipt %s", d.Location, err, sha(stored), rec.File.SHA256)
	}
	if _, err := mssqltest.OpenKeyFile(stored, backupPW); err != nil {
		t.Fatalf("the archived copy does not open with the backup password: %v", err)
	}
	if left := files(t, e.keyDir); len(left) != 0 {
		t.Errorf("the key file is still on the server's disk: %v", left)
	}
	want := remoteServerDir + `\` + rec.File.Name
	if sf := rec.ServerFile; sf == nil || sf.Path != want || !sf.Removed || sf.Remove != "" {
		t.Errorf("receipt server_file %+v, want %s removed", sf, want)
	}
	if !strings.Contains(r.stderr, "removed the key file from the server") || !strings.Contains(r.stderr, strings.ReplaceAll(want, `\`, `\\`)) {
		t.Errorf("the log does not say the file %s was removed:\n%s", want, r.stderr)
	}
	if got := e.agentFiles(); !slices.Equal(got, []string{e.cfgPath}) {
		t.Errorf("the agent wrote on its own disk: %v", got)
	}
	kinds := e.srv.Statements()
	for _, k := range []mssqltest.StatementKind{mssqltest.KindBackupSMK, mssqltest.KindReadFile, mssqltest.KindDeleteFiles} {
		if !slices.Contains(kinds, k) {
			t.Errorf("the server never saw %s: %v", k, kinds)
		}
	}
}

func TestRemoteBackupKeepLocalLeavesTheFileOnTheServer(t *testing.T) {
	e := newRemoteEnv(t, ciUser)
	r := e.run("backup", "--config", e.cfgPath, "--set", "backup.keep_local=true")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ok service-master-key host=SQLHOST01 instance=INST1") || !strings.Contains(r.stdout, "usb (file): verified") ||
		!strings.Contains(r.stdout, ": remains on the server; remove it with EXEC master.sys.xp_delete_files") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	left := files(t, e.keyDir)
	if len(left) != 1 || !strings.Contains(r.stderr, "keep_local: the key file stays on the server") {
		t.Fatalf("keep_local: the server holds %v\n%s", left, r.stderr)
	}
	if slices.Contains(e.srv.Statements(), mssqltest.KindDeleteFiles) {
		t.Error("keep_local still asked the server to delete the file")
	}
	if got := e.agentFiles(); !slices.Equal(got, []string{e.cfgPath}) {
		t.Errorf("the agent wrote on its own disk: %v", got)
	}
}

func TestRemoteBackupWithoutSysadminIsOkAndSaysTheFileRemains(t *testing.T) {
	e := newRemoteEnv(t, operatorUser)
	r := e.run("backup", "--config", e.cfgPath, "--json")
	rec := parseReceipt(t, r.stdout)
	if r.code != 0 || rec.Status != "ok" {
		t.Fatalf("exit %d, receipt %+v\n%s", r.code, rec, r.stderr)
	}
	if left := files(t, e.keyDir); len(left) != 1 {
		t.Fatalf("the server's disk holds %v, want the run's key file", left)
	}
	if sf := rec.ServerFile; sf == nil || sf.Removed || !strings.Contains(sf.Remove, "xp_delete_files N'D:") || !strings.HasSuffix(sf.Path, rec.File.Name) {
		t.Errorf("receipt server_file %+v, want the file remaining with how to remove it", sf)
	}
	for _, w := range []string{"the key file remains on the server", "Msg 229", "EXEC master.sys.xp_delete_files N'D:", rec.File.Name} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
		}
	}
}

func TestRemoteBackupWithoutBulkPermissionExits3WithTheGrant(t *testing.T) {
	e := newRemoteEnv(t, noBulkUser)
	r := e.run("backup", "--config", e.cfgPath, "--json")
	if r.code != 3 {
		t.Fatalf("exit %d, want 3\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rec := parseReceipt(t, r.stdout)
	if rec.Status != "failed" || rec.ExitCode != 3 || rec.Error == nil || !strings.Contains(rec.Error.Message, "GRANT ADMINISTER BULK OPERATIONS TO [login]") {
		t.Fatalf("receipt %+v", rec)
	}
	if !strings.Contains(r.stderr, "GRANT ADMINISTER BULK OPERATIONS TO [login]") || !strings.Contains(r.stderr, "exit 3") {
		t.Errorf("stderr does not give the fix:\n%s", r.stderr)
	}
	if slices.Contains(e.srv.Statements(), mssqltest.KindBackupSMK) {
		t.Error("BACKUP ran although the file could never be read back")
	}
	if left := append(files(t, e.keyDir), files(t, e.usbDir)...); len(left) != 0 {
		t.Errorf("something was written: %v", left)
	}

	r = e.run("check", "--config", e.cfgPath, "--json")
	if r.code != 3 || !strings.Contains(r.stdout, `"bulk_operations": false`) || !strings.Contains(r.stdout, "GRANT ADMINISTER BULK OPERATIONS") {
		t.Fatalf("check: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestRemoteBackupWhoseReadBackFailsExits3AndNamesTheFileLeftOnTheServer(t *testing.T) {
	// SQL Server on Linux before 2022 CU24: CONTROL SERVER passes the
	// permission check keyescrow makes, but only sysadmin may bulk load.
	e := newRemoteEnv(t, operatorUser, func(c *mssqltest.Config) { c.BulkRequiresSysadmin = true })
	r := e.run("backup", "--config", e.cfgPath)
	if r.code != 3 {
		t.Fatalf("exit %d, want 3\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	left := files(t, e.keyDir)
	if len(left) != 1 {
		t.Fatalf("the server's disk holds %v, want the exported key file", left)
	}
	name := filepath.Base(left[0])
	for _, w := range []string{"Msg 4834", "only sysadmin", "the key file stays on the server at " + remoteServerDir + `\` + name, "keyescrow archive"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
		}
	}
	if len(files(t, e.usbDir)) != 0 || slices.Contains(e.srv.Statements(), mssqltest.KindDeleteFiles) {
		t.Error("a key that was never read back was archived or removed")
	}
}

func TestRemoteCheckNeedsNoLocalKeyFolder(t *testing.T) {
	for _, tt := range []struct {
		user    string
		sysadm  string
		warning bool
	}{
		{ciUser, `"sysadmin": true`, false},
		{operatorUser, `"sysadmin": false`, true},
	} {
		t.Run(tt.user, func(t *testing.T) {
			e := newRemoteEnv(t, tt.user)
			r := e.run("check", "--config", e.cfgPath, "--json")
			if r.code != 0 || !strings.Contains(r.stdout, `"bulk_operations": true`) || !strings.Contains(r.stdout, tt.sysadm) {
				t.Fatalf("check: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if got := strings.Contains(r.stderr, "cannot remove the key file from the server"); got != tt.warning {
				t.Errorf("warning about removal: %v, want %v\n%s", got, tt.warning, r.stderr)
			}
			if slices.Contains(e.srv.Statements(), mssqltest.KindBackupSMK) || len(files(t, e.keyDir)) != 0 {
				t.Error("check exported a key")
			}
		})
	}
}

// TestRemoteBackupAgainstARealSQLServer runs the remote ok path against a
// real server when KEYESCROW_TEST_SQLSERVER_DSN (a sysadmin login) and
// KEYESCROW_TEST_SQLSERVER_DIR are set; otherwise the stand-in tests above
// stand alone.
func TestRemoteBackupAgainstARealSQLServer(t *testing.T) {
	dsn, dir := os.Getenv("KEYESCROW_TEST_SQLSERVER_DSN"), os.Getenv("KEYESCROW_TEST_SQLSERVER_DIR")
	if dsn == "" {
		t.Log("KEYESCROW_TEST_SQLSERVER_DSN is unset: remote mode runs against the stand-in only")
		return
	}
	if dir == "" {
		t.Fatal("with KEYESCROW_TEST_SQLSERVER_DSN set, set KEYESCROW_TEST_SQLSERVER_DIR (as the server sees it)")
	}
	e := newRemoteEnv(t, ciUser)
	e.vars["KEYESCROW_SQLSERVER_DSN"] = dsn
	e.vars["KEYESCROW_BACKUP_SERVER_DIRECTORY"] = dir
	r := e.run("backup", "--config", e.cfgPath, "--json")
	rec := parseReceipt(t, r.stdout)
	if r.code != 0 || rec.Status != "ok" || !strings.Contains(r.stderr, "removed the key file from the server") {
		t.Fatalf("exit %d %+v\n%s", r.code, rec, r.stderr)
	}
	if local := os.Getenv("KEYESCROW_TEST_SQLSERVER_LOCAL_DIR"); local != "" {
		if _, err := os.Stat(filepath.Join(local, rec.File.Name)); !os.IsNotExist(err) {
			t.Errorf("the key file is still on the server's disk: %v", err)
		}
	}
}

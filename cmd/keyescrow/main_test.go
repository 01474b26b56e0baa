// Black-box tests: they build the keyescrow binary and run it the way cron
// would, with a clean environment, against the TDS stand-in and real folders,
// checking exit codes, the receipt on stdout and the messages on stderr.
package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	// The binary is built by TestMain; importing its CLI ties go test's
	// result cache to the CLI's source, so a change is never "(cached)".
	_ "github.com/keyescrow/keyescrow/internal/cli"
	"github.com/keyescrow/keyescrow/internal/lock"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keyescrow-bin-")
	if err != nil {
		panic(err)
	}
	_ = os.Chmod(dir, 0o755) // tests also run it as an unprivileged user
	binary = filepath.Join(dir, "keyescrow")
	if runtime.GOOS == "windows" {
		binary += ".exe"
	}
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building keyescrow:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

const (
	loginUser  = "keyescrow"
	loginPW    = "L0gin;Pa'ss=wörd"
	backupPW   = `Pä'ss\"wörd😀1`
	readerUser = "reader"
)

// env is one test's world: a stand-in, a key folder, a destination folder,
// a config file and the environment the binary gets (nothing inherited).
type env struct {
	t       *testing.T
	srv     *mssqltest.Server
	root    string
	keyDir  string
	usbDir  string
	cfgPath string
	lockF   string
	vars    map[string]string
	stdin   string
	// secrets a test adds (cloud keys, SAS, client secrets): like the
	// passwords, they never appear in stdout or stderr, raw or URL-escaped.
	secrets []string
}

func newEnv(t *testing.T, cfg mssqltest.Config) *env {
	t.Helper()
	if cfg.Logins == nil {
		cfg.Logins = []mssqltest.Login{
			{User: loginUser, Password: loginPW, ControlServer: true},
			{User: readerUser, Password: loginPW},
		}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = `SQLHOST01\INST1`
		cfg.InstanceName = "INST1"
	}
	srv := newStandin(t, cfg)
	root := t.TempDir()
	e := &env{t: t, srv: srv, root: root,
		keyDir: filepath.Join(root, "keys it's"), usbDir: filepath.Join(root, "usb"),
		cfgPath: filepath.Join(root, "keyescrow.yaml"), lockF: filepath.Join(root, "run", "keyescrow.lock")}
	for _, d := range []string{e.keyDir, e.usbDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	e.vars = map[string]string{
		"PATH": os.Getenv("PATH"),
		"HOME": root,
		// systemd's variable for StateDirectory=: the host identity backup
		// records stays in the test's folder, never in /var/lib/keyescrow.
		"STATE_DIRECTORY":           filepath.Join(root, "state"),
		"KEYESCROW_SQLSERVER_DSN":   srv.DSN(loginUser, loginPW, nil),
		"KEYESCROW_BACKUP_PASSWORD": backupPW,
	}
	e.writeConfig("")
	return e
}

func (e *env) writeConfig(extra string) {
	e.t.Helper()
	cfg := fmt.Sprintf(`sqlserver:
  dsn_env: KEYESCROW_SQLSERVER_DSN
backup:
  server_directory: %q
  password_env: KEYESCROW_BACKUP_PASSWORD
home_region: eu-west-1
destinations:
  - name: usb
    type: file
    path: %q
lock_file: %q
%s`, e.keyDir, e.usbDir, e.lockF, extra)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

type result struct {
	code           int
	stdout, stderr string
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runCtx(context.Background(), nil, args...)
}

func (e *env) runCtx(ctx context.Context, started func(*exec.Cmd), args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = e.root
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader(e.stdin)
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	if started != nil {
		started(cmd)
	}
	err := cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		e.t.Fatal(err)
	}
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	e.assertNoSecrets(r)
	return r
}

// assertNoSecrets is run on every invocation: no password, in any form,
// ever reaches stdout or stderr.
func (e *env) assertNoSecrets(r result) {
	e.t.Helper()
	forms := []string{loginPW, backupPW, strings.ReplaceAll(backupPW, "'", "''"), "L0gin%3BPa"}
	for _, s := range e.secrets {
		if s != "" {
			forms = append(forms, s, url.QueryEscape(s))
		}
	}
	for _, s := range forms {
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			e.t.Fatalf("a secret appeared in the output:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
		}
	}
}

// receipt is every field docs/receipt.md lists, the extensions
// included (exit_code, error, destinations[].checks, server_file,
// restore, password, quorum, destinations[].sealed_password).
// parseReceipt refuses any other field, so a field added without updating
// the contract fails the black-box tests.
type receipt struct {
	Status   string `json:"status"`
	Tool     string `json:"tool"`
	Version  string `json:"version"`
	RunID    string `json:"run_id"`
	Host     string `json:"host"`
	Instance string `json:"instance"`
	// MachineName: SQL Server's MachineName when the host key differs.
	MachineName  string    `json:"machine_name"`
	Kind         string    `json:"kind"`
	StartedAt    time.Time `json:"started_at"`
	FinishedAt   time.Time `json:"finished_at"`
	ExitCode     int       `json:"exit_code"`
	File         *fileDoc  `json:"file"`
	Waived       []string  `json:"waived"`
	Destinations []destDoc `json:"destinations"`
	Password     *struct {
		Mode       string   `json:"mode"`
		Recipients []string `json:"recipients"`
	} `json:"password"`
	Quorum *struct {
		Require      int  `json:"require"`
		Verified     int  `json:"verified"`
		Destinations int  `json:"destinations"`
		Met          bool `json:"met"`
	} `json:"quorum"`
	ServerFile *struct {
		Path    string `json:"path"`
		Removed bool   `json:"removed"`
		Remove  string `json:"remove"`
	} `json:"server_file"`
	Restore *struct {
		Out     string `json:"out"`
		Applied bool   `json:"applied"`
		Server  string `json:"server"`
		Force   bool   `json:"force"`
		Drill   bool   `json:"drill"`
		// Authenticated: the copy's receipt is signed by a pinned key.
		Authenticated bool      `json:"receipt_authenticated"`
		KeyID         string    `json:"key_id"`
		Skipped       []skipped `json:"skipped"`
		// PrivateKeyOut, Thumbprint and ThumbprintMatch: a certificate's
		// restore (hier_restore_test.go).
		PrivateKeyOut   string `json:"private_key_out"`
		Thumbprint      string `json:"thumbprint"`
		ThumbprintMatch *bool  `json:"thumbprint_match"`
	} `json:"restore"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	// Item, Inventory and Items: the hierarchy (hier_fixture_test.go).
	Item      *hierItem        `json:"item"`
	Inventory *hierInventory   `json:"inventory"`
	Items     []hierItemResult `json:"items"`
}

// fileDoc is a receipt's file: a key file, or a .cer's .pvk (private_key).
type fileDoc struct {
	Name       string   `json:"name"`
	Bytes      int64    `json:"bytes"`
	SHA256     string   `json:"sha256"`
	PrivateKey *fileDoc `json:"private_key"`
}

// destDoc is one destination of a receipt (or of a hierarchy item).
type destDoc struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Location  string `json:"location"`
	VersionID string `json:"version_id"`
	Region    string `json:"region"`
	Retention *struct {
		Mode  string    `json:"mode"`
		Until time.Time `json:"until"`
	} `json:"retention"`
	Checksum struct {
		Algorithm string `json:"algorithm"`
		Local     string `json:"local"`
		Remote    string `json:"remote"`
		Match     bool   `json:"match"`
	} `json:"checksum"`
	ReadBack bool   `json:"read_back"`
	Status   string `json:"status"`
	Error    *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Checks []struct {
		Name   string `json:"name"`
		State  string `json:"state"`
		Value  string `json:"value"`
		Result string `json:"result"`
		Detail string `json:"detail"`
	} `json:"checks"`
	SealedPassword *sidecar `json:"sealed_password"`
	PrivateKey     *sidecar `json:"private_key"`
}

// parseReceipt checks that stdout is exactly one JSON document with only the
// receipt's fields.
func parseReceipt(t *testing.T, stdout string) receipt {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	var r receipt
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("stdout is not one JSON receipt: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON document:\n%s", stdout)
	}
	return r
}

// skipped is a copy restore or verify did not count, and why.
type skipped struct {
	Destination string `json:"destination"`
	Location    string `json:"location"`
	VersionID   string `json:"version_id"`
	RunID       string `json:"run_id"`
	Reason      string `json:"reason"`
	Message     string `json:"message"`
	Evidence    bool   `json:"evidence"`
}

// storedReceipt is the receipt stored beside each copy: the receipt's
// fields without exit_code (it never knows how the run ends), status
// "proven", a scope sentence, and a signature when signing is configured.
type storedReceipt struct {
	receipt
	Scope     string `json:"scope"`
	Signature *struct {
		Alg   string `json:"alg"`
		KeyID string `json:"key_id"`
		Value string `json:"value"`
	} `json:"signature"`
}

// parseStored decodes a stored receipt strictly and checks it claims no
// more than it can: status proven, no exit code.
func parseStored(t *testing.T, doc string) storedReceipt {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	var r storedReceipt
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("not one stored receipt: %v\n%s", err, doc)
	}
	if r.Status != "proven" || strings.Contains(doc, `"exit_code"`) || strings.Contains(doc, `"status": "ok"`) {
		t.Fatalf("the stored receipt claims more than was proven when it was written:\n%s", doc)
	}
	return r
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestBackupArchivesAVerifiedCopyAndPrintsAnExactReceipt runs against the
// stand-in and, when KEYESCROW_TEST_SQLSERVER_DSN, _DIR and _LOCAL_DIR are
// set, against that real SQL Server with the same body.
func TestBackupArchivesAVerifiedCopyAndPrintsAnExactReceipt(t *testing.T) {
	t.Run("stand-in", func(t *testing.T) {
		e := newEnv(t, mssqltest.Config{})
		rec, stored := backupAndCheckTheCopy(t, e)
		if rec.Host != "SQLHOST01" || rec.Instance != "INST1" || !strings.HasPrefix(rec.File.Name, "SQLHOST01$INST1-servicemasterkey-") {
			t.Errorf("receipt names: %+v", rec)
		}
		if _, err := mssqltest.OpenKeyFile(stored, backupPW); err != nil {
			t.Fatalf("the archived copy does not open with the backup password: %v", err)
		}
	})
	dsn := os.Getenv("KEYESCROW_TEST_SQLSERVER_DSN")
	if dsn == "" {
		t.Log("KEYESCROW_TEST_SQLSERVER_DSN is unset: stand-in only")
		return
	}
	t.Run("real SQL Server", func(t *testing.T) {
		dir, local := os.Getenv("KEYESCROW_TEST_SQLSERVER_DIR"), os.Getenv("KEYESCROW_TEST_SQLSERVER_LOCAL_DIR")
		if dir == "" || local == "" {
			t.Fatal("with KEYESCROW_TEST_SQLSERVER_DSN set, set KEYESCROW_TEST_SQLSERVER_DIR (as the server sees it) and _LOCAL_DIR (as this host sees it)")
		}
		e := newEnv(t, mssqltest.Config{})
		e.vars["KEYESCROW_SQLSERVER_DSN"] = dsn
		e.vars["KEYESCROW_BACKUP_SERVER_DIRECTORY"] = dir
		e.vars["KEYESCROW_BACKUP_LOCAL_DIRECTORY"] = local
		backupAndCheckTheCopy(t, e)
	})
}

func backupAndCheckTheCopy(t *testing.T, e *env) (receipt, []byte) {
	t.Helper()
	r := e.run("backup", "--config", e.cfgPath, "--json", "--log-level", "debug")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rec := parseReceipt(t, r.stdout)
	if rec.Status != "ok" || rec.ExitCode != 0 || rec.Host == "" || rec.Instance == "" || rec.Kind != "service-master-key" {
		t.Fatalf("receipt: %+v", rec)
	}
	if !strings.Contains(rec.File.Name, "-servicemasterkey-") || len(rec.Destinations) != 1 {
		t.Fatalf("receipt file/destinations: %+v", rec)
	}
	d := rec.Destinations[0]
	if d.Status != "verified" || !d.ReadBack || !d.Checksum.Match || d.Checksum.Local != rec.File.SHA256 || d.Checksum.Remote != rec.File.SHA256 {
		t.Fatalf("destination: %+v", d)
	}
	stored, err := os.ReadFile(d.Location)
	if err != nil {
		t.Fatal(err)
	}
	if sha(stored) != rec.File.SHA256 || int64(len(stored)) != rec.File.Bytes {
		t.Fatalf("the copy at %s hashes %s, the receipt says %s", d.Location, sha(stored), rec.File.SHA256)
	}
	if fi, _ := os.Stat(d.Location); fi.Mode().Perm() != 0o400 {
		t.Errorf("archived copy mode %v, want 0400", fi.Mode().Perm())
	}
	stored2, err := os.ReadFile(d.Location + ".receipt.json")
	if err != nil || parseStored(t, string(stored2)).Status != "proven" {
		t.Fatalf("stored receipt: %v %s", err, stored2)
	}
	localDir := e.keyDir
	if d := e.vars["KEYESCROW_BACKUP_LOCAL_DIRECTORY"]; d != "" {
		localDir = d
	}
	if _, err := os.Stat(filepath.Join(localDir, rec.File.Name)); !os.IsNotExist(err) {
		t.Errorf("the local key file was not removed: %v", err)
	}
	return rec, stored
}

func TestBackupTextReceiptAndKeepLocal(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	// A key file an earlier failed run kept: reported, never removed.
	earlier := filepath.Join(e.keyDir, "SQLHOST01$INST1-servicemasterkey-20261101T000000Z-00000000.key")
	if err := os.WriteFile(earlier, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := filepath.Join(e.root, "keyescrow.prom")
	r := e.run("backup", "--config", e.cfgPath, "--set", "backup.keep_local=true", "--set", "metrics_file="+prom)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ok service-master-key host=SQLHOST01 instance=INST1") || !strings.Contains(r.stdout, "usb (file): verified") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if m, err := os.ReadFile(prom); err != nil || !strings.Contains(string(m), `keyescrow_destination_up{destination="usb",type="file"} 1`) {
		t.Errorf("metrics file: %v\n%s", err, m)
	}
	left := files(t, e.keyDir)
	if len(left) != 2 {
		t.Fatalf("keep_local: key folder holds %v", left)
	}
	if strings.Contains(r.stderr, "earlier failed runs") {
		t.Errorf("with keep_local the kept files are expected; no warning wanted:\n%s", r.stderr)
	}
	r = e.run("backup", "--config", e.cfgPath)
	if r.code != 0 || !strings.Contains(r.stderr, "earlier failed runs") || !strings.Contains(r.stderr, "20261101T000000Z") {
		t.Fatalf("the leftover key file is not reported: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(earlier); err != nil {
		t.Fatalf("a key that was not archived by this run was removed: %v", err)
	}
	if fi, _ := os.Stat(left[0]); fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("the kept key file is readable by others: %v", fi.Mode())
	}
}

func TestArchiveAndCheckAndVersion(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	in := filepath.Join(e.root, "by hand.key")
	if err := os.WriteFile(in, []byte("opaque key bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run("archive", "--config", e.cfgPath, "--json", "--instance", "INST9", "--host", "DBHOST7", in)
	rec := parseReceipt(t, r.stdout)
	if r.code != 0 || rec.Status != "ok" || rec.Instance != "INST9" || rec.Host != "DBHOST7" || !strings.Contains(rec.Destinations[0].Location, "/DBHOST7/INST9/service-master-key/by_hand-") || rec.File.SHA256 != sha([]byte("opaque key bytes")) {
		t.Fatalf("archive: exit %d %+v\n%s", r.code, rec, r.stderr)
	}
	if _, err := os.Stat(in); err != nil {
		t.Fatalf("archive removed the user's file: %v", err)
	}
	before := files(t, e.usbDir)
	r = e.run("check", "--config", e.cfgPath, "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"control_server": true`) {
		t.Fatalf("check: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if after := files(t, e.usbDir); len(after) != len(before) || len(files(t, e.keyDir)) != 0 {
		t.Fatalf("check wrote something: %v → %v", before, after)
	}
	for _, k := range e.srv.Statements() {
		if k == mssqltest.KindBackupSMK && len(e.srv.Statements()) > 0 {
			t.Fatalf("check ran a BACKUP: %v", e.srv.Statements())
		}
	}
	r = e.run("version", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"tool":"keyescrow"`) {
		t.Fatalf("version: %d %s", r.code, r.stdout)
	}
}

// TestBadInputFailsClearly covers the list of bad input: each case
// gets its exit code, a message naming the problem and the fix, a JSON
// receipt saying failed, and nothing left behind.
func TestBadInputFailsClearly(t *testing.T) {
	cases := []struct {
		name     string
		setup    func(e *env) []string // returns extra args
		code     int
		stderr   []string
		noBackup bool // SQL Server must not have been asked to BACKUP
	}{
		{name: "a missing config file is a usage error naming it", code: 2, stderr: []string{"nope.yaml"}, noBackup: true,
			setup: func(e *env) []string { e.cfgPath = filepath.Join(e.root, "nope.yaml"); return nil }},
		{name: "an unknown key is named with its line", code: 2, stderr: []string{"keyescrow.yaml:12", "metrics_flie", `did you mean "metrics_file"`}, noBackup: true,
			setup: func(e *env) []string { e.writeConfig("metrics_flie: /var/lib/x.prom\n"); return nil }},
		{name: "a weak password is refused before SQL Server is asked", code: 2, stderr: []string{"not complex enough"}, noBackup: true,
			setup: func(e *env) []string { e.vars["KEYESCROW_BACKUP_PASSWORD"] = "abcdefghijk"; return nil }},
		{name: "a missing password variable names the variable", code: 2, stderr: []string{"KEYESCROW_BACKUP_PASSWORD is not set"}, noBackup: true,
			setup: func(e *env) []string { delete(e.vars, "KEYESCROW_BACKUP_PASSWORD"); return nil }},
		{name: "a wrong SQL login is exit 3 with Msg 18456", code: 3, stderr: []string{"18456", "check the login name and password"}, noBackup: true,
			setup: func(e *env) []string {
				e.vars["KEYESCROW_SQLSERVER_DSN"] = e.srv.DSN(loginUser, "Wrong-Pass1", nil)
				return nil
			}},
		{name: "a login without CONTROL SERVER is exit 3 with Msg 15247", code: 3, stderr: []string{"15247", "GRANT CONTROL SERVER"},
			setup: func(e *env) []string {
				e.vars["KEYESCROW_SQLSERVER_DSN"] = e.srv.DSN(readerUser, loginPW, nil)
				return nil
			}},
		{name: "a missing server directory is exit 3 with Msg 15240", code: 3, stderr: []string{"15240", "server_directory exists"},
			setup: func(e *env) []string { _ = os.RemoveAll(e.keyDir); return nil }},
		{name: "an unwritable server directory is exit 3 with Msg 15240", code: 3, stderr: []string{"15240"},
			setup: func(e *env) []string {
				e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Error: &mssqltest.Error{Number: 15240, Class: 16, Message: "Cannot write into file 'x'. Verify that you have write permissions, that the file path is valid, and that the file does not already exist."}})
				return nil
			}},
		{name: "a key folder open to other users is refused", code: 2, stderr: []string{"chmod o-rwx"}, noBackup: true,
			setup: func(e *env) []string { _ = os.Chmod(e.keyDir, 0o755); return nil }},
		{name: "a Windows server folder without local_directory is refused before the backup", code: 2, stderr: []string{"set backup.local_directory"}, noBackup: true,
			setup: func(e *env) []string { return []string{"--set", `backup.server_directory=C:\keys`} }},
		{name: "a missing destination folder is refused before the backup", code: 4, stderr: []string{"mount the medium or create the folder"}, noBackup: true,
			setup: func(e *env) []string { _ = os.RemoveAll(e.usbDir); return nil }},
		{name: "a server that drops the connection is exit 3", code: 3, stderr: []string{"SQL Server backup failed"},
			setup: func(e *env) []string {
				e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Drop: true})
				return nil
			}},
		{name: "another run holding the lock is exit 7", code: 7, stderr: []string{"another keyescrow run holds the lock"}, noBackup: true,
			setup: func(e *env) []string {
				l, err := lock.Acquire(e.lockF)
				if err != nil {
					e.t.Fatal(err)
				}
				e.t.Cleanup(func() { _ = l.Release() })
				return nil
			}},
		{name: "a secret given as a flag is refused", code: 2, stderr: []string{"backup.password"}, noBackup: true,
			setup: func(e *env) []string { return []string{"--set", "backup.password=Secret#123"} }},
		{name: "retention on a folder is a configuration error", code: 2, stderr: []string{"retention"}, noBackup: true,
			setup: func(e *env) []string {
				return []string{"--set", "destinations.0.retention.days=30", "--set", "destinations.0.retention.mode=COMPLIANCE"}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, mssqltest.Config{})
			extra := tc.setup(e)
			args := append([]string{"backup", "--config", e.cfgPath, "--json", "--log-level", "debug"}, extra...)
			r := e.run(args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr does not say %q:\n%s", s, r.stderr)
				}
			}
			rec := parseReceipt(t, r.stdout)
			if rec.Status != "failed" || rec.ExitCode != tc.code {
				t.Errorf("receipt: %+v", rec)
			}
			if tc.noBackup {
				for _, k := range e.srv.Statements() {
					if k == mssqltest.KindBackupSMK {
						t.Errorf("SQL Server was asked to BACKUP: %v", e.srv.Statements())
					}
				}
			}
			for _, f := range files(t, e.usbDir) {
				t.Errorf("the destination holds %s after a failed run", f)
			}
			for _, f := range files(t, e.keyDir) {
				if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o077 != 0 {
					t.Errorf("a key file readable by others was left: %s %v", f, fi.Mode())
				}
			}
		})
	}
}

func TestCtrlCDuringTheBackupExits130AndLeavesNothingReadable(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Delay: 30 * time.Second})
	start := time.Now()
	r := e.runCtx(context.Background(), func(cmd *exec.Cmd) {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			for _, k := range e.srv.Statements() {
				if k == mssqltest.KindBackupSMK {
					_ = cmd.Process.Signal(os.Interrupt)
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Error("the backup never started")
	}, "backup", "--config", e.cfgPath, "--json")
	if r.code != 130 {
		t.Fatalf("exit %d, want 130\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("the interrupted run took %v", time.Since(start))
	}
	if rec := parseReceipt(t, r.stdout); rec.Status != "failed" || rec.ExitCode != 130 {
		t.Errorf("receipt: %+v", rec)
	}
	for _, f := range files(t, e.keyDir) {
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("a key file readable by others was left: %s", f)
		}
	}
	if len(files(t, e.usbDir)) != 0 {
		t.Errorf("an interrupted run wrote to the destination")
	}
}

func TestUsageErrors(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "no command given"},
		{[]string{"bakup"}, 2, `unknown command "bakup"`},
		{[]string{"list", "--config", e.cfgPath, "extra"}, 2, "list takes no arguments"},
		{[]string{"list", "--config", e.cfgPath, "--limit", "-1"}, 2, "--limit -1"},
		{[]string{"list", "--config", e.cfgPath, "--destination", "nope"}, 2, `--destination "nope" is not configured: use one of usb`},
		{[]string{"verify", "--config", e.cfgPath, "--all-hosts", "--host", "h"}, 2, "pass one of them"},
		{[]string{"verify", "--config", e.cfgPath, "--set", "verify.copies=0"}, 2, "verify.copies"},
		{[]string{"restore", "--config", e.cfgPath, "--host", "h"}, 2, "--out FILE"},
		{[]string{"restore", "--config", e.cfgPath, "--host", "h", "--at", "yesterday", "--out", "x"}, 2, `--at "yesterday" is not a time`},
		{[]string{"restore", "--config", e.cfgPath, "--host", "h", "--out", "x", "--force"}, 2, "--force only applies to --apply"},
		{[]string{"restore", "--config", e.cfgPath, "--host", "h", "--apply", "--set", "backup.remote=true"}, 2, "backup.remote"},
		{[]string{"restore", "--config", e.cfgPath, "--host", "nohost", "--out", "x"}, 2, "no copy of host nohost"},
		{[]string{"drill", "--config", e.cfgPath, "--host", "h"}, 2, "KEYESCROW_DRILL_DSN"},
		{[]string{"archive", "--config", e.cfgPath}, 2, "exactly one key file"},
		{[]string{"backup", "--log-format", "xml"}, 2, "use text or json"},
		{[]string{"help"}, 0, ""},
	} {
		r := e.run(tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}

func TestSecretsFromStdinAndFilesAndJSONLogs(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	dsnFile := filepath.Join(e.root, "dsn")
	if err := os.WriteFile(dsnFile, []byte(e.vars["KEYESCROW_SQLSERVER_DSN"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	delete(e.vars, "KEYESCROW_SQLSERVER_DSN")
	delete(e.vars, "KEYESCROW_BACKUP_PASSWORD")
	e.vars["KEYESCROW_SQLSERVER_DSN_FILE"] = dsnFile
	e.vars["KEYESCROW_BACKUP_PASSWORD_FILE"] = "-"
	e.stdin = backupPW + "\n"
	e.writeConfig("")
	// the config names password_env; the variable override replaces it with a file
	cfg, _ := os.ReadFile(e.cfgPath)
	_ = os.WriteFile(e.cfgPath, []byte(strings.Replace(string(cfg), "  password_env: KEYESCROW_BACKUP_PASSWORD\n", "", 1)), 0o600)
	cfg, _ = os.ReadFile(e.cfgPath)
	_ = os.WriteFile(e.cfgPath, []byte(strings.Replace(string(cfg), "  dsn_env: KEYESCROW_SQLSERVER_DSN\n", "  {}\n", 1)), 0o600)
	r := e.run("backup", "--config", e.cfgPath, "--json", "--log-format", "json", "--log-level", "debug")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rec := parseReceipt(t, r.stdout)
	stored, err := os.ReadFile(rec.Destinations[0].Location)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mssqltest.OpenKeyFile(stored, backupPW); err != nil {
		t.Fatalf("the password read from stdin (one newline stripped) is not the one used: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if m["run_id"] == nil && m["msg"] != "connecting to SQL Server" {
			t.Errorf("a log line lacks run_id: %q", line)
		}
	}
}

func TestCheckReportsEachFailureWithItsCode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(e *env)
		code  int
		want  string
	}{
		{"SQL Server unreachable is 3", func(e *env) {
			e.vars["KEYESCROW_SQLSERVER_DSN"] = e.srv.DSN(loginUser, loginPW, map[string]string{"encrypt": "disable"})
			_ = e.srv.Close()
		}, 3, "nothing listens"},
		{"a login without CONTROL SERVER is 3", func(e *env) { e.vars["KEYESCROW_SQLSERVER_DSN"] = e.srv.DSN(readerUser, loginPW, nil) }, 3, `"control_server": false`},
		{"a missing destination folder is 4", func(e *env) { _ = os.RemoveAll(e.usbDir) }, 4, `"status": "refused"`},
		{"a weak password is 2", func(e *env) { e.vars["KEYESCROW_BACKUP_PASSWORD"] = "weakweakweak" }, 2, "not complex enough"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, mssqltest.Config{})
			tc.setup(e)
			r := e.run("check", "--config", e.cfgPath, "--json")
			if r.code != tc.code || !strings.Contains(r.stdout, tc.want) {
				t.Fatalf("exit %d, want %d with %q\n%s\n%s", r.code, tc.code, tc.want, r.stdout, r.stderr)
			}
			var rep map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep["status"] != "failed" {
				t.Fatalf("check report: %v %s", err, r.stdout)
			}
		})
	}
}

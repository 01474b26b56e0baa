package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
)

// newStandin starts another SQL Server stand-in (a rebuilt server, or a
// drill's scratch server) with the tests' login.
func newStandin(t *testing.T, cfg mssqltest.Config) *mssqltest.Server {
	t.Helper()
	if cfg.Logins == nil {
		cfg.Logins = []mssqltest.Login{{User: loginUser, Password: loginPW, ControlServer: true}}
	}
	return mssqltest.Start(t, cfg)
}

// TestFromADeadServerToARestoredKeyInTwoCommands is the issue's "done
// when": the server that made the backups is gone; on its replacement,
// `keyescrow list` shows the copies and `keyescrow restore --apply` puts
// the newest proven one into SQL Server.
func TestFromADeadServerToARestoredKeyInTwoCommands(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	if r := e.run("backup", "--config", e.cfgPath, "--json"); r.code != 0 {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	oldKey := e.srv.ServiceMasterKey()
	_ = e.srv.Close() // the server died

	rebuilt := newStandin(t, mssqltest.Config{ServerName: `SQLHOST01\INST1`, InstanceName: "INST1"})
	if bytes.Equal(rebuilt.ServiceMasterKey(), oldKey) {
		t.Fatal("the rebuilt server starts with the old key")
	}
	e.vars["KEYESCROW_SQLSERVER_DSN"] = rebuilt.DSN(loginUser, loginPW, nil)

	r := e.run("list", "--config", e.cfgPath, "--host", "SQLHOST01")
	if r.code != 0 || !strings.Contains(r.stdout, "1 copy") {
		t.Fatalf("list: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = e.run("restore", "--config", e.cfgPath, "--json", "--host", "SQLHOST01", "--apply")
	if r.code != 0 {
		t.Fatalf("restore --apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rec := parseReceipt(t, r.stdout)
	if rec.Restore == nil || !rec.Restore.Applied || rec.Restore.Server != `SQLHOST01\INST1` || rec.Restore.Force || rec.Destinations[0].Status != "verified" {
		t.Fatalf("receipt: %+v", rec)
	}
	if !bytes.Equal(rebuilt.ServiceMasterKey(), oldKey) {
		t.Fatal("the rebuilt server does not hold the old service master key")
	}
	if left := files(t, e.keyDir); len(left) != 0 {
		t.Errorf("the staged key file was left in the key folder: %v", left)
	}
}

func TestRestoreApplyMapsErrorsAndGuardsForce(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	if r := e.run("backup", "--config", e.cfgPath); r.code != 0 {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	oldKey := e.srv.ServiceMasterKey()
	target := newStandin(t, mssqltest.Config{ServerName: "SQLNEW", Undecryptable: []mssqltest.Undecryptable{{Kind: mssqltest.SecretCredential, Name: "AzureBackupCred"}}})
	e.vars["KEYESCROW_SQLSERVER_DSN"] = target.DSN(loginUser, loginPW, nil)
	before := target.ServiceMasterKey()
	restore := func(args ...string) result {
		t.Helper()
		return e.run(append([]string{"restore", "--config", e.cfgPath, "--host", "SQLHOST01", "--apply"}, args...)...)
	}

	r := restore()
	if r.code != 3 || !strings.Contains(r.stderr, "15320") || !strings.Contains(r.stderr, "FORCE") {
		t.Errorf("a secret the current key protects cannot be decrypted: exit %d, want 3 naming 15320 and FORCE\n%s", r.code, r.stderr)
	}
	if r := restore("--force"); r.code != 2 || !strings.Contains(r.stderr, "--confirm-force") {
		t.Errorf("--force without a confirmation: exit %d, want 2\n%s", r.code, r.stderr)
	}
	if r := restore("--force", "--confirm-force", "SQLOTHER"); r.code != 2 || !strings.Contains(r.stderr, "SQLNEW") {
		t.Errorf("--confirm-force naming another server: exit %d, want 2\n%s", r.code, r.stderr)
	}
	if !bytes.Equal(target.ServiceMasterKey(), before) {
		t.Fatal("a refused restore changed the server's key")
	}
	if r := restore("--force", "--confirm-force", "sqlnew"); r.code != 0 {
		t.Fatalf("restore --force with the confirmation: exit %d\n%s", r.code, r.stderr)
	}
	if !bytes.Equal(target.ServiceMasterKey(), oldKey) || len(target.Undecryptable()) != 0 {
		t.Fatal("FORCE did not replace the key")
	}

	// The wrong password for the copy.
	e.vars["KEYESCROW_BACKUP_PASSWORD"] = "An0ther-Passw0rd!"
	if r := restore(); r.code != 3 || !strings.Contains(r.stderr, "15466") || !strings.Contains(r.stderr, "password") {
		t.Errorf("the wrong backup password: exit %d, want 3 naming 15466\n%s", r.code, r.stderr)
	}
	e.secrets = append(e.secrets, "An0ther-Passw0rd!")
}

func TestDrillRestoresIntoTheScratchServerOnly(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	metrics := filepath.Join(e.root, "keyescrow.prom")
	e.vars["KEYESCROW_METRICS_FILE"] = metrics
	r := e.run("backup", "--config", e.cfgPath, "--json")
	if r.code != 0 {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	scratch := newStandin(t, mssqltest.Config{ServerName: "SCRATCH01"})
	e.vars["KEYESCROW_DRILL_DSN"] = scratch.DSN(loginUser, loginPW, nil)
	drill := func() result {
		t.Helper()
		return e.run("drill", "--config", e.cfgPath, "--json", "--host", "SQLHOST01")
	}

	r = drill()
	if r.code != 0 {
		t.Fatalf("drill: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rec := parseReceipt(t, r.stdout)
	if rec.Restore == nil || !rec.Restore.Applied || !rec.Restore.Drill || rec.Restore.Server != "SCRATCH01" || rec.Host != "SQLHOST01" {
		t.Fatalf("drill receipt: %+v", rec)
	}
	if !bytes.Equal(scratch.ServiceMasterKey(), e.srv.ServiceMasterKey()) {
		t.Fatal("the scratch server does not hold the restored key")
	}
	prom, _ := os.ReadFile(metrics)
	if !strings.Contains(string(prom), `keyescrow_last_run_success{command="drill"} 1`) {
		t.Errorf("metrics:\n%s", prom)
	}

	// A wrong password fails the drill, exactly, and the metrics say so.
	e.vars["KEYESCROW_BACKUP_PASSWORD"] = "An0ther-Passw0rd!"
	e.secrets = append(e.secrets, "An0ther-Passw0rd!")
	r = drill()
	if r.code != 3 || !strings.Contains(r.stderr, "15466") {
		t.Errorf("drill with the wrong password: exit %d, want 3 (15466)\n%s", r.code, r.stderr)
	}
	prom, _ = os.ReadFile(metrics)
	if !strings.Contains(string(prom), `keyescrow_last_run_success{command="drill"} 0`) || !strings.Contains(string(prom), `keyescrow_last_run_exit_code{command="drill"} 3`) {
		t.Errorf("metrics after the failed drill:\n%s", prom)
	}
	e.vars["KEYESCROW_BACKUP_PASSWORD"] = backupPW

	// Never into production: the same DSN, or a server that is the
	// copy's own host and instance under another address.
	e.vars["KEYESCROW_DRILL_DSN"] = e.vars["KEYESCROW_SQLSERVER_DSN"]
	if r := drill(); r.code != 2 || !strings.Contains(r.stderr, "production") {
		t.Errorf("drill into production: exit %d, want 2\n%s", r.code, r.stderr)
	}
	twin := newStandin(t, mssqltest.Config{ServerName: `SQLHOST01\INST1`, InstanceName: "INST1"})
	e.vars["KEYESCROW_DRILL_DSN"] = twin.DSN(loginUser, loginPW, nil)
	before := twin.ServiceMasterKey()
	if r := drill(); r.code != 2 || !strings.Contains(r.stderr, "the very server") {
		t.Errorf("drill into the copy's own server: exit %d, want 2\n%s", r.code, r.stderr)
	}
	if !bytes.Equal(twin.ServiceMasterKey(), before) {
		t.Fatal("a refused drill changed the server's key")
	}

	// A corrupted copy is refused before anything is restored.
	e.vars["KEYESCROW_DRILL_DSN"] = scratch.DSN(loginUser, loginPW, nil)
	var key string
	for _, f := range files(t, e.usbDir) {
		if strings.HasSuffix(f, ".key") {
			key = f
		}
	}
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	_ = os.Chmod(key, 0o600)
	if err := os.WriteFile(key, b, 0o400); err != nil {
		t.Fatal(err)
	}
	if r := drill(); r.code != 6 || !strings.Contains(r.stderr, "corrupted") {
		t.Errorf("drill of a corrupted copy: exit %d, want 6\n%s", r.code, r.stderr)
	}
}

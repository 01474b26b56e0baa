package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
)

// This file holds the black-box tests of restore and drill per item of the
// hierarchy: --kind, --database and --name.

func TestRestoreAndDrillRefuseAKindWithoutItsItem(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"restore", "--kind", "asymmetric-key", "--out", "x"}, `--kind "asymmetric-key" is not a kind of key`},
		{[]string{"restore", "--database", "HR", "--out", "x"}, "add --kind database-master-key"},
		{[]string{"restore", "--kind", "database-master-key", "--out", "x"}, "--kind database-master-key needs --database NAME"},
		{[]string{"restore", "--kind", "database-master-key", "--database", "HR", "--name", "x", "--out", "x"}, "drop --name"},
		{[]string{"restore", "--kind", "certificate", "--database", "master", "--out", "x"}, "--kind certificate needs --database NAME and --name CERTIFICATE"},
		{[]string{"restore", "--kind", "certificate", "--database", "master", "--name", "TDECert", "--apply", "--force", "--confirm-force", "SQLHOST01"}, "a certificate has none"},
		{[]string{"drill", "--kind", "certificate", "--name", "TDECert"}, "--kind certificate needs --database NAME"},
		{[]string{"drill", "--name", "TDECert"}, "add --kind"},
	} {
		r := e.run(append(append([]string{}, tc.args[0], "--config", e.cfgPath, "--host", "SQLHOST01"), tc.args[1:]...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if got := e.srv.Statements(); len(got) != 0 {
		t.Errorf("refused invocations reached SQL Server: %v", got)
	}
}

// hierBackedUp is the hierarchy fixture after one backup: every item has
// a proven copy, newer than the service master key's.
func hierBackedUp(t *testing.T, version string) (*env, receipt) {
	t.Helper()
	e := newHierEnv(t, version)
	e.writeConfig(hierPasswords)
	r := e.run("backup", "--config", e.cfgPath, "--json")
	if r.code != 0 {
		t.Fatalf("backup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	return e, parseReceipt(t, r.stdout)
}

// archivedItem is the backup receipt's entry for kind/database/name.
func archivedItem(t *testing.T, rec receipt, kind, database, name string) hierItemResult {
	t.Helper()
	for _, it := range rec.Items {
		if it.Kind == kind && it.Database == database && it.Name == name {
			if it.Action != "archived" {
				t.Fatalf("%s %s/%s was not archived: %+v", kind, database, name, it)
			}
			return it
		}
	}
	t.Fatalf("the backup receipt lists no %s %s/%s", kind, database, name)
	return hierItemResult{}
}

func ownerOnly(t *testing.T, path string) []byte {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRestoreOfTheTDECertificateWritesItsFiles(t *testing.T) {
	for _, tc := range []struct{ name, version, format string }{{"SQL Server 2022: one PFX", "", "pfx"}, {"SQL Server 2019: a .cer and its .pvk", "15.0.4355.3", "pvk"}} {
		t.Run(tc.name, func(t *testing.T) {
			e, backup := hierBackedUp(t, tc.version)
			tde := archivedItem(t, backup, "certificate", "master", "TDECert")
			if tde.Format != tc.format {
				t.Fatalf("TDECert archived as %q, want %q", tde.Format, tc.format)
			}
			out := filepath.Join(e.root, "tde.cer")
			r := e.run("restore", "--config", e.cfgPath, "--json", "--host", "SQLHOST01", "--kind", "certificate", "--database", "master", "--name", "TDECert", "--out", out)
			if r.code != 0 {
				t.Fatalf("restore: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			rec := parseReceipt(t, r.stdout)
			if rec.Kind != "certificate" || rec.Item == nil || rec.Item.Name != "TDECert" || rec.Item.Database != "master" || rec.Item.Thumbprint != tde.Thumbprint ||
				rec.File == nil || rec.File.SHA256 != tde.File.SHA256 || rec.Restore == nil || rec.Restore.Out != out || rec.Restore.Applied {
				t.Fatalf("restore receipt: %s", r.stdout)
			}
			if got := ownerOnly(t, out); sha(got) != tde.File.SHA256 {
				t.Errorf("%s is not the archived certificate file", out)
			}
			pvk := filepath.Join(e.root, "tde.pvk")
			if tc.format == "pvk" {
				if rec.File.PrivateKey == nil || rec.File.PrivateKey.SHA256 != tde.File.PrivateKey.SHA256 || rec.Restore.PrivateKeyOut != pvk ||
					rec.Destinations[0].PrivateKey == nil || !rec.Destinations[0].PrivateKey.ReadBack {
					t.Fatalf("restore receipt of the .pvk: %s", r.stdout)
				}
				if got := ownerOnly(t, pvk); sha(got) != tde.File.PrivateKey.SHA256 {
					t.Errorf("%s is not the archived private key file", pvk)
				}
			} else if _, err := os.Stat(pvk); err == nil || rec.Restore.PrivateKeyOut != "" || rec.File.PrivateKey != nil {
				t.Errorf("a PFX copy wrote a private key file beside it: %s", r.stdout)
			}

			// Without --kind: the service master key, though every item's
			// copy is newer.
			smkOut := filepath.Join(e.root, "smk.key")
			r = e.run("restore", "--config", e.cfgPath, "--json", "--host", "SQLHOST01", "--out", smkOut)
			if r.code != 0 {
				t.Fatalf("restore without --kind: exit %d\n%s", r.code, r.stderr)
			}
			rec = parseReceipt(t, r.stdout)
			if rec.Kind != "service-master-key" || rec.Item != nil || rec.File.SHA256 != backup.File.SHA256 || sha(ownerOnly(t, smkOut)) != backup.File.SHA256 {
				t.Errorf("restore without --kind took %s %+v, want the service master key %s", rec.Kind, rec.Item, backup.File.Name)
			}
		})
	}
}

func TestDrillOfTheTDECertificateProvesItsThumbprint(t *testing.T) {
	for _, version := range []string{"", "15.0.4355.3"} {
		t.Run("version "+version, func(t *testing.T) {
			e, backup := hierBackedUp(t, version)
			tde := archivedItem(t, backup, "certificate", "master", "TDECert")
			drill := func(scratch *mssqltest.Server, args ...string) (result, receipt) {
				t.Helper()
				e.vars["KEYESCROW_DRILL_DSN"] = scratch.DSN(loginUser, loginPW, nil)
				r := e.run(append([]string{"drill", "--config", e.cfgPath, "--json", "--host", "SQLHOST01", "--kind", "certificate"}, args...)...)
				if left := files(t, e.keyDir); len(left) != 0 {
					t.Errorf("staged files left in the key folder: %v", left)
				}
				return r, parseReceipt(t, r.stdout)
			}
			withMasterKey := func(name string) *mssqltest.Server {
				return newStandin(t, mssqltest.Config{ServerName: name, ProductVersion: version,
					Databases: []mssqltest.Database{{Name: "master", MasterKey: &mssqltest.MasterKey{Password: "Scratch-Dmk-Pa55!"}}}})
			}

			scratch := withMasterKey("SCRATCH01")
			r, rec := drill(scratch, "--database", "master", "--name", "TDECert")
			if r.code != 0 {
				t.Fatalf("drill: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if rec.Kind != "certificate" || rec.Item == nil || rec.Item.Name != "TDECert" || rec.Restore == nil || !rec.Restore.Applied || !rec.Restore.Drill ||
				rec.Restore.Server != "SCRATCH01" || rec.Restore.Thumbprint != tde.Thumbprint || rec.Restore.ThumbprintMatch == nil || !*rec.Restore.ThumbprintMatch {
				t.Fatalf("drill receipt: %s", r.stdout)
			}
			if c, ok := scratch.CertificateOf("master", "TDECert"); !ok || c.PrivateKey == nil {
				t.Fatal("the scratch server does not hold TDECert with its private key")
			}
			if !strings.Contains(r.stderr, "thumbprint is the recorded one") {
				t.Errorf("the log does not say the thumbprint matched:\n%s", r.stderr)
			}

			// A scratch server without a master key in master.
			bare := newStandin(t, mssqltest.Config{ServerName: "SCRATCH02", ProductVersion: version})
			r, rec = drill(bare, "--database", "master", "--name", "TDECert")
			if r.code != 3 || !strings.Contains(r.stderr, "create a master key in master") || rec.Restore.Applied {
				t.Errorf("a scratch server without a master key: exit %d, want 3 saying to create one\n%s", r.code, r.stderr)
			}

			// Every TDE certificate at once.
			all := withMasterKey("SCRATCH03")
			r, rec = drill(all)
			if r.code != 0 || len(rec.Items) != 1 || rec.Items[0].Name != "TDECert" || rec.Items[0].Action != "restored" || !rec.Restore.Applied {
				t.Fatalf("drill of every TDE certificate: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if _, ok := all.CertificateOf("master", "TDECert"); !ok {
				t.Fatal("the scratch server does not hold TDECert")
			}
			// Again into the same scratch server: it holds TDECert now.
			r, rec = drill(all)
			if r.code != 3 || rec.Items[0].Action != "failed" || !strings.Contains(r.stderr, "DROP CERTIFICATE") {
				t.Errorf("a second drill into the same scratch server: exit %d, want 3\n%s", r.code, r.stderr)
			}
		})
	}
}

func TestRestoreApplyOfADatabaseMasterKeyIntoARebuiltServer(t *testing.T) {
	e, _ := hierBackedUp(t, "")
	want, _ := e.srv.MasterKeyOf("HR")
	_ = e.srv.Close() // the server died

	// The rebuilt server: HR came back from a database backup with a
	// master key of its own, which only its password opens.
	rebuilt := newStandin(t, mssqltest.Config{ServerName: `SQLHOST01\INST1`, InstanceName: "INST1",
		Databases: []mssqltest.Database{{Name: "HR", MasterKey: &mssqltest.MasterKey{Password: hrDMKPassword, NoServiceMasterKey: true}}}})
	e.vars["KEYESCROW_SQLSERVER_DSN"] = rebuilt.DSN(loginUser, loginPW, nil)
	before, _ := rebuilt.MasterKeyOf("HR")
	restore := func() (result, receipt) {
		t.Helper()
		r := e.run("restore", "--config", e.cfgPath, "--json", "--host", "SQLHOST01", "--kind", "database-master-key", "--database", "HR", "--apply")
		return r, parseReceipt(t, r.stdout)
	}

	// Without a password for HR in hierarchy.passwords.
	e.writeConfig("")
	if r, _ := restore(); r.code != 2 || !strings.Contains(r.stderr, "hierarchy.passwords") {
		t.Errorf("without HR's password: exit %d, want 2 naming hierarchy.passwords\n%s", r.code, r.stderr)
	}
	if now, _ := rebuilt.MasterKeyOf("HR"); !bytes.Equal(now.Key, before.Key) {
		t.Fatal("a refused restore changed HR's key")
	}

	e.writeConfig(hierPasswords)
	r, rec := restore()
	if r.code != 0 {
		t.Fatalf("restore --apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if rec.Kind != "database-master-key" || rec.Item == nil || rec.Item.Database != "HR" || rec.Item.Name != "##MS_DatabaseMasterKey##" || !rec.Restore.Applied || rec.Restore.Server != `SQLHOST01\INST1` {
		t.Fatalf("restore receipt: %s", r.stdout)
	}
	got, _ := rebuilt.MasterKeyOf("HR")
	if !bytes.Equal(got.Key, want.Key) || got.GUID != want.GUID {
		t.Error("the rebuilt server does not hold HR's archived master key")
	}
	if left := files(t, e.keyDir); len(left) != 0 {
		t.Errorf("the staged key file was left in the key folder: %v", left)
	}
}

// TestSealedItemCopiesAreRestoredWithTheIdentity: with backup.seal_to
// every item's copy has a password of its own; a certificate drill opens
// it with the identity, and restore --out --password-out writes the .cer,
// its .pvk and the opened password, the three owner-only.
func TestSealedItemCopiesAreRestoredWithTheIdentity(t *testing.T) {
	e := newHierEnv(t, "15.0.4355.3")
	e.writeConfig(hierPasswords)
	idPath, rcpt := newIdentity(t, t.TempDir(), "security-team.txt")
	e.sealTo(rcpt)
	if r := e.run("backup", "--config", e.cfgPath, "--json"); r.code != 0 {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	cert := []string{"--host", "SQLHOST01", "--kind", "certificate", "--database", "HR", "--name", "Payroll"}

	dir := t.TempDir()
	out, pwOut := filepath.Join(dir, "payroll.cer"), filepath.Join(dir, "payroll-password.txt")
	r := e.run(append([]string{"restore", "--config", e.cfgPath, "--json", "--out", out, "--password-out", pwOut, "--identity", idPath}, cert...)...)
	if r.code != 0 {
		t.Fatalf("restore --password-out: exit %d\n%s", r.code, r.stderr)
	}
	rec := parseReceipt(t, r.stdout)
	pw := ownerOnly(t, pwOut)
	e.secrets = append(e.secrets, string(pw))
	if len(pw) < 8 || sha(ownerOnly(t, out)) != rec.File.SHA256 || sha(ownerOnly(t, filepath.Join(dir, "payroll.pvk"))) != rec.File.PrivateKey.SHA256 {
		t.Fatalf("the written files are not the copy's:\n%s", r.stdout)
	}
	e.assertNoSecrets(r)

	// The drill: without the identity the sealed password cannot be
	// opened; with it, Payroll goes into HR of a scratch server whose
	// master key only its password opens (hierarchy.passwords has it).
	scratch := newStandin(t, mssqltest.Config{ServerName: "SCRATCH01", ProductVersion: "15.0.4355.3",
		Databases: []mssqltest.Database{{Name: "HR", MasterKey: &mssqltest.MasterKey{Password: hrDMKPassword, NoServiceMasterKey: true}}}})
	e.vars["KEYESCROW_DRILL_DSN"] = scratch.DSN(loginUser, loginPW, nil)
	if r := e.run(append([]string{"drill", "--config", e.cfgPath}, cert...)...); r.code != 2 || !strings.Contains(r.stderr, "--identity") {
		t.Errorf("a sealed drill without the identity: exit %d, want 2 naming --identity\n%s", r.code, r.stderr)
	}
	r = e.run(append([]string{"drill", "--config", e.cfgPath, "--json", "--identity", idPath}, cert...)...)
	if r.code != 0 {
		t.Fatalf("drill: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if rec := parseReceipt(t, r.stdout); rec.Restore.ThumbprintMatch == nil || !*rec.Restore.ThumbprintMatch {
		t.Errorf("drill receipt: %s", r.stdout)
	}
	if c, ok := scratch.CertificateOf("HR", "Payroll"); !ok || c.PrivateKey == nil || c.Protection != mssqltest.ByMasterKey {
		t.Errorf("the scratch server holds %+v (%v)", c, ok)
	}
}

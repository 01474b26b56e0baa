package sqlserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/secret"
)

const (
	hrDMKPW   = `Hr'Dmk-Pa55"wörd`
	pwCertPW  = "Cert'Pa55-word!"
	fileKeyPW = `F1le'Key-Pa55\wörd`
	ownerUser = "hr_owner"
)

// hierarchyStandin is a server with the whole hierarchy: master with an
// SMK-protected master key, the TDE certificate and SQL Server's system
// certificates; Sales encrypted by TDE; "H]R" whose master key opens only
// with its password and holds a certificate of each protection; an
// offline database and one without keys.
func hierarchyStandin(t *testing.T, version string) *mssqltest.Server {
	t.Helper()
	return newStandin(t, mssqltest.Config{
		ProductVersion: version,
		Logins: []mssqltest.Login{
			{User: testUser, Password: testLoginPW, ControlServer: true},
			{User: "reader", Password: testLoginPW},
			{User: ownerUser, Password: testLoginPW, Databases: []string{"H]R"}, ViewServerState: true},
		},
		Databases: []mssqltest.Database{
			{Name: "master", MasterKey: &mssqltest.MasterKey{Password: "Master-Dmk-Pa55"}, Certificates: []mssqltest.Certificate{{Name: "TDECert"}}},
			{Name: "Sales", TDECertificate: "TDECert", MasterKey: &mssqltest.MasterKey{Password: "Sales-Dmk-Pa55"}, Certificates: []mssqltest.Certificate{{Name: "SalesCert"}}},
			{Name: "H]R", MasterKey: &mssqltest.MasterKey{Password: hrDMKPW, NoServiceMasterKey: true}, Certificates: []mssqltest.Certificate{
				{Name: "HRCert"}, {Name: "HR Pw'Cert", PrivateKey: mssqltest.ByPassword, Password: pwCertPW}, {Name: "HRPublic", PrivateKey: mssqltest.NoPrivateKey},
			}},
			{Name: "Archive", Offline: true},
			{Name: "Emp'ty"},
		},
	})
}

func TestInventoryReadsTheWholeHierarchy(t *testing.T) {
	srv := hierarchyStandin(t, "")
	h, err := open(t, srv.DSN(testUser, testLoginPW, nil)).Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.MajorVersion != 16 {
		t.Errorf("MajorVersion %d", h.MajorVersion)
	}
	var names []string
	for _, d := range h.Databases {
		names = append(names, d.Name)
		if d.Name != "Archive" && d.Problem != "" {
			t.Errorf("%s: %s", d.Name, d.Problem)
		}
	}
	if strings.Join(names, ",") != "Archive,Emp'ty,H]R,master,model,msdb,Sales,tempdb" {
		t.Fatalf("databases %v", names)
	}
	t.Run("master key GUIDs and protection", func(t *testing.T) {
		for db, smk := range map[string]bool{"master": true, "Sales": true, "H]R": false} {
			mk := h.Find(db).MasterKey
			want, _ := srv.MasterKeyOf(db)
			if mk == nil || mk.GUID != want.GUID || mk.ServiceMasterKey != smk || mk.Modified.IsZero() {
				t.Errorf("%s: %+v, want GUID %s SMK %v", db, mk, want.GUID, smk)
			}
		}
		if h.Find("Emp'ty").MasterKey != nil {
			t.Error("Empty has a master key")
		}
	})
	t.Run("certificates with thumbprints, private keys and the system ones flagged", func(t *testing.T) {
		var got []string
		for _, c := range h.Find("master").Certificates {
			got = append(got, fmt.Sprintf("%s %s %v", c.Name, c.PrivateKey, c.System()))
		}
		want := "##MS_AgentSigningCertificate## NA true,##MS_SQLResourceSigningCertificate## NA true,TDECert MK false"
		if strings.Join(got, ",") != want {
			t.Errorf("master: %q", strings.Join(got, ","))
		}
		for _, c := range h.Find("H]R").Certificates {
			ci, _ := srv.CertificateOf("H]R", c.Name)
			if !bytes.Equal(c.Thumbprint, ci.Thumbprint) || c.PrivateKey != string(ci.Protection) || c.HasPrivateKey() != (ci.PrivateKey != nil) ||
				!c.Expiry.Equal(ci.Certificate.NotAfter) || !c.LastBackup.IsZero() {
				t.Errorf("%s: %+v", c.Name, c)
			}
		}
	})
	t.Run("TDE: Sales is protected by TDECert, tempdb by no certificate", func(t *testing.T) {
		e := h.Find("Sales").Encryption
		if e == nil || e.Certificate != "TDECert" || e.State != 3 || e.Type != "CERTIFICATE" {
			t.Fatalf("Sales: %+v", e)
		}
		if e := h.Find("tempdb").Encryption; e == nil || e.Certificate != "" {
			t.Fatalf("tempdb: %+v", e)
		}
		if h.Find("H]R").Encryption != nil {
			t.Fatal("H]R is not encrypted")
		}
		if got := h.TDECertificates(); !slices.Equal(got, []string{"TDECert"}) {
			t.Fatalf("TDECertificates %v", got)
		}
	})
	t.Run("an offline database has a problem and no keys", func(t *testing.T) {
		if d := h.Find("Archive"); d.Problem == "" || !strings.Contains(d.Problem, "OFFLINE") || d.Certificates != nil {
			t.Fatalf("%+v", d)
		}
	})
	t.Run("a database owner reads its database; the others carry the refusal", func(t *testing.T) {
		h, err := open(t, srv.DSN(ownerUser, testLoginPW, nil)).Inventory(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if d := h.Find("H]R"); d.Problem != "" || d.MasterKey == nil || len(d.Certificates) != 3 {
			t.Fatalf("H]R: %+v", d)
		}
		// Where it lacks CONTROL (master it may enter, Sales it may not)
		// the database says so instead of looking empty.
		for _, db := range []string{"master", "Sales"} {
			if d := h.Find(db); !strings.Contains(d.Problem, "does not hold CONTROL on the database") || d.MasterKey != nil || d.Certificates != nil {
				t.Fatalf("%s: %+v", db, d)
			}
		}
	})
	t.Run("without VIEW SERVER STATE the inventory fails with the grant to make", func(t *testing.T) {
		_, err := open(t, srv.DSN("reader", testLoginPW, nil)).Inventory(context.Background())
		var se *Error
		if exitcode.Code(err) != exitcode.SQLServer || !errors.As(err, &se) || se.Number != ErrNumDMVDenied || !strings.Contains(err.Error(), "GRANT VIEW SERVER STATE") {
			t.Fatalf("%v", err)
		}
	})
}

// noSecrets fails when err's text holds any of the passwords, as given or
// with quotes doubled.
func noSecrets(t *testing.T, err error, pws ...string) {
	t.Helper()
	for _, pw := range append(pws, testLoginPW) {
		for _, s := range []string{pw, strings.ReplaceAll(pw, "'", "''")} {
			if err != nil && strings.Contains(err.Error(), s) {
				t.Fatalf("the error contains a password: %v", err)
			}
		}
	}
}

// wantSQL checks exit code 3, the number and that the message says each of want.
func wantSQL(t *testing.T, err error, n int32, want ...string) {
	t.Helper()
	var se *Error
	if exitcode.Code(err) != exitcode.SQLServer || !errors.As(err, &se) || se.Number != n {
		t.Fatalf("got %v (exit %d), want Msg %d", err, exitcode.Code(err), n)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q does not say %q", err, w)
		}
	}
}

func TestBackupDatabaseMasterKey(t *testing.T) {
	srv := hierarchyStandin(t, "")
	dir := quotedDir(t)
	ctx := context.Background()
	c := open(t, srv.DSN(testUser, testLoginPW, nil))
	pw := secret.New(fileKeyPW)

	t.Run("a key the SMK protects needs no password; only the backup password opens the file", func(t *testing.T) {
		path := filepath.Join(dir, "sales.key")
		if err := c.BackupDatabaseMasterKey(ctx, "Sales", path, pw, secret.Value{}); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		want, _ := srv.MasterKeyOf("Sales")
		if _, key, err := mssqltest.OpenMasterKeyFile(data, fileKeyPW); err != nil || !bytes.Equal(key, want.Key) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("a password-only key is 15581 without its password, 15313 with a wrong one", func(t *testing.T) {
		err := c.BackupDatabaseMasterKey(ctx, "H]R", filepath.Join(dir, "a.key"), pw, secret.Value{})
		wantSQL(t, err, ErrNumMasterKeyNotOpen, "database master key backup of database H]R", "give its password")
		err = c.BackupDatabaseMasterKey(ctx, "H]R", filepath.Join(dir, "b.key"), pw, secret.New("Wr0ng'Pa55word"))
		wantSQL(t, err, ErrNumWrongDecryptor, "does not open the database master key")
		noSecrets(t, err, fileKeyPW, "Wr0ng'Pa55word")
	})
	t.Run("with its password it is opened, backed up, and closed again", func(t *testing.T) {
		if err := c.BackupDatabaseMasterKey(ctx, "H]R", filepath.Join(dir, "hr.key"), pw, secret.New(hrDMKPW)); err != nil {
			t.Fatal(err)
		}
		err := c.BackupDatabaseMasterKey(ctx, "H]R", filepath.Join(dir, "c.key"), pw, secret.Value{})
		wantSQL(t, err, ErrNumMasterKeyNotOpen)
		// and the session is back in master: the unqualified view is master's.
		var name string
		if err := c.conn.QueryRowContext(ctx, "SELECT name FROM sys.symmetric_keys WHERE name = N'##MS_ServiceMasterKey##'").Scan(&name); err != nil {
			t.Fatalf("not back in master: %v", err)
		}
	})
	for _, tc := range []struct {
		name, db, path string
		number         int32
		want           string
	}{
		{"no master key is 15151", "Emp'ty", "d.key", ErrNumObjectNotFound, "has no master key"},
		{"a missing database is 911", "Nope", "e.key", ErrNumDatabaseMissing, "no database of that name"},
		{"an offline database is 942", "Archive", "f.key", ErrNumDatabaseOffline, "offline"},
		{"an existing file is 15240", "Sales", "sales.key", ErrNumCannotWriteFile, "new file name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.BackupDatabaseMasterKey(ctx, tc.db, filepath.Join(dir, tc.path), pw, secret.Value{})
			wantSQL(t, err, tc.number, tc.want)
		})
	}
	t.Run("a server message quoting a password is scrubbed", func(t *testing.T) {
		srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupMasterKey, Times: 1, Error: &mssqltest.Error{Number: 50000, Class: 16, State: 1,
			Message: "echo " + fileKeyPW + " " + hrDMKPW + " " + strings.ReplaceAll(hrDMKPW, "'", "''")}})
		err := c.BackupDatabaseMasterKey(ctx, "H]R", filepath.Join(dir, "g.key"), pw, secret.New(hrDMKPW))
		wantSQL(t, err, 50000, "echo "+secret.Redacted+" "+secret.Redacted+" "+secret.Redacted)
		noSecrets(t, err, fileKeyPW, hrDMKPW)
	})
}

func TestRestoreDatabaseMasterKey(t *testing.T) {
	donor := hierarchyStandin(t, "")
	dir := quotedDir(t)
	ctx := context.Background()
	file := filepath.Join(dir, "hr.key")
	if err := open(t, donor.DSN(testUser, testLoginPW, nil)).BackupDatabaseMasterKey(ctx, "H]R", file, secret.New(fileKeyPW), secret.New(hrDMKPW)); err != nil {
		t.Fatal(err)
	}
	want, _ := donor.MasterKeyOf("H]R")
	newPW := secret.New("N3w'Dmk-Pa55")

	srv := hierarchyStandin(t, "")
	c := open(t, srv.DSN(testUser, testLoginPW, nil))
	err := c.RestoreDatabaseMasterKey(ctx, "H]R", file, secret.New(fileKeyPW), newPW, secret.Value{}, false)
	wantSQL(t, err, ErrNumCurrentKeyUndecryptable, "give the current key's password", "lost for good")
	err = c.RestoreDatabaseMasterKey(ctx, "H]R", file, secret.New("Wr0ng'Pa55word"), newPW, secret.New(hrDMKPW), false)
	wantSQL(t, err, ErrNumDecryption, "FORCE does not help")
	noSecrets(t, err, "Wr0ng'Pa55word", newPW.Reveal(), hrDMKPW)
	err = c.RestoreDatabaseMasterKey(ctx, "H]R", filepath.Join(dir, "missing.key"), secret.New(fileKeyPW), newPW, secret.New(hrDMKPW), false)
	wantSQL(t, err, ErrNumKeyFileInvalid)
	if got, _ := srv.MasterKeyOf("H]R"); bytes.Equal(got.Key, want.Key) {
		t.Fatal("a failed restore installed the key")
	}
	if err := c.RestoreDatabaseMasterKey(ctx, "H]R", file, secret.New(fileKeyPW), newPW, secret.New(hrDMKPW), false); err != nil {
		t.Fatal(err)
	}
	if got, _ := srv.MasterKeyOf("H]R"); !bytes.Equal(got.Key, want.Key) || got.GUID != want.GUID {
		t.Fatal("the restore did not install the file's key")
	}
	// The new password opens the restored key.
	if err := c.BackupDatabaseMasterKey(ctx, "H]R", filepath.Join(dir, "again.key"), secret.New(fileKeyPW), newPW); err != nil {
		t.Fatalf("the new password does not open the restored key: %v", err)
	}

	// FORCE over a key that does not open goes through and loses the
	// private keys only that key protected.
	forced := hierarchyStandin(t, "")
	fc := open(t, forced.DSN(testUser, testLoginPW, nil))
	if err := fc.RestoreDatabaseMasterKey(ctx, "H]R", file, secret.New(fileKeyPW), newPW, secret.Value{}, true); err != nil {
		t.Fatalf("FORCE: %v", err)
	}
	h, err := fc.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, ct := range h.Find("H]R").Certificates {
		keys[ct.Name] = ct.PrivateKey
	}
	if keys["HRCert"] != KeyNone || keys["HR Pw'Cert"] != KeyByPassword {
		t.Errorf("after FORCE: %v, want HRCert's key lost and the password-protected one kept", keys)
	}
}

func TestCertificateBackupAndRestoreByVersion(t *testing.T) {
	for _, v := range []struct {
		version string
		format  CertificateFormat
	}{{"15.0.4355.3", FormatPVK}, {"16.0.4135.4", FormatPFX}} {
		t.Run(v.version, func(t *testing.T) {
			ctx := context.Background()
			donor := hierarchyStandin(t, v.version)
			c := open(t, donor.DSN(testUser, testLoginPW, nil))
			h, err := c.Inventory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if FormatFor(h.MajorVersion) != v.format {
				t.Fatalf("FormatFor(%d)", h.MajorVersion)
			}
			dir := quotedDir(t)
			files := CertificateFiles{Format: v.format, Certificate: filepath.Join(dir, "tde.cer"), PrivateKey: filepath.Join(dir, "tde.pvk")}
			if v.format == FormatPFX {
				files = CertificateFiles{Format: v.format, Certificate: filepath.Join(dir, "tde.pfx")}
			}
			if err := c.BackupCertificate(ctx, CertificateBackup{Database: "master", Name: "TDECert", Files: files, Password: secret.New(fileKeyPW)}); err != nil {
				t.Fatal(err)
			}
			after, _ := c.Inventory(ctx)
			tde := after.Find("master").Certificates[2]
			if tde.Name != "TDECert" || tde.LastBackup.IsZero() {
				t.Fatalf("the backup date was not set: %+v", tde)
			}

			target := hierarchyStandin(t, v.version)
			if err := target.DropCertificate("master", "TDECert"); err != nil {
				t.Fatal(err)
			}
			tc := open(t, target.DSN(testUser, testLoginPW, nil))
			restore := CertificateRestore{Database: "master", Name: "TDECert", Files: files, Password: secret.New(fileKeyPW)}
			if err := tc.CreateCertificateFromFile(ctx, restore); err != nil {
				t.Fatal(err)
			}
			th, _ := tc.Inventory(ctx)
			got := th.Find("master").Certificates[2]
			if !bytes.Equal(got.Thumbprint, tde.Thumbprint) || got.PrivateKey != KeyByMasterKey {
				t.Fatalf("restored %+v, want thumbprint %X", got, tde.Thumbprint)
			}
			err = tc.CreateCertificateFromFile(ctx, restore)
			wantSQL(t, err, ErrNumCertificateExists, "already holds a certificate")
			noSecrets(t, err, fileKeyPW)
		})
	}
}

func TestCertificateErrorsSayWhatToDo(t *testing.T) {
	ctx := context.Background()
	srv := hierarchyStandin(t, "15.0.4355.3")
	c := open(t, srv.DSN(testUser, testLoginPW, nil))
	dir := quotedDir(t)
	pvk := func(n string) CertificateFiles {
		return CertificateFiles{Certificate: filepath.Join(dir, n+".cer"), PrivateKey: filepath.Join(dir, n+".pvk")}
	}
	for _, tc := range []struct {
		name   string
		b      CertificateBackup
		number int32
		want   string
	}{
		{"no private key is 15246", CertificateBackup{Database: "H]R", Name: "HRPublic", Files: pvk("a")}, ErrNumNoPrivateKey, "no private key"},
		{"a key under a closed master key is 15581", CertificateBackup{Database: "H]R", Name: "HRCert", Files: pvk("b")}, ErrNumMasterKeyNotOpen, "give its password"},
		{"the master key password opens it", CertificateBackup{Database: "H]R", Name: "HRCert", Files: pvk("c"), MasterKeyPassword: secret.New(hrDMKPW)}, 0, ""},
		{"a key with its own password needs it: 15334", CertificateBackup{Database: "H]R", Name: "HR Pw'Cert", Files: pvk("d")}, ErrNumKeyPasswordNeeded, "give that password"},
		{"a wrong key password is 15465", CertificateBackup{Database: "H]R", Name: "HR Pw'Cert", Files: pvk("e"), KeyPassword: secret.New("Wr0ng'Pa55word")}, ErrNumKeyPasswordInvalid, "password is wrong"},
		{"the right key password works", CertificateBackup{Database: "H]R", Name: "HR Pw'Cert", Files: pvk("f"), KeyPassword: secret.New(pwCertPW)}, 0, ""},
		{"an unknown certificate is 15151", CertificateBackup{Database: "Sales", Name: "Nope", Files: pvk("g")}, ErrNumObjectNotFound, "no certificate of that name"},
		{"PFX before SQL Server 2022 is refused by the server", CertificateBackup{Database: "Sales", Name: "SalesCert", Files: CertificateFiles{Format: FormatPFX, Certificate: filepath.Join(dir, "h.pfx")}}, ErrNumSyntax, "SQL Server 2022"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.b.Password = secret.New(fileKeyPW)
			err := c.BackupCertificate(ctx, tc.b)
			if tc.number == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantSQL(t, err, tc.number, tc.want, "certificate backup of "+tc.b.Name+" in database "+tc.b.Database)
			noSecrets(t, err, fileKeyPW, pwCertPW, hrDMKPW, "Wr0ng'Pa55word")
		})
	}
	t.Run("restoring another certificate's key is 15474", func(t *testing.T) {
		files := CertificateFiles{Certificate: filepath.Join(dir, "c.cer"), PrivateKey: filepath.Join(dir, "f.pvk")}
		err := c.CreateCertificateFromFile(ctx, CertificateRestore{Database: "Sales", Name: "X", Files: files, Password: secret.New(fileKeyPW)})
		wantSQL(t, err, ErrNumPrivateKeyMismatch, "of one backup together")
	})
	t.Run("a wrong file password is 15465", func(t *testing.T) {
		err := c.CreateCertificateFromFile(ctx, CertificateRestore{Database: "Sales", Name: "X", Files: pvk("c"), Password: secret.New("Wr0ng'Pa55word")})
		wantSQL(t, err, ErrNumKeyPasswordInvalid)
	})
	t.Run("files that do not fit the format are refused before anything is sent", func(t *testing.T) {
		before := len(srv.Statements())
		for _, f := range []CertificateFiles{{Certificate: "x.cer"}, {Format: FormatPFX, Certificate: "x.pfx", PrivateKey: "x.pvk"}, {}} {
			if err := c.BackupCertificate(ctx, CertificateBackup{Database: "Sales", Name: "SalesCert", Files: f}); err == nil {
				t.Errorf("%+v accepted", f)
			}
		}
		if len(srv.Statements()) != before {
			t.Fatal("a statement was sent")
		}
	})
}

// TestInventoryOnEveryTarget reads the hierarchy of the stand-in and, when
// KEYESCROW_TEST_SQLSERVER_DSN is set, of a real SQL Server too (read-only:
// catalog views only).
func TestInventoryOnEveryTarget(t *testing.T) {
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			h, err := open(t, tg.dsn).Inventory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if h.MajorVersion < 11 || h.Find("master") == nil || h.Find("tempdb") == nil {
				t.Fatalf("version %d, databases %+v", h.MajorVersion, h.Databases)
			}
			for _, d := range h.Databases {
				for _, c := range d.Certificates {
					if len(c.Thumbprint) == 0 || c.PrivateKey == "" {
						t.Errorf("%s.%s: %+v", d.Name, c.Name, c)
					}
				}
				if d.Encryption != nil && d.Encryption.Certificate == "" && d.Name != "tempdb" && d.Encryption.Type == "CERTIFICATE" {
					t.Errorf("%s is encrypted by a certificate that is not in master's inventory", d.Name)
				}
			}
		})
	}
}

package mssqltest

import (
	"bytes"
	"context"
	"crypto"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
)

const (
	ownerUser  = "hr_owner"
	ownerPass  = "Own3r-Pa55!"
	hrDMKPass  = "Hr-Dmk-Pa55word"
	pwCertPass = "Cert-Pa55word!"
	newKeyPass = "Fresh-Pa55word"
)

// ident bracket-quotes a name the way the agent must.
func ident(s string) string { return "[" + strings.ReplaceAll(s, "]", "]]") + "]" }

// hierarchyConfig is the server of the hierarchy tests: master with an
// SMK-protected master key and the TDE certificate, Sales encrypted by it,
// HR whose master key only a password opens, with a certificate of each
// protection, an offline database and one without keys.
func hierarchyConfig() Config {
	return Config{
		Logins: []Login{
			{User: adminUser, Password: adminPass, ControlServer: true},
			{User: plainUser, Password: plainPass},
			{User: ownerUser, Password: ownerPass, Databases: []string{"H]R"}},
		},
		Databases: []Database{
			{Name: "master", MasterKey: &MasterKey{Password: "Master-Dmk-Pa55"}, Certificates: []Certificate{{Name: "TDECert", Subject: "TDE for Sales"}}},
			{Name: "Sales", TDECertificate: "TDECert", MasterKey: &MasterKey{Password: "Sales-Dmk-Pa55"}, Certificates: []Certificate{{Name: "SalesCert"}}},
			{Name: "H]R", MasterKey: &MasterKey{Password: hrDMKPass, NoServiceMasterKey: true}, Certificates: []Certificate{
				{Name: "HRCert"}, {Name: "HR Pw'Cert", PrivateKey: ByPassword, Password: pwCertPass}, {Name: "HRPublic", PrivateKey: NoPrivateKey},
			}},
			{Name: "Archive", Offline: true},
			{Name: "Empty"},
		},
	}
}

// session is one connection (USE and OPEN MASTER KEY are per session).
func session(t *testing.T, srv *Server, user, pass string) *sql.Conn {
	t.Helper()
	db := mustDB(t, srv, user, pass)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c *sql.Conn, stmts ...string) error {
	t.Helper()
	for _, s := range stmts {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.ExecContext(ctx, s)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

func wantNumber(t *testing.T, err error, n int32) {
	t.Helper()
	if got := errNumber(err); got != n {
		t.Fatalf("error %v (Msg %d), want Msg %d", err, got, n)
	}
}

func TestCatalogViewsShowTheHierarchy(t *testing.T) {
	srv := startServer(t, hierarchyConfig())
	c := session(t, srv, adminUser, adminPass)
	ctx := context.Background()

	t.Run("sys.databases lists every database with TDE and SMK protection", func(t *testing.T) {
		rows, err := c.QueryContext(ctx, "SELECT name, database_id, state_desc, is_encrypted, is_master_key_encrypted_by_server FROM sys.databases ORDER BY name")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[string]string{}
		var order []string
		for rows.Next() {
			var name, state string
			var id int
			var enc, bySMK bool
			if err := rows.Scan(&name, &id, &state, &enc, &bySMK); err != nil {
				t.Fatal(err)
			}
			order = append(order, name)
			got[name] = strings.Join([]string{state, boolStr(enc), boolStr(bySMK)}, " ")
		}
		want := map[string]string{"master": "ONLINE no yes", "Sales": "ONLINE yes yes", "H]R": "ONLINE no no", "Archive": "OFFLINE no no", "Empty": "ONLINE no no", "tempdb": "ONLINE no no"}
		for n, w := range want {
			if got[n] != w {
				t.Errorf("%s: %q, want %q", n, got[n], w)
			}
		}
		if strings.Join(order, ",") != "Archive,Empty,H]R,master,model,msdb,Sales,tempdb" {
			t.Errorf("ORDER BY name: %v", order)
		}
	})
	t.Run("a three-part name reads a database's master key", func(t *testing.T) {
		var guid mssql.UniqueIdentifier
		var created, modified time.Time
		err := c.QueryRowContext(ctx, "SELECT key_guid, create_date, modify_date FROM "+ident("H]R")+".sys.symmetric_keys WHERE name = N'##MS_DatabaseMasterKey##'").Scan(&guid, &created, &modified)
		if err != nil {
			t.Fatal(err)
		}
		mk, _ := srv.MasterKeyOf("H]R")
		if guid.String() != mk.GUID || modified.IsZero() {
			t.Fatalf("key_guid %s modify_date %v, want %s", guid, modified, mk.GUID)
		}
	})
	t.Run("sys.certificates gives thumbprints and protections", func(t *testing.T) {
		rows, err := c.QueryContext(ctx, "SELECT c.name, c.thumbprint, c.pvt_key_encryption_type AS prot, expiry_date, pvt_key_last_backup_date FROM [H]]R].sys.certificates AS c ORDER BY name DESC")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var names []string
		for rows.Next() {
			var name, prot string
			var thumb []byte
			var expiry time.Time
			var last sql.NullTime
			if err := rows.Scan(&name, &thumb, &prot, &expiry, &last); err != nil {
				t.Fatal(err)
			}
			ci, _ := srv.CertificateOf("H]R", name)
			if !bytes.Equal(thumb, ci.Thumbprint) || prot != string(ci.Protection) || last.Valid || !expiry.Equal(ci.Certificate.NotAfter) {
				t.Errorf("%s: thumbprint %x prot %s last %v expiry %v; stand-in holds %x %s %v", name, thumb, prot, last, expiry, ci.Thumbprint, ci.Protection, ci.Certificate.NotAfter)
			}
			names = append(names, name)
		}
		if strings.Join(names, ",") != "HRPublic,HRCert,HR Pw'Cert" {
			t.Errorf("names %v", names)
		}
	})
	t.Run("sys.dm_database_encryption_keys maps Sales to the master certificate, and tempdb to none", func(t *testing.T) {
		rows, err := c.QueryContext(ctx, "SELECT database_id, encryption_state, encryptor_thumbprint, encryptor_type FROM sys.dm_database_encryption_keys ORDER BY database_id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var id, state int
			var thumb []byte
			var typ sql.NullString
			if err := rows.Scan(&id, &state, &thumb, &typ); err != nil {
				t.Fatal(err)
			}
			got = append(got, strings.Join([]string{itoa(id), itoa(state), hex.EncodeToString(thumb), typ.String}, " "))
		}
		ci, _ := srv.CertificateOf("master", "TDECert")
		want := "2 3  ,5 3 " + hex.EncodeToString(ci.Thumbprint) + " CERTIFICATE"
		if strings.Join(got, ",") != want {
			t.Fatalf("got %q, want %q", strings.Join(got, ","), want)
		}
	})
	t.Run("SERVERPROPERTY('ProductMajorVersion') is the major version", func(t *testing.T) {
		var v int
		if err := c.QueryRowContext(ctx, "SELECT CAST(SERVERPROPERTY('ProductMajorVersion') AS int) AS v").Scan(&v); err != nil || v != 16 {
			t.Fatalf("%d %v", v, err)
		}
	})
	errs := []struct {
		name   string
		user   string
		query  string
		number int32
	}{
		{"an offline database is Msg 942", adminUser, "SELECT name FROM Archive.sys.certificates", 942},
		{"a database the login cannot enter is Msg 916", plainUser, "SELECT name FROM [H]]R].sys.certificates", 916},
		{"a database that does not exist is Msg 208", adminUser, "SELECT name FROM Nope.sys.certificates", 208},
		{"an unknown view is Msg 208", adminUser, "SELECT name FROM sys.tables", 208},
		{"an unknown column is Msg 207", adminUser, "SELECT nope FROM sys.databases", 207},
		{"the DMV without VIEW SERVER STATE is Msg 300 and 297", plainUser, "SELECT database_id FROM sys.dm_database_encryption_keys", 297},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			pass := adminPass
			if tt.user == plainUser {
				pass = plainPass
			}
			rows, err := session(t, srv, tt.user, pass).QueryContext(ctx, tt.query)
			if err == nil {
				rows.Close()
			}
			wantNumber(t, err, tt.number)
			var me mssql.Error
			if tt.number == 297 && (!errors.As(err, &me) || len(me.All) != 2 || me.All[0].Number != 300) {
				t.Fatalf("want Msg 300 then 297: %+v", me.All)
			}
		})
	}
	t.Run("a login without CONTROL sees no certificate rows", func(t *testing.T) {
		rows, err := session(t, srv, plainUser, plainPass).QueryContext(ctx, "SELECT name FROM master.sys.certificates")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		if rows.Next() {
			t.Fatal("a row is visible")
		}
	})
}

func boolStr(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func TestUseChangesTheSessionDatabase(t *testing.T) {
	srv := startServer(t, hierarchyConfig())
	for _, tt := range []struct {
		name, user, pass, db string
		number               int32
	}{
		{"a missing database is Msg 911", adminUser, adminPass, "Nope", 911},
		{"an offline database is Msg 942", adminUser, adminPass, "Archive", 942},
		{"a database without access is Msg 916", plainUser, plainPass, "H]R", 916},
		{"the owner enters its database", ownerUser, ownerPass, "H]R", 0},
		{"anyone enters master", plainUser, plainPass, "master", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := session(t, srv, tt.user, tt.pass)
			err := run(t, c, "USE "+ident(tt.db))
			if tt.number != 0 {
				wantNumber(t, err, tt.number)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The session is in the database now: an unqualified catalog
			// query reads it.
			rows, err := c.QueryContext(context.Background(), "SELECT name FROM sys.certificates")
			if err != nil {
				t.Fatal(err)
			}
			rows.Close()
		})
	}
}

func TestBackupMasterKey(t *testing.T) {
	srv := startServer(t, hierarchyConfig())
	dir := t.TempDir()
	file := func(n string) string { return filepath.Join(dir, n) }

	t.Run("an SMK-protected key needs no OPEN, and only the password opens the file", func(t *testing.T) {
		c := session(t, srv, adminUser, adminPass)
		path := file("sales'.key")
		if err := run(t, c, "USE [Sales]", "BACKUP MASTER KEY TO FILE = "+quote(path)+" ENCRYPTION BY PASSWORD = "+quote(newKeyPass)); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		guid, key, err := OpenMasterKeyFile(data, newKeyPass)
		mk, _ := srv.MasterKeyOf("Sales")
		if err != nil || guidString(guid) != mk.GUID || !bytes.Equal(key, mk.Key) {
			t.Fatalf("OpenMasterKeyFile: %v", err)
		}
		if _, _, err := OpenMasterKeyFile(data, newKeyPass+"x"); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("wrong password: %v", err)
		}
		if _, err := OpenKeyFile(data, newKeyPass); !errors.Is(err, ErrCorruptKeyFile) {
			t.Fatalf("a master key file passes as a service master key file: %v", err)
		}
	})
	t.Run("a password-only key must be opened: 15581, then 15313 for a wrong password, then it works until CLOSE", func(t *testing.T) {
		c := session(t, srv, ownerUser, ownerPass)
		backup := func(n string) error {
			return run(t, c, "BACKUP MASTER KEY TO FILE = "+quote(file(n))+" ENCRYPTION BY PASSWORD = "+quote(newKeyPass))
		}
		if err := run(t, c, "USE [H]]R]"); err != nil {
			t.Fatal(err)
		}
		wantNumber(t, backup("hr1.key"), 15581)
		wantNumber(t, run(t, c, "OPEN MASTER KEY DECRYPTION BY PASSWORD = "+quote("Wrong-Pa55word")), 15313)
		if err := run(t, c, "OPEN MASTER KEY DECRYPTION BY PASSWORD = "+quote(hrDMKPass)); err != nil {
			t.Fatal(err)
		}
		if err := backup("hr2.key"); err != nil {
			t.Fatal(err)
		}
		if err := run(t, c, "CLOSE MASTER KEY"); err != nil {
			t.Fatal(err)
		}
		wantNumber(t, backup("hr3.key"), 15581)
		// Another session never sees this one's open key.
		other := session(t, srv, adminUser, adminPass)
		if err := run(t, c, "OPEN MASTER KEY DECRYPTION BY PASSWORD = "+quote(hrDMKPass)); err != nil {
			t.Fatal(err)
		}
		wantNumber(t, run(t, other, "USE [H]]R]", "BACKUP MASTER KEY TO FILE = "+quote(file("hr4.key"))+" ENCRYPTION BY PASSWORD = "+quote(newKeyPass)), 15581)
	})
	for _, tt := range []struct {
		name, user, pass, db, path, pw string
		number                         int32
	}{
		{"no master key is 15151", adminUser, adminPass, "Empty", file("e.key"), newKeyPass, 15151},
		{"no CONTROL on the database is 15247", plainUser, plainPass, "master", file("p.key"), newKeyPass, 15247},
		{"a weak password is 15118", adminUser, adminPass, "Sales", file("w.key"), "weakpassword", 15118},
		{"a short password is 15116", adminUser, adminPass, "Sales", file("s.key"), "Ab1!", 15116},
		{"an existing file is 15240", adminUser, adminPass, "Sales", file("sales'.key"), newKeyPass, 15240},
		{"OPEN MASTER KEY without a key is 15151", adminUser, adminPass, "Empty", "", "", 15151},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := session(t, srv, tt.user, tt.pass)
			stmt := "BACKUP MASTER KEY TO FILE = " + quote(tt.path) + " ENCRYPTION BY PASSWORD = " + quote(tt.pw)
			if tt.path == "" {
				stmt = "OPEN MASTER KEY DECRYPTION BY PASSWORD = " + quote(newKeyPass)
			}
			wantNumber(t, run(t, c, "USE "+ident(tt.db), stmt), tt.number)
		})
	}
}

// backupDMK writes db's master key from srv to a new file with newKeyPass.
func backupDMK(t *testing.T, srv *Server, db, path string) {
	t.Helper()
	if err := run(t, session(t, srv, adminUser, adminPass), "USE "+ident(db), "BACKUP MASTER KEY TO FILE = "+quote(path)+" ENCRYPTION BY PASSWORD = "+quote(newKeyPass)); err != nil {
		t.Fatal(err)
	}
}

func restoreMK(path, dec, enc string) string {
	return "RESTORE MASTER KEY FROM FILE = " + quote(path) + " DECRYPTION BY PASSWORD = " + quote(dec) + " ENCRYPTION BY PASSWORD = " + quote(enc)
}

func TestRestoreMasterKey(t *testing.T) {
	donor := startServer(t, hierarchyConfig())
	dir := t.TempDir()
	good := filepath.Join(dir, "sales.key")
	backupDMK(t, donor, "Sales", good)
	smkFile := filepath.Join(dir, "smk.key")
	if err := runBatch(t, mustDB(t, donor, adminUser, adminPass), backupStmt(smkFile, newKeyPass)); err != nil {
		t.Fatal(err)
	}
	want, _ := donor.MasterKeyOf("Sales")

	t.Run("the file's key, GUID and the SMK protection of the old key carry over", func(t *testing.T) {
		srv := startServer(t, hierarchyConfig())
		if err := run(t, session(t, srv, adminUser, adminPass), "USE Sales", restoreMK(good, newKeyPass, "Other-Pa55word")); err != nil {
			t.Fatal(err)
		}
		got, _ := srv.MasterKeyOf("Sales")
		if !bytes.Equal(got.Key, want.Key) || got.GUID != want.GUID || !got.ServiceMasterKey {
			t.Fatalf("restored %+v, want %+v", got, want)
		}
	})
	t.Run("a database without a key gets one, not protected by the SMK", func(t *testing.T) {
		srv := startServer(t, hierarchyConfig())
		c := session(t, srv, adminUser, adminPass)
		if err := run(t, c, "USE Empty", restoreMK(good, newKeyPass, "Other-Pa55word")); err != nil {
			t.Fatal(err)
		}
		got, ok := srv.MasterKeyOf("Empty")
		if !ok || got.ServiceMasterKey || !bytes.Equal(got.Key, want.Key) {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("a key that cannot be opened is 15329, FORCE replaces it and loses its certificates' private keys", func(t *testing.T) {
		srv := startServer(t, hierarchyConfig())
		c := session(t, srv, adminUser, adminPass)
		before, _ := srv.MasterKeyOf("H]R")
		wantNumber(t, run(t, c, "USE [H]]R]", restoreMK(good, newKeyPass, "Other-Pa55word")), 15329)
		if now, _ := srv.MasterKeyOf("H]R"); !bytes.Equal(now.Key, before.Key) {
			t.Fatal("a failed restore changed the key")
		}
		if err := run(t, c, restoreMK(good, newKeyPass, "Other-Pa55word")+" FORCE"); err != nil {
			t.Fatalf("FORCE: %v", err)
		}
		if now, _ := srv.MasterKeyOf("H]R"); !bytes.Equal(now.Key, want.Key) {
			t.Fatal("FORCE did not install the file's key")
		}
		if ci, _ := srv.CertificateOf("H]R", "HRCert"); ci.PrivateKey != nil || ci.Protection != NoPrivateKey {
			t.Fatalf("the certificate under the lost key kept its private key: %s", ci.Protection)
		}
		if ci, _ := srv.CertificateOf("H]R", "HR Pw'Cert"); ci.PrivateKey == nil {
			t.Fatal("a password-protected private key was lost too")
		}
	})
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, user, pass, stmt string
		number                 int32
	}{
		{"a wrong password is 15466", adminUser, adminPass, restoreMK(good, "Wrong-Pa55word", "Other-Pa55word"), 15466},
		{"a missing file is 15317", adminUser, adminPass, restoreMK(filepath.Join(dir, "missing"), newKeyPass, "Other-Pa55word"), 15317},
		{"a foreign file is 15317", adminUser, adminPass, restoreMK(garbage, newKeyPass, "Other-Pa55word"), 15317},
		{"a service master key file is 15317", adminUser, adminPass, restoreMK(smkFile, newKeyPass, "Other-Pa55word"), 15317},
		{"a weak new password is 15118", adminUser, adminPass, restoreMK(good, newKeyPass, "weakpassword"), 15118},
		{"no CONTROL on the database is 15247", plainUser, plainPass, restoreMK(good, newKeyPass, "Other-Pa55word"), 15247},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, hierarchyConfig())
			before, _ := srv.MasterKeyOf("master")
			wantNumber(t, run(t, session(t, srv, tt.user, tt.pass), "USE master", tt.stmt), tt.number)
			if now, _ := srv.MasterKeyOf("master"); !bytes.Equal(now.Key, before.Key) {
				t.Fatal("a failed restore changed the key")
			}
		})
	}
}

func backupCert(name, cer, pvk, enc, dec string) string {
	s := "BACKUP CERTIFICATE " + ident(name) + " TO FILE = " + quote(cer)
	if pvk == "" {
		return s
	}
	s += " WITH PRIVATE KEY (FILE = " + quote(pvk) + ", ENCRYPTION BY PASSWORD = " + quote(enc)
	if dec != "" {
		s += ", DECRYPTION BY PASSWORD = " + quote(dec)
	}
	return s + ")"
}

func TestBackupCertificate(t *testing.T) {
	srv := startServer(t, hierarchyConfig())
	dir := t.TempDir()
	file := func(n string) string { return filepath.Join(dir, n) }

	t.Run("the TDE certificate's .cer is the certificate and its .pvk opens with the password; the backup date is set", func(t *testing.T) {
		c := session(t, srv, adminUser, adminPass)
		if err := run(t, c, "USE master", backupCert("TDECert", file("tde.cer"), file("tde.pvk"), newKeyPass, "")); err != nil {
			t.Fatal(err)
		}
		ci, _ := srv.CertificateOf("master", "TDECert")
		der, _ := os.ReadFile(file("tde.cer"))
		if !bytes.Equal(der, ci.Certificate.Raw) {
			t.Fatal(".cer is not the certificate")
		}
		pvk, _ := os.ReadFile(file("tde.pvk"))
		k, err := OpenPrivateKeyFile(pvk, newKeyPass)
		if err != nil || !ci.PrivateKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.(crypto.Signer).Public()) {
			t.Fatalf("the .pvk does not hold the private key: %v", err)
		}
		if _, err := OpenPrivateKeyFile(pvk, "Wrong-Pa55word"); !errors.Is(err, ErrWrongPassword) {
			t.Fatal(err)
		}
		var last sql.NullTime
		if err := c.QueryRowContext(context.Background(), "SELECT pvt_key_last_backup_date FROM sys.certificates WHERE name = N'TDECert'").Scan(&last); err != nil || !last.Valid {
			t.Fatalf("pvt_key_last_backup_date %v %v", last, err)
		}
	})
	t.Run("a password-protected key takes its password; a public certificate backs up without one", func(t *testing.T) {
		c := session(t, srv, ownerUser, ownerPass)
		if err := run(t, c, "USE [H]]R]", backupCert("HR Pw'Cert", file("pw.cer"), file("pw.pvk"), newKeyPass, pwCertPass), backupCert("HRPublic", file("pub.cer"), "", "", "")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the options come in any order", func(t *testing.T) {
		c := session(t, srv, adminUser, adminPass)
		stmt := "BACKUP CERTIFICATE SalesCert TO FILE = " + quote(file("o.cer")) + " WITH PRIVATE KEY ( ENCRYPTION BY PASSWORD = " + quote(newKeyPass) + " , FILE = " + quote(file("o.pvk")) + " ) ;"
		if err := run(t, c, "USE Sales", stmt); err != nil {
			t.Fatal(err)
		}
	})
	if err := os.WriteFile(file("taken.pvk"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, user, pass, db, stmt string
		number                     int32
	}{
		{"an unknown certificate is 15151", adminUser, adminPass, "master", backupCert("Nope", file("n.cer"), file("n.pvk"), newKeyPass, ""), 15151},
		{"a certificate the login may not see is 15151", plainUser, plainPass, "master", backupCert("TDECert", file("v.cer"), file("v.pvk"), newKeyPass, ""), 15151},
		{"a certificate without a private key is 15246", adminUser, adminPass, "H]R", backupCert("HRPublic", file("a.cer"), file("a.pvk"), newKeyPass, ""), 15246},
		{"a key under a closed master key is 15581", adminUser, adminPass, "H]R", backupCert("HRCert", file("b.cer"), file("b.pvk"), newKeyPass, ""), 15581},
		{"a password-protected key without its password is 15334", adminUser, adminPass, "H]R", backupCert("HR Pw'Cert", file("c.cer"), file("c.pvk"), newKeyPass, ""), 15334},
		{"a wrong key password is 15465", adminUser, adminPass, "H]R", backupCert("HR Pw'Cert", file("d.cer"), file("d.pvk"), newKeyPass, "Wrong-Pa55word"), 15465},
		{"a decryption password for a master-key-protected key is 15147", adminUser, adminPass, "Sales", backupCert("SalesCert", file("e.cer"), file("e.pvk"), newKeyPass, pwCertPass), 15147},
		{"a weak password is 15118", adminUser, adminPass, "Sales", backupCert("SalesCert", file("f.cer"), file("f.pvk"), "weakpassword", ""), 15118},
		{"an existing key file is 15240", adminUser, adminPass, "Sales", backupCert("SalesCert", file("g.cer"), file("taken.pvk"), newKeyPass, ""), 15240},
		{"an existing certificate file is 15240", adminUser, adminPass, "master", backupCert("TDECert", file("tde.cer"), file("h.pvk"), newKeyPass, ""), 15240},
		{"FORMAT = 'PFX' with a key FILE is a syntax error", adminUser, adminPass, "Sales", "BACKUP CERTIFICATE SalesCert TO FILE = N'x.pfx' WITH FORMAT = 'PFX', PRIVATE KEY (FILE = N'y', ENCRYPTION BY PASSWORD = N'Pa55-word')", 102},
		{"a private key without an encryption password is a syntax error", adminUser, adminPass, "Sales", "BACKUP CERTIFICATE SalesCert TO FILE = N'x.cer' WITH PRIVATE KEY (FILE = N'y')", 102},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantNumber(t, run(t, session(t, srv, tt.user, tt.pass), "USE "+ident(tt.db), tt.stmt), tt.number)
			for _, f := range []string{"b.cer", "c.cer", "d.cer", "e.cer", "f.cer", "g.cer", "h.pvk", "n.cer"} {
				if _, err := os.Stat(file(f)); err == nil {
					t.Fatalf("%s left behind by a failed backup", f)
				}
			}
		})
	}
	if b, _ := os.ReadFile(file("taken.pvk")); string(b) != "keep" {
		t.Fatal("an existing file was overwritten")
	}
	if ci, _ := srv.CertificateOf("Sales", "SalesCert"); ci.LastBackup.IsZero() {
		t.Fatal("a good backup did not set the backup date")
	}
}

func TestCertificatePFXNeedsSQLServer2022(t *testing.T) {
	dir := t.TempDir()
	pfx := func(name, path string) string {
		return "BACKUP CERTIFICATE " + ident(name) + " TO FILE = " + quote(path) + " WITH FORMAT = 'PFX', PRIVATE KEY (ENCRYPTION BY PASSWORD = " + quote(newKeyPass) + ", ALGORITHM = 'AES_256')"
	}
	old := startServer(t, Config{ProductVersion: "15.0.4355.3", Databases: hierarchyConfig().Databases})
	wantNumber(t, run(t, session(t, old, adminUser, adminPass), pfx("TDECert", filepath.Join(dir, "old.pfx"))), 102)

	srv := startServer(t, hierarchyConfig())
	path := filepath.Join(dir, "tde's.pfx")
	if err := run(t, session(t, srv, adminUser, adminPass), pfx("TDECert", path)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	cert, _, err := OpenPFXFile(data, newKeyPass)
	ci, _ := srv.CertificateOf("master", "TDECert")
	if err != nil || !bytes.Equal(cert.Raw, ci.Certificate.Raw) {
		t.Fatalf("OpenPFXFile: %v", err)
	}
	// The PFX restores into another server with its thumbprint.
	target := startServer(t, hierarchyConfig())
	if err := run(t, session(t, target, adminUser, adminPass), "USE Sales", "CREATE CERTIFICATE [Restored] FROM FILE = "+quote(path)+" WITH FORMAT = 'PFX', PRIVATE KEY (DECRYPTION BY PASSWORD = "+quote(newKeyPass)+")"); err != nil {
		t.Fatal(err)
	}
	if got, _ := target.CertificateOf("Sales", "Restored"); !bytes.Equal(got.Thumbprint, ci.Thumbprint) || got.Protection != ByMasterKey {
		t.Fatalf("restored %x %s, want %x MK", got.Thumbprint, got.Protection, ci.Thumbprint)
	}
}

func createCert(name, cer, pvk, dec, enc string) string {
	s := "CREATE CERTIFICATE " + ident(name) + " FROM FILE = " + quote(cer)
	if pvk == "" {
		return s
	}
	s += " WITH PRIVATE KEY (FILE = " + quote(pvk) + ", DECRYPTION BY PASSWORD = " + quote(dec)
	if enc != "" {
		s += ", ENCRYPTION BY PASSWORD = " + quote(enc)
	}
	return s + ")"
}

func TestCreateCertificateFromFile(t *testing.T) {
	donor := startServer(t, hierarchyConfig())
	dir := t.TempDir()
	file := func(n string) string { return filepath.Join(dir, n) }
	dc := session(t, donor, adminUser, adminPass)
	if err := run(t, dc, "USE master", backupCert("TDECert", file("tde.cer"), file("tde.pvk"), newKeyPass, ""),
		"USE Sales", backupCert("SalesCert", file("sales.cer"), file("sales.pvk"), newKeyPass, "")); err != nil {
		t.Fatal(err)
	}
	want, _ := donor.CertificateOf("master", "TDECert")
	if err := os.WriteFile(file("garbage.cer"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("the TDE certificate comes back into master with its thumbprint and private key", func(t *testing.T) {
		srv := startServer(t, Config{Databases: []Database{{Name: "master", MasterKey: &MasterKey{Password: "Master-Dmk-Pa55"}}}})
		if err := run(t, session(t, srv, adminUser, adminPass), createCert("TDECert", file("tde.cer"), file("tde.pvk"), newKeyPass, "")); err != nil {
			t.Fatal(err)
		}
		got, ok := srv.CertificateOf("master", "TDECert")
		if !ok || !bytes.Equal(got.Thumbprint, want.Thumbprint) || got.Protection != ByMasterKey || got.PrivateKey == nil {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("with ENCRYPTION BY PASSWORD the key is protected by that password", func(t *testing.T) {
		srv := startServer(t, hierarchyConfig())
		if err := run(t, session(t, srv, adminUser, adminPass), "USE Empty", createCert("T", file("tde.cer"), file("tde.pvk"), newKeyPass, "Own-Pa55word")); err != nil {
			t.Fatal(err)
		}
		if got, _ := srv.CertificateOf("Empty", "T"); got.Protection != ByPassword {
			t.Fatalf("%s", got.Protection)
		}
	})
	for _, tt := range []struct {
		name, user, pass, db, stmt string
		number                     int32
	}{
		{"an existing name is 15232", adminUser, adminPass, "master", createCert("TDECert", file("sales.cer"), file("sales.pvk"), newKeyPass, ""), 15232},
		{"the same certificate under another name is 15232", adminUser, adminPass, "Sales", createCert("First", file("tde.cer"), file("tde.pvk"), newKeyPass, "") + "\n" + createCert("X", file("tde.cer"), file("tde.pvk"), newKeyPass, ""), 15232},
		{"a wrong password is 15465", adminUser, adminPass, "Sales", createCert("X", file("tde.cer"), file("tde.pvk"), "Wrong-Pa55word", ""), 15465},
		{"a file that is no certificate is 15208", adminUser, adminPass, "Sales", createCert("X", file("garbage.cer"), file("tde.pvk"), newKeyPass, ""), 15208},
		{"a missing key file is 15208", adminUser, adminPass, "Sales", createCert("X", file("tde.cer"), file("missing.pvk"), newKeyPass, ""), 15208},
		{"another certificate's key is 15474", adminUser, adminPass, "Sales", createCert("X", file("tde.cer"), file("sales.pvk"), newKeyPass, ""), 15474},
		{"no master key to protect the key is 15581", adminUser, adminPass, "Empty", createCert("X", file("tde.cer"), file("tde.pvk"), newKeyPass, ""), 15581},
		{"a closed master key is 15581", adminUser, adminPass, "H]R", createCert("X", file("tde.cer"), file("tde.pvk"), newKeyPass, ""), 15581},
		{"no CONTROL on the database is 15247", plainUser, plainPass, "master", createCert("X", file("tde.cer"), file("tde.pvk"), newKeyPass, ""), 15247},
		{"a weak encryption password is 15118", adminUser, adminPass, "Sales", createCert("X", file("tde.cer"), file("tde.pvk"), newKeyPass, "weakpassword"), 15118},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, hierarchyConfig())
			stmts := append([]string{"USE " + ident(tt.db)}, strings.Split(tt.stmt, "\n")...)
			wantNumber(t, run(t, session(t, srv, tt.user, tt.pass), stmts...), tt.number)
			if _, ok := srv.CertificateOf(tt.db, "X"); ok {
				t.Fatal("a failed CREATE CERTIFICATE left a certificate")
			}
		})
	}
	t.Run("a public certificate alone needs no master key", func(t *testing.T) {
		srv := startServer(t, hierarchyConfig())
		if err := run(t, session(t, srv, adminUser, adminPass), "USE Empty", createCert("Pub", file("tde.cer"), "", "", "")); err != nil {
			t.Fatal(err)
		}
		if got, _ := srv.CertificateOf("Empty", "Pub"); got.Protection != NoPrivateKey {
			t.Fatal(got.Protection)
		}
	})
}

// TestAPooledConnectionStartsAfreshInItsLoginDatabase: database/sql resets
// a pooled connection before reusing it, and the stand-in forgets USE (and
// any opened master key) then. The agent keeps one connection for a whole
// per-database operation for this reason.
func TestAPooledConnectionStartsAfreshInItsLoginDatabase(t *testing.T) {
	srv := startServer(t, hierarchyConfig())
	db := mustDB(t, srv, adminUser, adminPass)
	db.SetMaxOpenConns(1)
	if err := runBatch(t, db, "USE [H]]R]"); err != nil {
		t.Fatal(err)
	}
	// The same (only) connection, reset before this batch: back in
	// master, where the unqualified view has the service master key's row.
	var name string
	if err := db.QueryRowContext(context.Background(), "SELECT name FROM sys.symmetric_keys WHERE name = N'##MS_ServiceMasterKey##'").Scan(&name); err != nil {
		t.Fatalf("not back in master after the reset: %v", err)
	}
}

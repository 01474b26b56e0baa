package sqlserver

import (
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/secret"
)

func TestLiteralDoublesQuotesAndMarksUnicode(t *testing.T) {
	for in, want := range map[string]string{
		"":         "N''",
		"plain":    "N'plain'",
		"O'Brien":  "N'O''Brien'",
		"''":       "N''''''",
		`C:\k\x`:   `N'C:\k\x'`,
		"wörd😀":    "N'wörd😀'",
		"a'; DROP": "N'a''; DROP'",
	} {
		if got := Literal(in); got != want {
			t.Errorf("Literal(%q) = %s, want %s", in, got, want)
		}
	}
}

// FuzzBackupStatementRoundTrip proves the agent's quoting through the
// stand-in's T-SQL parser: whatever the path and password, the server reads
// back exactly what the agent meant, and nothing leaks out of a literal.
func FuzzBackupStatementRoundTrip(f *testing.F) {
	for _, s := range [][2]string{
		{"/var/opt/mssql/keys/a.key", "Str0ng#Pass"},
		{`C:\Keys\it's here\x.key`, `Pä'ss\"wörd😀1`},
		{"/k/'", "'''"},
		{"/k/ N'x' ENCRYPTION BY PASSWORD = N'y", "' ; SHUTDOWN --"},
		{`\\server\share\k.key`, "\t\n\r"},
		{"/k/x.key", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, path, pw string) {
		if !utf8.ValidString(path) || !utf8.ValidString(pw) || strings.ContainsRune(path+pw, 0) {
			t.Skip("not text T-SQL can carry")
		}
		stmt := BackupServiceMasterKeyStatement(path, secret.New(pw))
		gotPath, gotPW, err := mssqltest.ParseBackupServiceMasterKey(stmt)
		if err != nil {
			t.Fatalf("the stand-in cannot parse the statement for path %q: %v", path, err)
		}
		if gotPath != path || gotPW != pw {
			t.Fatalf("round trip changed the values: path %q → %q, password %q → %q", path, gotPath, pw, gotPW)
		}
		rstmt := RestoreServiceMasterKeyStatement(path, secret.New(pw), true)
		rPath, rPW, force, err := mssqltest.ParseRestoreServiceMasterKey(rstmt)
		if err != nil || rPath != path || rPW != pw || !force {
			t.Fatalf("restore round trip: %q %q %v %v", rPath, rPW, force, err)
		}
	})
}

// FuzzRestoreStatementRoundTrip proves the RESTORE quoting through the
// stand-in's parser, FORCE included: the server reads back exactly the
// path, the password and the FORCE the agent meant.
func FuzzRestoreStatementRoundTrip(f *testing.F) {
	for _, s := range []struct {
		path, pw string
		force    bool
	}{
		{"/var/opt/mssql/keys/a.key", "Str0ng#Pass", false},
		{`C:\Keys\it's here\x.key`, `Pä'ss\"wörd😀1`, true},
		{"/k/' FORCE", "' FORCE --", false},
		{"/k/x.key' DECRYPTION BY PASSWORD = N'y", "'; SHUTDOWN --", true},
		{"", "", false},
	} {
		f.Add(s.path, s.pw, s.force)
	}
	f.Fuzz(func(t *testing.T, path, pw string, force bool) {
		if !utf8.ValidString(path) || !utf8.ValidString(pw) || strings.ContainsRune(path+pw, 0) {
			t.Skip("not text T-SQL can carry")
		}
		stmt := RestoreServiceMasterKeyStatement(path, secret.New(pw), force)
		gotPath, gotPW, gotForce, err := mssqltest.ParseRestoreServiceMasterKey(stmt)
		if err != nil {
			t.Fatalf("the stand-in cannot parse the statement for path %q: %v", path, err)
		}
		if gotPath != path || gotPW != pw || gotForce != force {
			t.Fatalf("round trip changed the values: path %q → %q, password %q → %q, force %v → %v", path, gotPath, pw, gotPW, force, gotForce)
		}
	})
}

// FuzzHierarchyStatementsRoundTrip proves the quoting of the hierarchy's
// statements through the stand-in's parsers: whatever the database and
// certificate names, paths and passwords, the server reads back exactly
// what the agent meant, and nothing leaks out of a literal or an
// identifier.
func FuzzHierarchyStatementsRoundTrip(f *testing.F) {
	for _, s := range []struct {
		name, path, pw, pw2 string
		force               bool
	}{
		{"Sales", "/var/opt/mssql/keys/sales.key", "Str0ng#Pass", "0ther#Pass", false},
		{"H]R", `C:\Keys\it's here\x.key`, `Pä'ss\"wörd😀1`, "''", true},
		{"]]", "/k/' FORCE", "' FORCE --", "", false},
		{"a]; DROP DATABASE x; --", "/k/x.key' ENCRYPTION BY PASSWORD = N'y", "'; SHUTDOWN --", "x", true},
		{`"quoted"`, "", "", "", false},
		{"[bracketed]", "/k/ü 😀.cer", "a\tb\r\nc", "N'", true},
	} {
		f.Add(s.name, s.path, s.pw, s.pw2, s.force)
	}
	f.Fuzz(func(t *testing.T, name, path, pw, pw2 string, force bool) {
		for _, s := range []string{name, path, pw, pw2} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				t.Skip("not text T-SQL can carry")
			}
		}
		if name == "" || len(utf16.Encode([]rune(name))) > 128 {
			t.Skip("not a sysname")
		}
		p1, p2 := secret.New(pw), secret.New(pw2)
		if db, err := mssqltest.ParseUse(UseStatement(name)); err != nil || db != name {
			t.Fatalf("USE %q: %q %v", name, db, err)
		}
		if got, err := mssqltest.ParseOpenMasterKey(OpenMasterKeyStatement(p1)); err != nil || got != pw {
			t.Fatalf("OPEN MASTER KEY: %q %v", got, err)
		}
		if gp, gw, err := mssqltest.ParseBackupMasterKey(BackupMasterKeyStatement(path, p1)); err != nil || gp != path || gw != pw {
			t.Fatalf("BACKUP MASTER KEY: %q %q %v", gp, gw, err)
		}
		gp, gd, ge, gf, err := mssqltest.ParseRestoreMasterKey(RestoreMasterKeyStatement(path, p1, p2, force))
		if err != nil || gp != path || gd != pw || ge != pw2 || gf != force {
			t.Fatalf("RESTORE MASTER KEY: %q %q %q %v %v", gp, gd, ge, gf, err)
		}
		for _, keyPW := range []secret.Value{{}, p2} {
			st, err := mssqltest.ParseBackupCertificate(BackupCertificateStatement(name, path, path+".pvk", p1, keyPW))
			if err != nil || st.Name != name || st.File != path || st.KeyFile != path+".pvk" || st.PFX || st.EncryptionPassword != pw ||
				st.HasDecryptionPassword() == keyPW.Empty() || st.DecryptionPassword != keyPW.Reveal() {
				t.Fatalf("BACKUP CERTIFICATE: %+v %v", st, err)
			}
			st, err = mssqltest.ParseBackupCertificate(BackupCertificatePFXStatement(name, path, p1, keyPW))
			if err != nil || st.Name != name || st.File != path || !st.PFX || st.EncryptionPassword != pw || st.Algorithm != "AES_256" ||
				st.HasDecryptionPassword() == keyPW.Empty() || st.DecryptionPassword != keyPW.Reveal() {
				t.Fatalf("BACKUP CERTIFICATE PFX: %+v %v", st, err)
			}
			st, err = mssqltest.ParseCreateCertificate(CreateCertificateStatement(name, path, path+".pvk", p1, keyPW))
			if err != nil || st.Name != name || st.File != path || st.KeyFile != path+".pvk" || st.DecryptionPassword != pw ||
				st.HasEncryptionPassword() == keyPW.Empty() || st.EncryptionPassword != keyPW.Reveal() {
				t.Fatalf("CREATE CERTIFICATE: %+v %v", st, err)
			}
			st, err = mssqltest.ParseCreateCertificate(CreateCertificatePFXStatement(name, path, p1, keyPW))
			if err != nil || st.Name != name || st.File != path || !st.PFX || st.DecryptionPassword != pw ||
				st.HasEncryptionPassword() == keyPW.Empty() || st.EncryptionPassword != keyPW.Reveal() {
				t.Fatalf("CREATE CERTIFICATE PFX: %+v %v", st, err)
			}
		}
		for q, view := range map[string]string{MasterKeyQuery(name): "symmetric_keys", CertificatesQuery(name): "certificates"} {
			cq, err := mssqltest.ParseCatalogQuery(q)
			if err != nil || cq.Database != name || cq.View != view {
				t.Fatalf("%s: %+v %v", q, cq, err)
			}
		}
	})
}

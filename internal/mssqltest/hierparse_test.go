package mssqltest

import (
	"testing"
)

func TestParseHierarchyStatementsAcceptsTheDocumentedVariants(t *testing.T) {
	t.Run("USE takes plain, bracketed and double-quoted names", func(t *testing.T) {
		for sql, want := range map[string]string{
			"USE Sales":           "Sales",
			"use [H]]R];":         "H]R",
			`USE "a ""b"""`:       `a "b"`,
			"USE [sp ace] -- c\n": "sp ace",
			"USE [FROM]":          "FROM",
		} {
			if got, err := ParseUse(sql); err != nil || got != want {
				t.Errorf("%q: %q %v", sql, got, err)
			}
		}
		for _, sql := range []string{"USE", "USE @db", "USE a b", "USE []", "USE [unclosed"} {
			if _, err := ParseUse(sql); err == nil {
				t.Errorf("%q accepted", sql)
			}
		}
	})
	t.Run("an identifier longer than sysname is Msg 103", func(t *testing.T) {
		long := "["
		for range 129 {
			long += "x"
		}
		_, err := ParseUse("USE " + long + "]")
		if se, ok := err.(*sqlError); !ok || se.err.Number != 103 {
			t.Fatalf("%v", err)
		}
	})
	t.Run("master key statements in any case, with plain literals", func(t *testing.T) {
		if pw, err := ParseOpenMasterKey("open master key decryption by password = 'a''b';"); err != nil || pw != "a'b" {
			t.Errorf("OPEN: %q %v", pw, err)
		}
		if err := parseCloseMasterKey("close MASTER key ;"); err != nil {
			t.Error(err)
		}
		p, pw, err := ParseBackupMasterKey("BACKUP MASTER KEY TO FILE='c:\\k' ENCRYPTION BY PASSWORD=N'x'")
		if err != nil || p != `c:\k` || pw != "x" {
			t.Errorf("BACKUP: %q %q %v", p, pw, err)
		}
		p, d, e, f, err := ParseRestoreMasterKey("RESTORE MASTER KEY FROM FILE = N'p' DECRYPTION BY PASSWORD = N'd' ENCRYPTION BY PASSWORD = N'e' FORCE")
		if err != nil || p != "p" || d != "d" || e != "e" || !f {
			t.Errorf("RESTORE: %q %q %q %v %v", p, d, e, f, err)
		}
		for _, sql := range []string{
			"OPEN MASTER KEY DECRYPTION BY PASSWORD = @pw",
			"BACKUP MASTER KEY TO FILE = N'p'",
			"RESTORE MASTER KEY FROM FILE = N'p' DECRYPTION BY PASSWORD = N'd'",
			"RESTORE MASTER KEY FROM FILE = N'p' ENCRYPTION BY PASSWORD = N'e' DECRYPTION BY PASSWORD = N'd'",
		} {
			if _, err := classifyAndParse(sql); err == nil {
				t.Errorf("%q accepted", sql)
			}
		}
	})
	t.Run("certificate statements", func(t *testing.T) {
		st, err := ParseBackupCertificate("backup certificate [a]]b] to file = 'c' with private key (decryption by password = 'd', file = 'k', encryption by password = 'e');")
		if err != nil || st.Name != "a]b" || st.File != "c" || st.KeyFile != "k" || st.EncryptionPassword != "e" || st.DecryptionPassword != "d" || st.PFX {
			t.Errorf("%+v %v", st, err)
		}
		st, err = ParseBackupCertificate("BACKUP CERTIFICATE c TO FILE = N'x.cer'")
		if err != nil || st.PrivateKey {
			t.Errorf("public only: %+v %v", st, err)
		}
		st, err = ParseBackupCertificate("BACKUP CERTIFICATE c TO FILE = N'x.pfx' WITH FORMAT = 'pfx', PRIVATE KEY (ENCRYPTION BY PASSWORD = N'e', ALGORITHM = 'AES_256')")
		if err != nil || !st.PFX || st.Algorithm != "AES_256" {
			t.Errorf("PFX: %+v %v", st, err)
		}
		st, err = ParseCreateCertificate("CREATE CERTIFICATE c FROM FILE = N'x.pfx' WITH FORMAT = 'PFX', PRIVATE KEY (DECRYPTION BY PASSWORD = N'd')")
		if err != nil || !st.PFX || st.DecryptionPassword != "d" || st.HasEncryptionPassword() {
			t.Errorf("CREATE PFX: %+v %v", st, err)
		}
		for _, sql := range []string{
			"BACKUP CERTIFICATE c TO FILE = N'x' WITH PRIVATE KEY (FILE = N'k')",                                                       // no encryption password
			"BACKUP CERTIFICATE c TO FILE = N'x' WITH PRIVATE KEY (ENCRYPTION BY PASSWORD = N'e')",                                     // no key file
			"BACKUP CERTIFICATE c TO FILE = N'x' WITH PRIVATE KEY (FILE = N'k', FILE = N'k', ENCRYPTION BY PASSWORD = N'e')",           // twice
			"BACKUP CERTIFICATE c TO FILE = N'x' WITH PRIVATE KEY (FILE = N'k', ENCRYPTION BY PASSWORD = N'e', ALGORITHM = 'AES_256')", // ALGORITHM without PFX
			"BACKUP CERTIFICATE c TO FILE = N'x' WITH FORMAT = 'DER', PRIVATE KEY (ENCRYPTION BY PASSWORD = N'e')",
			"CREATE CERTIFICATE c FROM FILE = N'x' WITH PRIVATE KEY (FILE = N'k')", // no decryption password
			"CREATE CERTIFICATE c.d FROM FILE = N'x'",
			"CREATE CERTIFICATE c FROM FILE = @f",
		} {
			if _, err := classifyAndParse(sql); err == nil {
				t.Errorf("%q accepted", sql)
			}
		}
	})
	t.Run("catalog queries", func(t *testing.T) {
		for sql, want := range map[string][2]string{
			"SELECT name FROM sys.databases": {"", "databases"},
			"select k.key_guid from [H]]R].sys.symmetric_keys as k where k.name = N'x' and symmetric_key_id = 101": {"H]R", "symmetric_keys"},
			"SELECT name AS n FROM Sales.sys.certificates ORDER BY name DESC, certificate_id":                      {"Sales", "certificates"},
			"SELECT database_id FROM master.sys.dm_database_encryption_keys;":                                      {"master", "dm_database_encryption_keys"},
		} {
			q, err := ParseCatalogQuery(sql)
			if err != nil || q.Database != want[0] || q.View != want[1] {
				t.Errorf("%q: %+v %v", sql, q, err)
			}
		}
		for _, sql := range []string{"SELECT FROM sys.databases", "SELECT name FROM dbo.databases", "SELECT name FROM sys.databases WHERE name = @n", "SELECT name FROM a.b.c.d", "SELECT name FROM Sales..certificates"} {
			if _, err := ParseCatalogQuery(sql); err == nil {
				t.Errorf("%q accepted", sql)
			}
		}
	})
}

// classifyAndParse parses sql with the parser its kind selects.
func classifyAndParse(sql string) (any, error) {
	switch classify(sql) {
	case KindOpenMasterKey:
		return ParseOpenMasterKey(sql)
	case KindBackupMasterKey:
		_, _, err := ParseBackupMasterKey(sql)
		return nil, err
	case KindRestoreMasterKey:
		_, _, _, _, err := ParseRestoreMasterKey(sql)
		return nil, err
	case KindBackupCertificate:
		return ParseBackupCertificate(sql)
	case KindCreateCertificate:
		return ParseCreateCertificate(sql)
	}
	return nil, nil
}

// FuzzHierarchyParsersNeverPanic feeds arbitrary text to every parser of
// the hierarchy: a malformed batch must be an error, never a crash of the
// stand-in.
func FuzzHierarchyParsersNeverPanic(f *testing.F) {
	for _, s := range []string{
		"USE [H]]R]",
		"BACKUP CERTIFICATE c TO FILE = N'x' WITH FORMAT = 'PFX', PRIVATE KEY (ENCRYPTION BY PASSWORD = N'e', ALGORITHM = 'AES_256')",
		"CREATE CERTIFICATE c FROM FILE = N'x' WITH PRIVATE KEY (FILE = N'k', DECRYPTION BY PASSWORD = N'd'",
		"RESTORE MASTER KEY FROM FILE = N'p' DECRYPTION BY PASSWORD = N'd' ENCRYPTION BY PASSWORD = N'e' FORCE",
		"SELECT k.name AS [n] FROM [a].sys.certificates k WHERE name = N'x' AND certificate_id = 1 ORDER BY name DESC",
		"SELECT name FROM a..",
		"SELECT , FROM",
		"OPEN MASTER KEY DECRYPTION BY PASSWORD =",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		_, _ = classifyAndParse(sql)
		_, _ = ParseUse(sql)
		_ = parseCloseMasterKey(sql)
		_, _ = ParseCatalogQuery(sql)
		_, _ = ParseBackupCertificate(sql)
		_, _ = ParseCreateCertificate(sql)
	})
}

package mssqltest

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseBackupServiceMasterKey(t *testing.T) {
	tests := []struct {
		name     string
		sql      string
		path, pw string
		wantErr  bool
	}{
		{"N literals", `BACKUP SERVICE MASTER KEY TO FILE = N'/k/a.key' ENCRYPTION BY PASSWORD = N'Pw-12345'`, "/k/a.key", "Pw-12345", false},
		{"plain literals, lower case, semicolon", "backup service master key to file='a' encryption by password='b';", "a", "b", false},
		{"doubled quotes", `BACKUP SERVICE MASTER KEY TO FILE = N'it''s' ENCRYPTION BY PASSWORD = N''''''`, "it's", "''", false},
		{"a Windows path keeps its backslashes", `BACKUP SERVICE MASTER KEY TO FILE = N'C:\keys\x.key' ENCRYPTION BY PASSWORD = N'a\b'`, `C:\keys\x.key`, `a\b`, false},
		{"comments and newlines", "BACKUP /* c */ SERVICE\nMASTER -- x\nKEY TO FILE = N'p' ENCRYPTION BY PASSWORD = N'q'", "p", "q", false},
		{"missing password", `BACKUP SERVICE MASTER KEY TO FILE = N'p'`, "", "", true},
		{"a variable instead of a literal", `BACKUP SERVICE MASTER KEY TO FILE = @p ENCRYPTION BY PASSWORD = N'q'`, "", "", true},
		{"trailing garbage", `BACKUP SERVICE MASTER KEY TO FILE = N'p' ENCRYPTION BY PASSWORD = N'q' x`, "", "", true},
		{"an unclosed literal", `BACKUP SERVICE MASTER KEY TO FILE = N'p ENCRYPTION BY PASSWORD = N'q`, "", "", true},
		{"injection attempt stays inside the literal", `BACKUP SERVICE MASTER KEY TO FILE = N'a''; DROP TABLE x; --' ENCRYPTION BY PASSWORD = N'q'`, "a'; DROP TABLE x; --", "q", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, pw, err := ParseBackupServiceMasterKey(tt.sql)
			if (err != nil) != tt.wantErr || path != tt.path || pw != tt.pw {
				t.Fatalf("got %q %q %v", path, pw, err)
			}
		})
	}
}

func TestParseRestoreServiceMasterKey(t *testing.T) {
	path, pw, force, err := ParseRestoreServiceMasterKey("restore service master key from file = N'a''b' decryption by password = 'c' force;")
	if err != nil || path != "a'b" || pw != "c" || !force {
		t.Fatalf("got %q %q %v %v", path, pw, force, err)
	}
	_, _, force, err = ParseRestoreServiceMasterKey("RESTORE SERVICE MASTER KEY FROM FILE = N'a' DECRYPTION BY PASSWORD = N'c'")
	if err != nil || force {
		t.Fatalf("without FORCE: %v %v", force, err)
	}
	if _, _, _, err := ParseRestoreServiceMasterKey("RESTORE SERVICE MASTER KEY FROM FILE = N'a' ENCRYPTION BY PASSWORD = N'c'"); err == nil {
		t.Fatal("ENCRYPTION accepted in RESTORE")
	}
}

func FuzzParseBackupServiceMasterKey(f *testing.F) {
	seeds := [][2]string{
		{"/var/opt/mssql/backup/a.key", "Pa55-word"},
		{`C:\keys\SQLHOST01$INST1-servicemasterkey.key`, "Pä'ss\\wörd😀1"},
		{"it's a dir/k'ey.key", "''"},
		{"'", "'''"},
		{"", ""},
		{"N'", "n''"},
		{"-- comment", "/* not a comment */"},
		{"a\r\nb\tc", " leading and trailing "},
		{"\u00a0\u2028", "😀😀"},
		{"'; DROP TABLE x; --", "x' OR '1'='1"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, path, pw string) {
		if !utf8.ValidString(path) || !utf8.ValidString(pw) || strings.ContainsRune(path+pw, 0) {
			t.Skip()
		}
		stmt := backupStmt(path, pw)
		gotPath, gotPw, err := ParseBackupServiceMasterKey(stmt)
		if err != nil {
			t.Fatalf("%q: %v", stmt, err)
		}
		if gotPath != path || gotPw != pw {
			t.Fatalf("%q: got %q %q, want %q %q", stmt, gotPath, gotPw, path, pw)
		}
		rPath, rPw, force, err := ParseRestoreServiceMasterKey(restoreStmt(path, pw))
		if err != nil || rPath != path || rPw != pw || force {
			t.Fatalf("restore: %q %q %v %v", rPath, rPw, force, err)
		}
	})
}

package sqlserver

import (
	"strings"
	"testing"
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

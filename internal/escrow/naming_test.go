package escrow

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestBackupFileNameUsesDollarForTheInstanceAndTheRunID(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	cases := []struct{ server, want string }{
		{`HOST\INST`, "HOST$INST-servicemasterkey-20260304T040607Z-0123abcd.key"},
		{"HOST", "HOST-servicemasterkey-20260304T040607Z-0123abcd.key"},
		{"", "_-servicemasterkey-20260304T040607Z-0123abcd.key"},
		{`host.corp.example\SQL 2022`, "host.corp.example$SQL_2022-servicemasterkey-20260304T040607Z-0123abcd.key"},
		{`..\..`, "..$..-servicemasterkey-20260304T040607Z-0123abcd.key"},
	}
	for _, tc := range cases {
		if got := backupFileName(tc.server, now, "0123abcdef012345"); got != tc.want {
			t.Errorf("backupFileName(%q) = %q, want %q", tc.server, got, tc.want)
		}
	}
}

func TestNamesAreUniqueAcrossRuns(t *testing.T) {
	hex16 := regexp.MustCompile(`^[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewRunID()
		if !hex16.MatchString(id) {
			t.Fatalf("run id %q is not 16 hex digits", id)
		}
		name := backupFileName(`HOST\INST`, testNow, id)
		if seen[name] {
			t.Fatalf("two runs at the same second got the name %s", name)
		}
		seen[name] = true
		if a := archiveFileName("/k/smk.key", testNow, id); !strings.Contains(a, id[:8]) {
			t.Fatalf("archive name %s lacks the run id", a)
		}
	}
}

func TestSafeNameKeepsOnlyPortableCharacters(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "_"},
		{".", "_"},
		{"..", "_"},
		{"...", "_"},
		{"host-01.corp_x$", "host-01.corp_x$"},
		{`HOST\INST`, "HOST_INST"},
		{"a/b", "a_b"},
		{"a b:c*d?e", "a_b_c_d_e"},
		{"wörd😀", "w_rd_"},
		{"\x00\n", "__"},
		{"'quoted\"", "_quoted_"},
		{".hidden", ".hidden"},
	}
	for _, tc := range cases {
		if got := safeName(tc.in); got != tc.want {
			t.Errorf("safeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestArchiveFileNameKeepsTheStemAndExtension(t *testing.T) {
	cases := []struct{ file, want string }{
		{"/keys/prod-smk.key", "prod-smk-20261128T040000Z-0123abcd.key"},
		{"/keys/smk", "smk-20261128T040000Z-0123abcd.key"},
		{"/keys/smk.bak", "smk-20261128T040000Z-0123abcd.bak"},
		{"/keys/my key (1).key", "my_key__1_-20261128T040000Z-0123abcd.key"},
		{"/keys/.key", "_-20261128T040000Z-0123abcd.key"},
	}
	for _, tc := range cases {
		if got := archiveFileName(tc.file, testNow, "0123abcdef012345"); got != tc.want {
			t.Errorf("archiveFileName(%q) = %q, want %q", tc.file, got, tc.want)
		}
	}
}

func TestObjectKeyLayout(t *testing.T) {
	cases := []struct {
		prefix, host, instance, want string
	}{
		{"sqlkeys/", "SQLHOST01", "MSSQLSERVER", "sqlkeys/SQLHOST01/MSSQLSERVER/service-master-key/n.key"},
		{"", "h", "i", "h/i/service-master-key/n.key"},
		{"a/b/", `H\X`, "i/j", "a/b/H_X/i_j/service-master-key/n.key"},
		{"p/", "..", "..", "p/_/_/service-master-key/n.key"},
		{"p/", "", "", "p/_/_/service-master-key/n.key"},
	}
	for _, tc := range cases {
		if got := objectKey(tc.prefix, tc.host, tc.instance, "service-master-key", "n.key"); got != tc.want {
			t.Errorf("objectKey(%q, %q, %q) = %q, want %q", tc.prefix, tc.host, tc.instance, got, tc.want)
		}
	}
	if got := receiptKey("p/h/i/k/n.key"); got != "p/h/i/k/n.key.receipt.json" {
		t.Errorf("receiptKey = %q", got)
	}
}

func TestServerJoinUsesTheFoldersOwnSeparator(t *testing.T) {
	cases := []struct{ dir, want string }{
		{`C:\keys`, `C:\keys\n.key`},
		{`C:\keys\`, `C:\keys\n.key`},
		{`C:`, `C:\n.key`},
		{`C:\`, `C:\n.key`},
		{`D:/keys`, `D:/keys/n.key`},
		{`\\srv\share\`, `\\srv\share\n.key`},
		{`\\srv\share\keys`, `\\srv\share\keys\n.key`},
		{"/var/opt/mssql/", "/var/opt/mssql/n.key"},
		{"/var/opt/mssql", "/var/opt/mssql/n.key"},
		{"/", "/n.key"},
	}
	for _, tc := range cases {
		if got := serverJoin(tc.dir, "n.key"); got != tc.want {
			t.Errorf("serverJoin(%q) = %q, want %q", tc.dir, got, tc.want)
		}
	}
}

func TestIsWindowsPathKnowsDrivesAndShares(t *testing.T) {
	for dir, want := range map[string]bool{`C:\keys`: true, `D:/keys`: true, `\\srv\share\k`: true, "/var/opt/mssql": false, "keys": false, "C:": false} {
		if got := isWindowsPath(dir); got != want {
			t.Errorf("isWindowsPath(%q) = %v, want %v", dir, got, want)
		}
	}
}

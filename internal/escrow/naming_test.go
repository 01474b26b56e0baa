package escrow

import (
	"fmt"
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
	for i := range 1000 {
		if id := NewRunID(); !hex16.MatchString(id) {
			t.Fatalf("run id %q is not 16 hex digits", id)
		}
		// Names carry the run id's first 32 bits: distinct ids there give
		// distinct names. (1,000 random ids share those bits about once in
		// 8,600 runs, which CI once hit: the names' uniqueness is checked
		// on ids that differ there, the ids' randomness by their format.)
		id := fmt.Sprintf("%08x%08x", uint32(i)*2654435761, i)
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

func TestSafeNameKeepsOrdinaryNamesAndEncodesTheRest(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "_"},
		{"_", "%5F"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"...", "%2E%2E%2E"},
		{"host-01.corp_x$", "host-01.corp_x$"},
		{"SQLHOST01", "SQLHOST01"},
		{"MSSQLSERVER", "MSSQLSERVER"},
		{"__", "__"},
		{".hidden", ".hidden"},
		{`HOST\INST`, "HOST%5CINST"},
		{"HOST_INST", "HOST_INST"},
		{"a/b", "a%2Fb"},
		{"a_b", "a_b"},
		{"a b:c*d?e", "a%20b%3Ac%2Ad%3Fe"},
		{"100%", "100%25"},
		{"100%25", "100%2525"},
		{"wörd😀", "w%C3%B6rd%F0%9F%98%80"},
		{"\x00\n", "%00%0A"},
		{"'quoted\"", "%27quoted%22"},
		{"\xff", "%FF"},
	}
	for _, tc := range cases {
		if got := safeName(tc.in); got != tc.want {
			t.Errorf("safeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if back, ok := unSafeName(tc.want); !ok || back != tc.in {
			t.Errorf("unSafeName(%q) = %q %v, want %q", tc.want, back, ok, tc.in)
		}
	}
}

// TestSafeNameNeverMapsTwoNamesToOneFolder: the names the old scheme
// folded together (HOST\INST and HOST_INST and HOST INST; "" and "_" and
// "." and "..") now each get their own folder.
func TestSafeNameNeverMapsTwoNamesToOneFolder(t *testing.T) {
	names := []string{"", "_", "__", ".", "..", "...", "%", "%25", "%2E", "%5F", `HOST\INST`, "HOST_INST", "HOST INST", "HOST/INST", "HOST%5CINST",
		"wörd", "w_rd", "w%C3%B6rd", "a.", "a..", "a$", "a%24"}
	seen := map[string]string{}
	for _, n := range names {
		f := safeName(n)
		if other, dup := seen[f]; dup {
			t.Errorf("%q and %q share the folder %q", n, other, f)
		}
		seen[f] = n
	}
}

// FuzzSafeName: for any name, the folder is one path segment of portable
// characters, never "." or "..", and gives the name back; a folder safeName
// did not make is never taken for one it did.
func FuzzSafeName(f *testing.F) {
	for _, s := range []string{"", "_", ".", "..", `HOST\INST`, "wörd😀", "100%", "%2E", "\xff\xfe", "a/b/../c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		folder := safeName(s)
		if folder == "" || folder == "." || folder == ".." || strings.ContainsAny(folder, "/\\") {
			t.Fatalf("safeName(%q) = %q is not one safe segment", s, folder)
		}
		for i := 0; i < len(folder); i++ {
			if c := folder[i]; !portableByte(c) && c != '%' {
				t.Fatalf("safeName(%q) = %q holds %q", s, folder, c)
			}
		}
		back, ok := unSafeName(folder)
		if !ok || back != s {
			t.Fatalf("unSafeName(safeName(%q)) = %q %v", s, back, ok)
		}
		// The input read as a folder: either safeName made it (and then it
		// names exactly one name) or it is refused.
		if n, ok := unSafeName(s); ok && safeName(n) != s {
			t.Fatalf("unSafeName(%q) = %q, whose folder is %q", s, n, safeName(n))
		}
	})
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
		{"a/b/", `H\X`, "i/j", "a/b/H%5CX/i%2Fj/service-master-key/n.key"},
		{"p/", "..", "..", "p/%2E%2E/%2E%2E/service-master-key/n.key"},
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

func TestFolderNamesMatchWhateverTheCase(t *testing.T) {
	cases := []struct {
		name, folder string
		want         bool
	}{
		{"sqlhost01", "SQLHOST01", true},
		{"größe", safeName("GRÖSSE"), false}, // not the same name
		{"höst", safeName("HÖST"), true},
		{`host\inst`, safeName(`HOST\INST`), true},
		{"HOST_INST", safeName(`HOST\INST`), false},
		{"_", "_", false}, // "_" is the empty name's folder
		{"", "_", true},
	}
	for _, tc := range cases {
		if got := nameMatches(tc.name, tc.folder); got != tc.want {
			t.Errorf("nameMatches(%q, %q) = %v, want %v", tc.name, tc.folder, got, tc.want)
		}
	}
}

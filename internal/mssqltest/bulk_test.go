package mssqltest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	sysUser  = "sa-like"
	sysPass  = "Sysadm1n-Pa55!"
	bulkUser = "loader"
	bulkPass = "L0ader-Pa55!"
	denyUser = "denied"
	denyPass = "Den1ed-Pa55!"
)

// bulkLogins are the permission shapes of OPENROWSET(BULK …) and
// xp_delete_files.
func bulkLogins() []Login {
	return []Login{
		{User: adminUser, Password: adminPass, ControlServer: true},
		{User: plainUser, Password: plainPass},
		{User: sysUser, Password: sysPass, Sysadmin: true},
		{User: bulkUser, Password: bulkPass, BulkAdmin: true},
		{User: denyUser, Password: denyPass, ControlServer: true, DenyBulk: true},
	}
}

// quoted renders a path as an N'…' literal with doubled quotes.
func quoted(s string) string { return "N'" + strings.ReplaceAll(s, "'", "''") + "'" }

func writeRandom(t *testing.T, path string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenrowsetBulkSingleBlobReturnsTheFileAsVarbinaryMax(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name   string
		mode   EncryptionMode
		params map[string]string
		size   int
	}{
		{"a key-sized file without TLS", EncryptNotSupported, nil, 151},
		{"an empty file as an empty value", EncryptOff, nil, 0},
		{"a file of several PLP chunks and packets over full TLS", EncryptRequired, map[string]string{"packet size": "512"}, 3*plpChunkSize + 17},
		{"a file of exactly one chunk over TDS 8", EncryptStrict, nil, plpChunkSize},
		{"a 1 MiB file with large packets", EncryptOff, map[string]string{"packet size": "32767"}, 1 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{Encryption: tt.mode, Logins: bulkLogins()})
			db, err := openDB(t, srv.DSN(adminUser, adminPass, tt.params))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "it's "+strings.ReplaceAll(tt.name, " ", "_")+".key")
			want := writeRandom(t, path, tt.size)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var got []byte
			var n int64
			q := "SELECT BulkColumn, DATALENGTH(BulkColumn) AS n FROM OPENROWSET(BULK " + quoted(path) + ", SINGLE_BLOB) AS k"
			if err := db.QueryRowContext(ctx, q).Scan(&got, &n); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) || n != int64(tt.size) {
				t.Fatalf("got %d bytes (DATALENGTH %d), want the file's %d", len(got), n, tt.size)
			}
			if got == nil {
				t.Fatal("an empty file came back as NULL, want an empty value")
			}
		})
	}
}

func TestOpenrowsetColumnsTypesAndNames(t *testing.T) {
	srv := startServer(t, Config{Logins: bulkLogins()})
	db := mustDB(t, srv, adminUser, adminPass)
	path := filepath.Join(t.TempDir(), "k.key")
	data := writeRandom(t, path, 100)
	lit := quoted(path)

	rows, err := db.Query("SELECT k.BulkColumn, DATALENGTH(bulkcolumn) AS len, SUBSTRING(BulkColumn, 1, 10) AS head, * FROM OPENROWSET(BULK " + lit + ", SINGLE_BLOB) k")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types, _ := rows.ColumnTypes()
	var got []string
	for _, ct := range types {
		got = append(got, ct.Name()+":"+ct.DatabaseTypeName())
	}
	if want := "BulkColumn:VARBINARY,len:BIGINT,head:VARBINARY,BulkColumn:VARBINARY"; strings.Join(got, ",") != want {
		t.Fatalf("columns %s, want %s", strings.Join(got, ","), want)
	}
	// go-mssqldb reports a (max) column (TYPE_INFO length 0xFFFF) as
	// 2147483645; a varbinary(n) is at most 8000.
	if l, ok := types[0].Length(); !ok || l != 2147483645 {
		t.Errorf("BulkColumn length %d %v, want varbinary(max)", l, ok)
	}
	if !rows.Next() {
		t.Fatal("no row")
	}
	var all, head, star []byte
	var n int64
	if err := rows.Scan(&all, &n, &head, &star); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(all, data) || n != 100 || !bytes.Equal(head, data[:10]) || !bytes.Equal(star, data) {
		t.Fatalf("values: %d bytes, %d, head %x, star %d bytes", len(all), n, head, len(star))
	}
	if rows.Next() {
		t.Fatal("SINGLE_BLOB returned more than one row")
	}

	for _, tt := range []struct {
		start, length int64
		want          []byte
	}{
		{1, 1000, data},
		{91, 20, data[90:]},
		{0, 3, data[:2]},
		{-5, 3, []byte{}},
		{101, 5, []byte{}},
	} {
		var b []byte
		q := "SELECT SUBSTRING(BulkColumn, " + itoa(int(tt.start)) + ", " + itoa(int(tt.length)) + ") AS b FROM OPENROWSET(BULK " + lit + ", SINGLE_BLOB) AS k"
		if err := db.QueryRow(q).Scan(&b); err != nil || !bytes.Equal(b, tt.want) {
			t.Errorf("SUBSTRING(, %d, %d) = %x, %v; want %x", tt.start, tt.length, b, err, tt.want)
		}
	}
}

func TestOpenrowsetAndXpDeleteFilesFollowSQLServersRules(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "present.key")
	writeRandom(t, present, 10)
	missing := filepath.Join(dir, "missing.key")
	read := "SELECT BulkColumn FROM OPENROWSET(BULK " + quoted(present) + ", SINGLE_BLOB) AS k"
	tests := []struct {
		name   string
		cfg    Config
		user   string
		pass   string
		query  string
		number int32
		text   string
	}{
		{name: "a login without any bulk permission gets Msg 4834", user: plainUser, pass: plainPass, query: read, number: 4834, text: "You do not have permission to use the bulk load statement."},
		{name: "a DENY wins over CONTROL SERVER", user: denyUser, pass: denyPass, query: read, number: 4834},
		{name: "on Linux before 2022 CU24 CONTROL SERVER is not enough", cfg: Config{BulkRequiresSysadmin: true}, user: adminUser, pass: adminPass, query: read, number: 4834},
		{name: "on Linux before 2022 CU24 bulkadmin is not enough", cfg: Config{BulkRequiresSysadmin: true}, user: bulkUser, pass: bulkPass, query: read, number: 4834},
		{name: "a missing file is Msg 4860 naming it", user: adminUser, pass: adminPass, query: "SELECT BulkColumn FROM OPENROWSET(BULK " + quoted(missing) + ", SINGLE_BLOB) AS k", number: 4860, text: `Cannot bulk load. The file "` + missing + `" does not exist or you don't have file access rights.`},
		{name: "a folder cannot be opened (Msg 4861)", user: adminUser, pass: adminPass, query: "SELECT BulkColumn FROM OPENROWSET(BULK " + quoted(dir) + ", SINGLE_BLOB) AS k", number: 4861},
		{name: "the permission is checked before the file", user: plainUser, pass: plainPass, query: "SELECT BulkColumn FROM OPENROWSET(BULK " + quoted(missing) + ", SINGLE_BLOB) AS k", number: 4834},
		{name: "the correlation name is required (Msg 491)", user: adminUser, pass: adminPass, query: "SELECT BulkColumn FROM OPENROWSET(BULK " + quoted(present) + ", SINGLE_BLOB);", number: 491},
		{name: "an unknown column is Msg 207", user: adminUser, pass: adminPass, query: "SELECT Content FROM OPENROWSET(BULK " + quoted(present) + ", SINGLE_BLOB) AS k", number: 207},
		{name: "a wrong qualifier is Msg 4104", user: adminUser, pass: adminPass, query: "SELECT x.BulkColumn FROM OPENROWSET(BULK " + quoted(present) + ", SINGLE_BLOB) AS k", number: 4104},
		{name: "a negative SUBSTRING length is Msg 537", user: adminUser, pass: adminPass, query: "SELECT SUBSTRING(BulkColumn, 1, -1) FROM OPENROWSET(BULK " + quoted(present) + ", SINGLE_BLOB) AS k", number: 537},
		{name: "a variable as the path is a syntax error", user: adminUser, pass: adminPass, query: "SELECT BulkColumn FROM OPENROWSET(BULK @path, SINGLE_BLOB) AS k", number: 102},
		{name: "an unquoted path is a syntax error", user: adminUser, pass: adminPass, query: "SELECT BulkColumn FROM OPENROWSET(BULK C:\\k.key, SINGLE_BLOB) AS k", number: 102},
		{name: "xp_delete_files needs sysadmin (Msg 229), CONTROL SERVER is not enough", user: adminUser, pass: adminPass, query: "EXEC master.sys.xp_delete_files " + quoted(present), number: 229, text: "The EXECUTE permission was denied on the object 'xp_delete_files', database 'mssqlsystemresource', schema 'sys'."},
		{name: "xp_delete_files does not exist before SQL Server 2019 (Msg 2812)", cfg: Config{ProductVersion: "14.0.3048.4"}, user: sysUser, pass: sysPass, query: "EXEC master.sys.xp_delete_files " + quoted(present), number: 2812, text: "Could not find stored procedure 'master.sys.xp_delete_files'."},
		{name: "xp_delete_files of a missing file is Msg 22049 with Windows error 2", user: sysUser, pass: sysPass, query: "EXEC master.sys.xp_delete_files " + quoted(missing), number: 22049, text: "xp_delete_files() returned error 2, 'The system cannot find the file specified.'"},
		{name: "an unknown procedure is Msg 2812 naming it as written", user: sysUser, pass: sysPass, query: "EXECUTE master..xp_cmdshell 'dir'", number: 2812, text: "Could not find stored procedure 'master..xp_cmdshell'."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Logins = bulkLogins()
			srv := startServer(t, cfg)
			err := runBatch(t, mustDB(t, srv, tt.user, tt.pass), tt.query)
			if got := errNumber(err); got != tt.number {
				t.Fatalf("%s: %v (Msg %d), want Msg %d", tt.query, err, got, tt.number)
			}
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("message %q, want %q", err, tt.text)
			}
			if _, err := os.Stat(present); err != nil {
				t.Fatalf("a failed statement removed the file: %v", err)
			}
		})
	}
}

func TestOpenrowsetSucceedsForEveryLoginSQLServerAllows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.key")
	want := writeRandom(t, path, 33)
	for _, tt := range []struct {
		name, user, pass string
		cfg              Config
	}{
		{"CONTROL SERVER implies ADMINISTER BULK OPERATIONS", adminUser, adminPass, Config{}},
		{"a grant or bulkadmin", bulkUser, bulkPass, Config{}},
		{"sysadmin", sysUser, sysPass, Config{}},
		{"sysadmin on Linux before 2022 CU24", sysUser, sysPass, Config{BulkRequiresSysadmin: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Logins = bulkLogins()
			db := mustDB(t, startServer(t, cfg), tt.user, tt.pass)
			var got []byte
			if err := db.QueryRow("SELECT BulkColumn FROM OPENROWSET(BULK " + quoted(path) + ", SINGLE_BLOB) AS k").Scan(&got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestXpDeleteFilesRemovesTheFileForSysadmin(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, version, stmt string
	}{
		{"as master.sys.xp_delete_files on SQL Server 2022", "", "EXEC master.sys.xp_delete_files %s"},
		{"as xp_delete_files on SQL Server 2019", "15.0.2000.5", "EXECUTE xp_delete_files %s;"},
		{"as master.dbo.xp_delete_files on SQL Server 2017 CU18", "14.0.3257.3", "exec master.dbo.xp_delete_files %s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{Logins: bulkLogins(), ProductVersion: tt.version})
			path := filepath.Join(dir, "it's "+tt.version+".key")
			other := filepath.Join(dir, "other "+tt.version+".key")
			writeRandom(t, path, 5)
			writeRandom(t, other, 5)
			db := mustDB(t, srv, sysUser, sysPass)
			if err := runBatch(t, db, strings.Replace(tt.stmt, "%s", quoted(path), 1)); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("the file is still there: %v", err)
			}
			if _, err := os.Stat(other); err != nil {
				t.Fatalf("another file went too: %v", err)
			}
			err := runBatch(t, db, "SELECT BulkColumn FROM OPENROWSET(BULK "+quoted(path)+", SINGLE_BLOB) AS k")
			if errNumber(err) != 4860 {
				t.Fatalf("reading the removed file: %v, want Msg 4860", err)
			}
		})
	}
	t.Run("a wildcard in the file name removes every match, as on SQL Server", func(t *testing.T) {
		srv := startServer(t, Config{Logins: bulkLogins()})
		sub := filepath.Join(dir, "wild")
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"a.key", "b.key", "c.txt"} {
			writeRandom(t, filepath.Join(sub, n), 1)
		}
		if err := runBatch(t, mustDB(t, srv, sysUser, sysPass), "EXEC master.sys.xp_delete_files "+quoted(filepath.Join(sub, "*.key"))); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(sub)
		if len(entries) != 1 || entries[0].Name() != "c.txt" {
			t.Fatalf("left %v, want only c.txt", entries)
		}
	})
}

func TestPermissionFunctionsReportBulkAndSysadmin(t *testing.T) {
	srv := startServer(t, Config{Logins: bulkLogins()})
	for _, tt := range []struct {
		user, pass  string
		bulk, sysad int64
	}{
		{adminUser, adminPass, 1, 0},
		{plainUser, plainPass, 0, 0},
		{sysUser, sysPass, 1, 1},
		{bulkUser, bulkPass, 1, 0},
		{denyUser, denyPass, 0, 0},
	} {
		var bulk, sysad sql.NullInt64
		err := mustDB(t, srv, tt.user, tt.pass).QueryRow("SELECT HAS_PERMS_BY_NAME(NULL, NULL, 'ADMINISTER BULK OPERATIONS') AS b, IS_SRVROLEMEMBER('sysadmin') AS s").Scan(&bulk, &sysad)
		if err != nil || bulk.Int64 != tt.bulk || sysad.Int64 != tt.sysad {
			t.Errorf("%s: bulk %v sysadmin %v (%v), want %d %d", tt.user, bulk, sysad, err, tt.bulk, tt.sysad)
		}
	}
	var none sql.NullInt64
	if err := mustDB(t, srv, sysUser, sysPass).QueryRow("SELECT IS_SRVROLEMEMBER('nosuchrole')").Scan(&none); err != nil || none.Valid {
		t.Errorf("an unknown role: %v %v, want NULL", none, err)
	}
}

func TestParseBulkReadAndDeleteFilesUndoubleQuotes(t *testing.T) {
	for _, p := range []string{`C:\keys\it's.key`, "/var/opt/mssql/k''x.key", `\\srv\share\ünï😀.key`} {
		got, err := ParseBulkRead("SELECT BulkColumn FROM OPENROWSET(BULK " + quoted(p) + ", SINGLE_BLOB) AS k")
		if err != nil || got != p {
			t.Errorf("ParseBulkRead: %q, %v; want %q", got, err, p)
		}
		paths, err := ParseDeleteFiles("EXEC master.sys.xp_delete_files " + quoted(p))
		if err != nil || len(paths) != 1 || paths[0] != p {
			t.Errorf("ParseDeleteFiles: %q, %v; want %q", paths, err, p)
		}
	}
}

package sqlserver

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/secret"
)

const maxKey = 1 << 20

// remoteLogins: a sysadmin (what a CI job would typically use), a CONTROL
// SERVER login (may read, may not remove), one denied bulk operations, and
// one without any right.
func remoteLogins() []mssqltest.Login {
	return []mssqltest.Login{
		{User: "ci-admin", Password: testLoginPW, Sysadmin: true},
		{User: testUser, Password: testLoginPW, ControlServer: true},
		{User: "nobulk", Password: testLoginPW, ControlServer: true, DenyBulk: true},
		{User: "reader", Password: testLoginPW},
	}
}

// TestReadServerFileReturnsTheKeyBackupAndRemoveServerFileDeletesIt runs
// against the stand-in and, when KEYESCROW_TEST_SQLSERVER_DSN is set (a
// sysadmin login), against that real server with the same body.
func TestReadServerFileReturnsTheKeyBackupAndRemoveServerFileDeletesIt(t *testing.T) {
	dir := t.TempDir()
	srv := newStandin(t, mssqltest.Config{Logins: remoteLogins()})
	tgs := []target{{name: "stand-in", dsn: srv.DSN("ci-admin", testLoginPW, nil), serverDir: dir, localDir: dir, standin: srv}}
	if dsn := os.Getenv("KEYESCROW_TEST_SQLSERVER_DSN"); dsn != "" {
		tgs = append(tgs, target{name: "real SQL Server", dsn: dsn, serverDir: os.Getenv("KEYESCROW_TEST_SQLSERVER_DIR"), localDir: os.Getenv("KEYESCROW_TEST_SQLSERVER_LOCAL_DIR")})
	} else {
		t.Log("KEYESCROW_TEST_SQLSERVER_DSN is unset: running against the stand-in only")
	}
	for _, tg := range tgs {
		t.Run(tg.name, func(t *testing.T) {
			if tg.serverDir == "" {
				t.Fatal("set KEYESCROW_TEST_SQLSERVER_DIR to a folder the real server can write")
			}
			ctx := context.Background()
			c := open(t, tg.dsn)
			name := "it's remote " + time.Now().UTC().Format("20060102T150405.000000000") + ".key"
			serverPath := tg.serverDir + sepOf(tg.serverDir) + name
			if err := c.BackupServiceMasterKey(ctx, serverPath, secret.New(testBackupPW)); err != nil {
				t.Fatal(err)
			}
			data, err := c.ReadServerFile(ctx, serverPath, maxKey)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) == 0 {
				t.Fatal("read back an empty file")
			}
			if tg.localDir != "" {
				local, err := os.ReadFile(filepath.Join(tg.localDir, name))
				if err != nil || !bytes.Equal(local, data) {
					t.Fatalf("the bytes read over SQL (%d) differ from the file (%d, %v)", len(data), len(local), err)
				}
			}
			if tg.standin != nil {
				if _, err := mssqltest.OpenKeyFile(data, testBackupPW); err != nil {
					t.Fatalf("the bytes read back do not open: %v", err)
				}
			}
			if err := c.RemoveServerFile(ctx, serverPath); err != nil {
				t.Fatal(err)
			}
			_, err = c.ReadServerFile(ctx, serverPath, maxKey)
			var se *Error
			if !errors.As(err, &se) || se.Number != ErrNumBulkFileMissing {
				t.Fatalf("reading the removed file: %v, want Msg 4860", err)
			}
			if tg.localDir != "" {
				if _, err := os.Stat(filepath.Join(tg.localDir, name)); !os.IsNotExist(err) {
					t.Fatalf("the file is still on disk: %v", err)
				}
			}
		})
	}
}

func TestRemoteModeErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "it's.key")
	if err := os.WriteFile(present, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.key")
	if err := os.WriteFile(big, make([]byte, 101), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		cfg     mssqltest.Config
		user    string
		remove  bool // RemoveServerFile, else ReadServerFile
		path    string
		max     int64
		fault   *mssqltest.Fault
		number  int32
		code    int
		want    []string
		removed bool
	}{
		{name: "a login denied bulk operations gets the GRANT", user: "nobulk", path: present, number: ErrNumBulkPermission,
			want: []string{"Msg 4834", "GRANT ADMINISTER BULK OPERATIONS TO [login]", "bulkadmin"}},
		{name: "CONTROL SERVER on Linux before 2022 CU24 is not enough", cfg: mssqltest.Config{BulkRequiresSysadmin: true}, user: testUser, path: present, number: ErrNumBulkPermission,
			want: []string{"Msg 4834", "only sysadmin"}},
		{name: "a file the server cannot see names server_directory", user: "ci-admin", path: filepath.Join(dir, "missing.key"), number: ErrNumBulkFileMissing,
			want: []string{"Msg 4860", "backup.server_directory is the folder as SQL Server itself sees it"}},
		{name: "a folder instead of a file is Msg 4861", user: "ci-admin", path: dir, number: ErrNumBulkFileOpen,
			want: []string{"Msg 4861", "service account"}},
		{name: "a file larger than the limit is refused", user: "ci-admin", path: big, max: 100,
			want: []string{"101 bytes, more than the 100"}},
		{name: "fewer bytes than the server's length is an incomplete transfer", user: "ci-admin", path: present, fault: &mssqltest.Fault{Kind: mssqltest.KindReadFile, ShortRead: 3},
			want: []string{"read 7 bytes", "holds 10"}},
		{name: "removal without sysadmin is Msg 229", user: testUser, remove: true, path: present, number: ErrNumExecuteDenied,
			want: []string{"Msg 229", "needs a member of sysadmin"}},
		{name: "removal on SQL Server 2017 before CU18 is Msg 2812", cfg: mssqltest.Config{ProductVersion: "14.0.3048.4"}, user: "ci-admin", remove: true, path: present, number: ErrNumNoProcedure,
			want: []string{"Msg 2812", "SQL Server 2019 and 2017 CU18"}},
		{name: "removal of a missing file is Msg 22049", user: "ci-admin", remove: true, path: filepath.Join(dir, "missing.key"), number: ErrNumExtendedProcFail,
			want: []string{"Msg 22049", "error 2"}},
		{name: "a wildcard is never sent to xp_delete_files", user: "ci-admin", remove: true, path: filepath.Join(dir, "*.key"), code: exitcode.Usage,
			want: []string{"wildcard"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Logins = remoteLogins()
			srv := newStandin(t, cfg)
			if tc.fault != nil {
				srv.Inject(*tc.fault)
			}
			c := open(t, srv.DSN(tc.user, testLoginPW, nil))
			var err error
			if tc.remove {
				err = c.RemoveServerFile(context.Background(), tc.path)
			} else {
				_, err = c.ReadServerFile(context.Background(), tc.path, orDefault(tc.max, maxKey))
			}
			want := orDefault(int64(tc.code), int64(exitcode.SQLServer))
			if int64(exitcode.Code(err)) != want {
				t.Fatalf("exit code %d for %v, want %d", exitcode.Code(err), err, want)
			}
			var se *Error
			if !errors.As(err, &se) || se.Number != tc.number {
				t.Fatalf("got %#v, want Msg %d", err, tc.number)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), testLoginPW) {
				t.Fatalf("the error contains the password: %v", err)
			}
			if _, serr := os.Stat(present); serr != nil {
				t.Fatalf("a failed step removed the file: %v", serr)
			}
			if tc.code == exitcode.Usage && slices.Contains(srv.Statements(), mssqltest.KindDeleteFiles) {
				t.Fatal("xp_delete_files was sent a wildcard")
			}
		})
	}
}

func orDefault(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

func TestInfoReportsBulkOperationsAndSysadmin(t *testing.T) {
	srv := newStandin(t, mssqltest.Config{Logins: remoteLogins()})
	for user, want := range map[string][2]bool{
		"ci-admin": {true, true},
		testUser:   {true, false},
		"nobulk":   {false, false},
		"reader":   {false, false},
	} {
		info, err := open(t, srv.DSN(user, testLoginPW, nil)).Info(context.Background())
		if err != nil || info.BulkOperations != want[0] || info.Sysadmin != want[1] {
			t.Errorf("%s: bulk %v sysadmin %v (%v), want %v", user, info.BulkOperations, info.Sysadmin, err, want)
		}
	}
}

// FuzzRemoteStatementsRoundTrip proves the quoting of the read-back and
// removal statements through the stand-in's parser: the server acts on
// exactly the path the agent meant.
func FuzzRemoteStatementsRoundTrip(f *testing.F) {
	for _, s := range []string{"/var/opt/mssql/keys/a.key", `C:\Keys\it's here\x.key`, "/k/'", "/k/ N'x', SINGLE_BLOB) AS k; --", `\\server\share\k.key`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		if !utf8.ValidString(path) || strings.ContainsRune(path, 0) {
			t.Skip("not text T-SQL can carry")
		}
		got, err := mssqltest.ParseBulkRead(ReadServerFileStatement(path, maxKey))
		if err != nil || got != path {
			t.Fatalf("read-back statement for %q: parsed %q, %v", path, got, err)
		}
		if got, err := mssqltest.ParseBulkRead(FileLengthStatement(path)); err != nil || got != path {
			t.Fatalf("length statement for %q: parsed %q, %v", path, got, err)
		}
		paths, err := mssqltest.ParseDeleteFiles(RemoveServerFileStatement(path))
		if err != nil || len(paths) != 1 || paths[0] != path {
			t.Fatalf("removal statement for %q: parsed %q, %v", path, paths, err)
		}
	})
}

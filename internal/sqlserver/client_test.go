package sqlserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/secret"
)

const (
	testUser     = "keyescrow"
	testLoginPW  = "L0gin'Pa;ss=wörd"
	testBackupPW = `Pä'ss\"wörd😀1`
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// target is a SQL Server the shared test bodies run against: always the
// stand-in, and a real SQL Server too when KEYESCROW_TEST_SQLSERVER_DSN is set.
type target struct {
	name      string
	dsn       string
	serverDir string // where the server writes, as it sees it
	localDir  string // the same folder as this host sees it ("" = cannot read it)
	standin   *mssqltest.Server
}

func targets(t *testing.T) []target {
	t.Helper()
	dir := t.TempDir()
	srv := newStandin(t, mssqltest.Config{ServerName: `SQLHOST01\INST1`, InstanceName: "INST1"})
	out := []target{{name: "stand-in", dsn: srv.DSN(testUser, testLoginPW, nil), serverDir: dir, localDir: dir, standin: srv}}
	if dsn := os.Getenv("KEYESCROW_TEST_SQLSERVER_DSN"); dsn != "" {
		out = append(out, target{
			name:      "real SQL Server",
			dsn:       dsn,
			serverDir: os.Getenv("KEYESCROW_TEST_SQLSERVER_DIR"),
			localDir:  os.Getenv("KEYESCROW_TEST_SQLSERVER_LOCAL_DIR"),
		})
	} else {
		t.Log("KEYESCROW_TEST_SQLSERVER_DSN is unset: running against the stand-in only")
	}
	return out
}

func newStandin(t *testing.T, cfg mssqltest.Config) *mssqltest.Server {
	t.Helper()
	if cfg.Logins == nil {
		cfg.Logins = []mssqltest.Login{
			{User: testUser, Password: testLoginPW, ControlServer: true},
			{User: "reader", Password: testLoginPW},
		}
	}
	return mssqltest.Start(t, cfg)
}

func open(t *testing.T, dsn string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Open(ctx, secret.New(dsn), quietLog)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestInfoReadsTheInstanceIdentity(t *testing.T) {
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			info, err := open(t, tg.dsn).Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if info.MachineName == "" || info.ServerName == "" || info.InstanceName == "" || info.ProductVersion == "" {
				t.Fatalf("incomplete info: %+v", info)
			}
			if tg.standin != nil && (info.ServerName != `SQLHOST01\INST1` || info.InstanceName != "INST1" || info.MachineName != "SQLHOST01" || !info.ControlServer) {
				t.Fatalf("wrong info from the stand-in: %+v", info)
			}
		})
	}
}

func TestInfoNamesTheDefaultInstanceMSSQLSERVER(t *testing.T) {
	srv := newStandin(t, mssqltest.Config{ServerName: "SQLHOST02"})
	info, err := open(t, srv.DSN(testUser, testLoginPW, nil)).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.InstanceName != DefaultInstance {
		t.Fatalf("InstanceName = %q, want %q", info.InstanceName, DefaultInstance)
	}
	reader, err := open(t, srv.DSN("reader", testLoginPW, nil)).Info(context.Background())
	if err != nil || reader.ControlServer {
		t.Fatalf("a login without CONTROL SERVER: %+v %v", reader, err)
	}
}

func TestBackupWritesAKeyFileThatOnlyThePasswordOpens(t *testing.T) {
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			if tg.serverDir == "" {
				t.Fatal("set KEYESCROW_TEST_SQLSERVER_DIR to a folder the real server can write")
			}
			name := "it's a key " + time.Now().UTC().Format("20060102T150405.000000000") + ".key"
			serverPath := tg.serverDir + sepOf(tg.serverDir) + name
			if err := open(t, tg.dsn).BackupServiceMasterKey(context.Background(), serverPath, secret.New(testBackupPW)); err != nil {
				t.Fatal(err)
			}
			if tg.localDir == "" {
				t.Log("KEYESCROW_TEST_SQLSERVER_LOCAL_DIR unset: the file's bytes are not checked")
				return
			}
			data, err := os.ReadFile(filepath.Join(tg.localDir, name))
			if err != nil || len(data) == 0 {
				t.Fatalf("key file: %d bytes, %v", len(data), err)
			}
			if tg.standin == nil {
				return
			}
			if _, err := mssqltest.OpenKeyFile(data, testBackupPW); err != nil {
				t.Fatalf("the right password does not open the file: %v", err)
			}
			if _, err := mssqltest.OpenKeyFile(data, testBackupPW+"x"); !errors.Is(err, mssqltest.ErrWrongPassword) {
				t.Fatalf("a wrong password: got %v, want ErrWrongPassword", err)
			}
		})
	}
}

func sepOf(dir string) string {
	if strings.Contains(dir, `\`) {
		return `\`
	}
	return "/"
}

func TestSQLServerErrorsBecomeExitCode3WithAFix(t *testing.T) {
	cases := []struct {
		name   string
		user   string
		loginP string
		backup string
		fault  *mssqltest.Fault
		dir    string // relative to the temp dir; "" = the temp dir
		number int32
		want   string
	}{
		{name: "a wrong login password is Msg 18456", user: testUser, loginP: "wrong-Pass1", number: ErrNumLoginFailed, want: "check the login name and password"},
		{name: "a login without CONTROL SERVER is Msg 15247", user: "reader", number: ErrNumPermission, want: "GRANT CONTROL SERVER"},
		{name: "a missing server folder is Msg 15240", dir: "missing", number: ErrNumCannotWriteFile, want: "server_directory exists"},
		{name: "a short password refused by the server is Msg 15116", backup: "Ab1!", number: ErrNumPasswordTooShort, want: "password policy"},
		{name: "a long password refused by the server is Msg 15117", backup: "Ab1!" + strings.Repeat("x", 130), number: ErrNumPasswordTooLong, want: "password policy"},
		{name: "a simple password refused by the server is Msg 15118", backup: "abcdefghij", number: ErrNumPasswordComplex, want: "password policy"},
		{name: "a password filter is Msg 15119", fault: &mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Error: &mssqltest.Error{Number: 15119, Class: 16, Message: "Password validation failed. The password does not meet the requirements of the password filter DLL."}}, number: ErrNumPasswordFilter, want: "password filter"},
		{name: "any other error keeps its number", fault: &mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Error: &mssqltest.Error{Number: 3013, Class: 16, Message: "BACKUP is terminating abnormally."}}, number: 3013, want: "Msg 3013"},
		{name: "a dropped connection is a SQL Server failure", fault: &mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Drop: true}, want: "SQL Server backup failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newStandin(t, mssqltest.Config{})
			if tc.fault != nil {
				srv.Inject(*tc.fault)
			}
			user, loginPW, backupPW := orStr(tc.user, testUser), orStr(tc.loginP, testLoginPW), orStr(tc.backup, testBackupPW)
			dir := t.TempDir()
			if tc.dir != "" {
				dir = filepath.Join(dir, tc.dir)
			}
			ctx := context.Background()
			c, err := Open(ctx, secret.New(srv.DSN(user, loginPW, nil)), quietLog)
			if err == nil {
				defer c.Close()
				err = c.BackupServiceMasterKey(ctx, filepath.Join(dir, "k.key"), secret.New(backupPW))
			}
			if exitcode.Code(err) != exitcode.SQLServer {
				t.Fatalf("exit code %d for %v, want 3", exitcode.Code(err), err)
			}
			var se *Error
			if !errors.As(err, &se) || se.Number != tc.number {
				t.Fatalf("got %#v, want Msg %d", err, tc.number)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("message %q does not say %q", err, tc.want)
			}
			for _, s := range []string{loginPW, backupPW} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("the error contains a password: %v", err)
				}
			}
		})
	}
}

func orStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestEveryEncryptionModeConnectsWithItsDSN(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode mssqltest.EncryptionMode
	}{
		{"no TLS (encrypt=disable)", mssqltest.EncryptNotSupported},
		{"login-only TLS (encrypt=false)", mssqltest.EncryptOff},
		{"forced TLS (encrypt=true)", mssqltest.EncryptRequired},
		{"TDS 8 strict", mssqltest.EncryptStrict},
	} {
		t.Run(mode.name, func(t *testing.T) {
			srv := newStandin(t, mssqltest.Config{Encryption: mode.mode})
			dir := t.TempDir()
			c := open(t, srv.DSN(testUser, testLoginPW, nil))
			if err := c.BackupServiceMasterKey(context.Background(), filepath.Join(dir, "k.key"), secret.New(testBackupPW)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestATLSMismatchFailsWithAHint(t *testing.T) {
	srv := newStandin(t, mssqltest.Config{Encryption: mssqltest.EncryptRequired})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, secret.New(srv.DSN(testUser, testLoginPW, map[string]string{"encrypt": "disable"})), quietLog)
	if exitcode.Code(err) != exitcode.SQLServer {
		t.Fatalf("got %v (exit %d), want exit 3", err, exitcode.Code(err))
	}
	if strings.Contains(err.Error(), testLoginPW) {
		t.Fatalf("the error contains the password: %v", err)
	}
}

func TestNothingListeningSaysSo(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dsn := "sqlserver://" + testUser + ":pw@" + l.Addr().String() + "?encrypt=disable&dial+timeout=5"
	_ = l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Open(ctx, secret.New(dsn), quietLog)
	if exitcode.Code(err) != exitcode.SQLServer || !strings.Contains(err.Error(), "nothing listens") {
		t.Fatalf("got %v", err)
	}
}

func TestCancellingDuringTheBackupReturnsPromptlyAsCancelled(t *testing.T) {
	srv := newStandin(t, mssqltest.Config{})
	srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Delay: time.Minute})
	c := open(t, srv.DSN(testUser, testLoginPW, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.BackupServiceMasterKey(ctx, filepath.Join(t.TempDir(), "k.key"), secret.New(testBackupPW))
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the backup did not return after cancel")
	}
}

func TestAnUnparsableDSNNeverQuotesIt(t *testing.T) {
	for _, dsn := range []string{
		"sqlserver://u:S3cret-Pw@host:notaport",
		"server=host;user id=u;password=S3cret-Pw;port=notaport",
	} {
		_, err := Open(context.Background(), secret.New(dsn), quietLog)
		if err == nil {
			continue // the driver accepted it; it will fail at connect instead
		}
		if strings.Contains(err.Error(), "S3cret-Pw") {
			t.Fatalf("the error quotes the DSN's password: %v", err)
		}
		if exitcode.Code(err) != exitcode.Usage && exitcode.Code(err) != exitcode.SQLServer {
			t.Fatalf("exit %d for %v", exitcode.Code(err), err)
		}
	}
}

func TestEndpointShowsHostWithoutCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"sqlserver://u:pw@db1:1433?database=master": "db1:1433",
		"sqlserver://u:pw@db1/INST1":                `db1\INST1`,
		"server=db1;password=x":                     "(the configured server)",
	} {
		if got := Endpoint(in); got != want {
			t.Errorf("Endpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAnExistingFileIsNeverOverwrittenMsg15240(t *testing.T) {
	srv := newStandin(t, mssqltest.Config{})
	path := filepath.Join(t.TempDir(), "k.key")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := open(t, srv.DSN(testUser, testLoginPW, nil)).BackupServiceMasterKey(context.Background(), path, secret.New(testBackupPW))
	var se *Error
	if !errors.As(err, &se) || se.Number != ErrNumCannotWriteFile || exitcode.Code(err) != exitcode.SQLServer {
		t.Fatalf("got %v, want Msg 15240 with exit 3", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatalf("the existing file changed: %q", b)
	}
}

func TestAHungStatementEndsAtTheStatementTimeoutAsExit3(t *testing.T) {
	srv := newStandin(t, mssqltest.Config{})
	srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Delay: time.Minute})
	c := open(t, srv.DSN(testUser, testLoginPW, nil))
	c.StatementTimeout = 200 * time.Millisecond
	start := time.Now()
	err := c.BackupServiceMasterKey(context.Background(), filepath.Join(t.TempDir(), "k.key"), secret.New(testBackupPW))
	if exitcode.Code(err) != exitcode.SQLServer || !strings.Contains(err.Error(), "did not answer in time") {
		t.Fatalf("got %v (exit %d)", err, exitcode.Code(err))
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("took %v", d)
	}
}

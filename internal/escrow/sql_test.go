package escrow

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/receipt"
)

func TestSQLServerFailuresExitThreeAndNameTheFix(t *testing.T) {
	injected := func(number int32, msg string) func(*env) {
		return func(e *env) {
			e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Error: &mssqltest.Error{Number: number, Class: 16, State: 1, Message: msg}})
		}
	}
	cases := []struct {
		name      string
		mod       func(*setup)
		fault     func(*env)
		want      []string // in the run's error
		triedBack bool     // BACKUP reached the server
	}{
		{
			name: "a wrong password in the DSN",
			mod:  func(s *setup) { s.pass = "Wr0ng-Pa55!" },
			want: []string{"Msg 18456", "check the login name and password in the DSN"},
		},
		{
			name:      "a login without CONTROL SERVER",
			mod:       func(s *setup) { s.user, s.pass = plainUser, plainPass },
			want:      []string{"Msg 15247", "GRANT CONTROL SERVER"},
			triedBack: true,
		},
		{
			name:      "a folder the server cannot write to",
			fault:     injected(15240, `Cannot write into file 'C:\keys\x.key'.`),
			want:      []string{"Msg 15240", "backup.server_directory exists on the server"},
			triedBack: true,
		},
		{
			name:      "a password the server's policy rejects",
			fault:     injected(15118, "Password validation failed. The password does not meet the operating system policy requirements because it is not complex enough."),
			want:      []string{"Msg 15118", "password policy"},
			triedBack: true,
		},
		{
			name:      "a weak password the server itself checks",
			mod:       func(s *setup) { s.password = "abcdefgh" },
			want:      []string{"Msg 15118", "choose 8 to 128 characters"},
			triedBack: true,
		},
		{
			name: "a server that is not running",
			fault: func(e *env) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					e.t.Fatal(err)
				}
				ln.Close()
				e.dsn = "sqlserver://" + adminUser + ":" + url.QueryEscape(adminPass) + "@" + ln.Addr().String() + "?encrypt=disable"
			},
			want: []string{"SQL Server connect failed", "nothing listens at the DSN's host and port"},
		},
		{
			name: "a connection dropped during the backup",
			fault: func(e *env) {
				e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Drop: true})
			},
			want:      []string{"SQL Server backup failed", "the server closed the connection"},
			triedBack: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mods := []func(*setup){}
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			e := newEnv(t, mods...)
			if tc.fault != nil {
				tc.fault(e)
			}
			rec, err := e.backup()
			if code := exitcode.Code(err); code != exitcode.SQLServer {
				t.Fatalf("exit code %d (%v), want 3", code, err)
			}
			t.Logf("the run's error: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error %q does not say %q", err, w)
				}
			}
			if rec.Status != receipt.StatusFailed || rec.ExitCode != exitcode.SQLServer || rec.Error == nil || rec.Error.Code != exitcode.SQLServer || rec.Error.Message != err.Error() {
				t.Errorf("receipt status %q exit %d error %+v, want failed with code 3 and the error", rec.Status, rec.ExitCode, rec.Error)
			}
			if got := e.backupRan(); got != tc.triedBack {
				t.Errorf("BACKUP reached the server: %v, want %v (statements %v)", got, tc.triedBack, e.srv.Statements())
			}
			e.assertNothingWritten()
			entries, _ := os.ReadDir(e.keyDir)
			if len(entries) != 0 {
				t.Errorf("the key folder holds %d files after a failed backup", len(entries))
			}
		})
	}
}

func TestAHeldLockStopsTheRunBeforeSQLServer(t *testing.T) {
	e := newEnv(t, func(s *setup) {
		s.lock = func() (func(), error) {
			return nil, exitcode.Wrap(exitcode.Locked, errors.New("another keyescrow run (pid 4242) holds /run/keyescrow.lock"))
		}
	})
	rec, err := e.backup()
	if code := exitcode.Code(err); code != exitcode.Locked {
		t.Fatalf("exit code %d (%v), want 7", code, err)
	}
	if e.backupRan() || e.connects.Load() != 0 {
		t.Errorf("BACKUP ran %v, SQL connects %d; want neither while the lock is held", e.backupRan(), e.connects.Load())
	}
	if rec.Status != receipt.StatusFailed || rec.ExitCode != exitcode.Locked || rec.Error == nil || !strings.Contains(rec.Error.Message, "pid 4242") {
		t.Errorf("receipt status %q exit %d error %+v", rec.Status, rec.ExitCode, rec.Error)
	}
	e.assertNothingWritten()
}

func TestTheLockIsReleasedAfterTheRun(t *testing.T) {
	var taken, released int
	e := newEnv(t, func(s *setup) {
		s.lock = func() (func(), error) { taken++; return func() { released++ }, nil }
	})
	e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Error: &mssqltest.Error{Number: 15240, Class: 16, Message: "Cannot write"}, Times: 1})
	if _, err := e.backup(); exitcode.Code(err) != exitcode.SQLServer {
		t.Fatalf("first run: %v", err)
	}
	e.runner.RunID = NewRunID()
	if _, err := e.backup(); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if taken != 2 || released != 2 {
		t.Errorf("lock taken %d released %d, want 2 and 2", taken, released)
	}
}

func TestAnInterruptedBackupExits130AndLeavesNothingReadable(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	e := newEnv(t, func(s *setup) {
		// Cancel the run the moment BACKUP reaches the server, which holds it.
		logf := s.server.Logf
		s.server.Logf = func(format string, args ...any) {
			if slices.Contains(args, any(mssqltest.KindBackupSMK)) {
				cancel()
			}
			logf(format, args...)
		}
	})
	e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Delay: time.Minute})

	rec, err := e.runner.Backup(ctx)
	if code := exitcode.Code(err); code != exitcode.Interrupted {
		t.Fatalf("exit code %d (%v), want 130", code, err)
	}
	if !e.backupRan() {
		t.Fatal("the run was not interrupted during BACKUP")
	}
	if rec.Status != receipt.StatusFailed || rec.ExitCode != exitcode.Interrupted || rec.Error == nil || rec.Error.Code != exitcode.Interrupted {
		t.Errorf("receipt status %q exit %d error %+v, want failed with 130", rec.Status, rec.ExitCode, rec.Error)
	}
	entries, err := os.ReadDir(e.keyDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		fi, err := en.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is left with mode %04o, readable by others", en.Name(), fi.Mode().Perm())
		}
	}
	e.assertNothingWritten()
}

func TestAnInterruptedRunBeforeBackupExits130(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rec, err := e.runner.Backup(ctx)
	if code := exitcode.Code(err); code != exitcode.Interrupted {
		t.Fatalf("exit code %d (%v), want 130", code, err)
	}
	if rec.ExitCode != exitcode.Interrupted || e.backupRan() {
		t.Errorf("receipt exit %d, BACKUP ran %v", rec.ExitCode, e.backupRan())
	}
	e.assertNothingWritten()
}

func TestABackupWhoseFileThisHostCannotSeeNamesLocalDirectory(t *testing.T) {
	other := t.TempDir()
	if err := os.Chmod(other, 0o700); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	// The server writes to its own folder; this host looks in another one.
	e.runner.Config.Backup.LocalDirectory = other
	rec, err := e.backup()
	if code := exitcode.Code(err); code != exitcode.SQLServer {
		t.Fatalf("exit code %d (%v), want 3", code, err)
	}
	if !strings.Contains(err.Error(), "backup.local_directory") {
		t.Errorf("the error %q does not name backup.local_directory", err)
	}
	if rec.File == nil || rec.File.Name != e.keyFileName() {
		t.Errorf("receipt file %+v", rec.File)
	}
	e.assertNothingWritten()
}

func TestASQLFailureBesideARefusedDestinationReportsBoth(t *testing.T) {
	e := newEnv(t, func(s *setup) { s.mem.Region = homeRegion; s.memDest.Region = "" })
	e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Error: &mssqltest.Error{Number: 15240, Class: 16, Message: "Cannot write"}})
	rec, err := e.backup()
	if code := exitcode.Code(err); code < exitcode.SQLServer {
		t.Fatalf("exit code %d (%v), want a failure", code, err)
	}
	if d := dest(t, rec, memName); d.Status != receipt.DestRefused || d.Error == nil || d.Error.Code != exitcode.Policy {
		t.Errorf("the refused destination is not in the receipt: %+v", rec.Destinations)
	}
	if rec.Error == nil || !strings.Contains(rec.Error.Message, "Msg 15240") {
		t.Errorf("the receipt does not carry the SQL Server failure: %+v", rec.Error)
	}
	e.assertNothingWritten()
}

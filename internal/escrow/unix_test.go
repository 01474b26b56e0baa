//go:build unix

package escrow

// Tests that rely on Unix permission bits, symbolic links, named pipes or
// file names Windows forbids.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/secret"
)

func TestBackupWithKeepLocalKeepsTheKeyFileOwnerOnly(t *testing.T) {
	e := newEnv(t, func(s *setup) { s.keepLocal = true })
	rec, err := e.backup()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	fi, err := os.Lstat(e.localKeyPath())
	if err != nil {
		t.Fatalf("keep_local: the local key file is gone: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the kept key file has mode %04o, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(e.localKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != rec.File.SHA256 {
		t.Error("the kept key file differs from the archived one")
	}
	if _, err := mssqltest.OpenKeyFile(data, backupPassword); err != nil {
		t.Errorf("the kept key file does not open with the backup password: %v", err)
	}
}

func TestBackupRefusesAKeyFolderOpenToOthersBeforeBackupRuns(t *testing.T) {
	e := newEnv(t)
	if err := os.Chmod(e.keyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rec, err := e.backup()
	if code := exitcode.Code(err); code != exitcode.Usage {
		t.Fatalf("exit code %d (%v), want 2", code, err)
	}
	if e.backupRan() {
		t.Error("BACKUP SERVICE MASTER KEY ran although the key folder is open to others")
	}
	if rec.Status != receipt.StatusFailed || rec.Error == nil || rec.Error.Code != exitcode.Usage || !strings.Contains(rec.Error.Message, "chmod o-rwx") {
		t.Errorf("receipt status %q error %+v, want failed with code 2 naming chmod o-rwx", rec.Status, rec.Error)
	}
	e.assertNothingWritten()
}

func TestBackupRoundTripsQuotesBackslashesAndUnicode(t *testing.T) {
	const pw = `Pä'ss\"wörd😀1`
	e := newEnv(t, func(s *setup) {
		s.password = pw
		s.keepLocal = true
		s.keyDirName = `it's "keys" ü`
	})
	rec, err := e.backup()
	if err != nil {
		t.Fatalf("Backup: %v\nlogs:\n%s", err, e.logs)
	}
	data, err := os.ReadFile(e.localKeyPath())
	if err != nil {
		t.Fatalf("no key file in the folder with a quote in its name: %v", err)
	}
	smk, err := mssqltest.OpenKeyFile(data, pw)
	if err != nil {
		t.Fatalf("the key file does not open with the password as given: %v", err)
	}
	if !bytes.Equal(smk, e.srv.ServiceMasterKey()) {
		t.Fatal("the key file holds another key")
	}
	if _, err := mssqltest.OpenKeyFile(data, strings.ReplaceAll(pw, "'", "''")); !errors.Is(err, mssqltest.ErrWrongPassword) {
		t.Errorf("the key file opens with the quote-doubled password too (%v): the quoting leaked into the value", err)
	}
	if rec.Status != receipt.StatusOK {
		t.Errorf("status %q", rec.Status)
	}
}

func TestAKeyFileLeftByAFailedBackupIsMadeOwnerOnly(t *testing.T) {
	e := newEnv(t)
	// SQL Server wrote a file (here: a stray one under the run's name) and
	// then reported an error.
	if err := os.WriteFile(e.localKeyPath(), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.localKeyPath(), 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := e.backup()
	if code := exitcode.Code(err); code != exitcode.SQLServer {
		t.Fatalf("exit code %d (%v), want 3 (Msg 15240: the file exists)", code, err)
	}
	fi, err := os.Stat(e.localKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the left-over key file has mode %04o, want 0600", fi.Mode().Perm())
	}
	if rec.Error == nil || !strings.Contains(rec.Error.Message, "15240") {
		t.Errorf("receipt error %+v", rec.Error)
	}
}

// specialFiles are a symbolic link to a key file and a named pipe: neither
// is archived.
func specialFiles(t *testing.T, dir string) []struct{ name, file, want string } {
	good := filepath.Join(dir, "target.key")
	if err := os.WriteFile(good, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.key")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	return []struct{ name, file, want string }{
		{"a symbolic link", link, "not a regular file"},
		{"a named pipe", fifo, "not a regular file"},
	}
}

// chmodSQL makes the key file SQL Server wrote readable by others, as a
// server with a loose umask would.
type chmodSQL struct {
	SQL
	local string
}

func (c chmodSQL) BackupServiceMasterKey(ctx context.Context, serverPath string, pw secret.Value) error {
	if err := c.SQL.BackupServiceMasterKey(ctx, serverPath, pw); err != nil {
		return err
	}
	return os.Chmod(filepath.Join(c.local, filepath.Base(serverPath)), 0o644)
}

func TestAKeyFileWrittenReadableByOthersIsMadeOwnerOnly(t *testing.T) {
	e := newEnv(t, func(s *setup) { s.keepLocal = true })
	connect := e.runner.ConnectSQL
	e.runner.ConnectSQL = func(ctx context.Context) (SQL, error) {
		db, err := connect(ctx)
		if err != nil {
			return nil, err
		}
		return chmodSQL{SQL: db, local: e.keyDir}, nil
	}
	if _, err := e.backup(); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	fi, err := os.Stat(e.localKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the kept key file has mode %04o, want 0600", fi.Mode().Perm())
	}
}

func TestCheckKeyFolder(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(root, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	private := mk("private", 0o700)
	group := mk("group", 0o750)
	open := mk("open", 0o755)
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(root, "missing")
	cases := []struct {
		name, local, server, want string
	}{
		{"a private server folder", "", private, ""},
		{"a folder its group may read", "", group, ""},
		{"a private local folder wins over an open server folder", private, open, ""},
		{"a folder open to others", "", open, "backup.server_directory " + open + " is open to other users (mode 0755): run chmod o-rwx"},
		{"an open local folder", open, private, "backup.local_directory " + open + " is open to other users"},
		{"a missing folder", "", missing, "backup.server_directory " + missing + " does not exist on this host"},
		{"a missing local folder", missing, private, "backup.local_directory " + missing + " does not exist"},
		{"a file", "", file, "is not a folder"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckKeyFolder(tc.local, tc.server)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckKeyFolder = %v, want nil", err)
				}
				return
			}
			if exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckKeyFolder = %v (exit %d), want exit 2 saying %q", err, exitcode.Code(err), tc.want)
			}
		})
	}
}

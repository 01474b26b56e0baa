package mssqltest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// quote builds an N'...' literal the way the agent must.
func quote(s string) string { return "N'" + strings.ReplaceAll(s, "'", "''") + "'" }

func backupStmt(path, pw string) string {
	return "BACKUP SERVICE MASTER KEY TO FILE = " + quote(path) + " ENCRYPTION BY PASSWORD = " + quote(pw)
}

func restoreStmt(path, pw string) string {
	return "RESTORE SERVICE MASTER KEY FROM FILE = " + quote(path) + " DECRYPTION BY PASSWORD = " + quote(pw)
}

const keyPass = "Key-Pa55word"

func TestBackupServiceMasterKey(t *testing.T) {
	srv := startServer(t, Config{})
	db := mustDB(t, srv, adminUser, adminPass)
	dir := t.TempDir()

	t.Run("writes a file that only the right password opens", func(t *testing.T) {
		path := filepath.Join(dir, "smk.key")
		if err := runBatch(t, db, backupStmt(path, keyPass)); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil || len(data) == 0 {
			t.Fatalf("read: %v (%d bytes)", err, len(data))
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v", fi.Mode())
		}
		smk, err := OpenKeyFile(data, keyPass)
		if err != nil || !bytes.Equal(smk, srv.ServiceMasterKey()) {
			t.Fatalf("OpenKeyFile: %v", err)
		}
		if _, err := OpenKeyFile(data, keyPass+"x"); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("wrong password: %v", err)
		}
		for _, i := range []int{0, 10, len(data) / 2, len(data) - 1} {
			bad := bytes.Clone(data)
			bad[i] ^= 0x01
			if _, err := OpenKeyFile(bad, keyPass); !errors.Is(err, ErrCorruptKeyFile) {
				t.Fatalf("flipped byte %d: %v", i, err)
			}
		}
		if _, err := OpenKeyFile(data[:len(data)-1], keyPass); !errors.Is(err, ErrCorruptKeyFile) {
			t.Fatalf("truncated: %v", err)
		}
	})
	t.Run("two backups of the same key differ", func(t *testing.T) {
		a, b := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
		for _, p := range []string{a, b} {
			if err := runBatch(t, db, backupStmt(p, keyPass)); err != nil {
				t.Fatal(err)
			}
		}
		da, _ := os.ReadFile(a)
		db2, _ := os.ReadFile(b)
		if bytes.Equal(da, db2) {
			t.Fatal("identical backups")
		}
	})
	t.Run("keywords in any case, any whitespace, plain literals and a trailing semicolon", func(t *testing.T) {
		path := filepath.Join(dir, "lower.key")
		stmt := fmt.Sprintf("backup\tservice  master\nkey to file='%s'\r\n encryption BY password = '%s' ;", path, keyPass)
		if err := runBatch(t, db, stmt); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("quotes, backslashes, spaces and unicode round-trip", func(t *testing.T) {
		sub := filepath.Join(dir, "it's a ''dir''")
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(sub, `k'e\y ü😀.key`)
		pw := "Pä'ss\\wörd😀1"
		if err := runBatch(t, db, backupStmt(path, pw)); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeyFile(data, pw); err != nil {
			t.Fatalf("OpenKeyFile: %v", err)
		}
	})

	errTests := []struct {
		name   string
		user   string
		pass   string
		path   string
		pw     string
		number int32
		msg    string
	}{
		{"a login without CONTROL SERVER gets 15247", plainUser, plainPass, filepath.Join(dir, "perm.key"), keyPass, 15247,
			"User does not have permission to perform this action."},
		{"a short password gets 15116", adminUser, adminPass, filepath.Join(dir, "short.key"), "Ab1!", 15116, "too short."},
		{"a long password gets 15117", adminUser, adminPass, filepath.Join(dir, "long.key"), "Ab1!" + strings.Repeat("x", 125), 15117, "too long."},
		{"a simple password gets 15118", adminUser, adminPass, filepath.Join(dir, "simple.key"), "alllowercase", 15118, "not complex enough."},
		{"an existing file gets 15240", adminUser, adminPass, filepath.Join(dir, "exists.key"), keyPass, 15240, "Cannot write into file '"},
		{"a missing directory gets 15240", adminUser, adminPass, filepath.Join(dir, "nope", "x.key"), keyPass, 15240,
			"Verify that you have write permissions, that the file path is valid, and that the file does not already exist."},
	}
	if err := os.WriteFile(filepath.Join(dir, "exists.key"), []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			conn := mustDB(t, srv, tt.user, tt.pass)
			err := runBatch(t, conn, backupStmt(tt.path, tt.pw))
			if got := errNumber(err); got != tt.number {
				t.Fatalf("error %v (number %d), want %d", err, got, tt.number)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("message %q lacks %q", err, tt.msg)
			}
			if tt.number != 15240 {
				if _, err := os.Stat(tt.path); !os.IsNotExist(err) {
					t.Fatalf("file written: %v", err)
				}
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "exists.key")); string(b) != "keep me" {
		t.Fatal("existing file was overwritten")
	}
	t.Run("the 15240 message quotes the path as given", func(t *testing.T) {
		path := filepath.Join(dir, "exists.key")
		err := runBatch(t, db, backupStmt(path, keyPass))
		if !strings.Contains(err.Error(), "Cannot write into file '"+path+"'.") {
			t.Fatalf("message %q", err)
		}
	})
	t.Run("a malformed statement is a syntax error", func(t *testing.T) {
		err := runBatch(t, db, "BACKUP SERVICE MASTER KEY TO FILE = N'x' ENCRYPTION BY PASSWORD")
		if errNumber(err) != 102 {
			t.Fatalf("err %v", err)
		}
	})
}

func TestMapPathLetsTheServerSeeAWindowsPath(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, Config{MapPath: func(p string) (string, error) {
		rest, ok := strings.CutPrefix(p, `C:\keys\`)
		if !ok || strings.ContainsAny(rest, `\/`) {
			return "", fmt.Errorf("path %q is not under C:\\keys", p)
		}
		return filepath.Join(dir, rest), nil
	}})
	db := mustDB(t, srv, adminUser, adminPass)
	if err := runBatch(t, db, backupStmt(`C:\keys\SQLHOST01$INST1-servicemasterkey.key`, keyPass)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "SQLHOST01$INST1-servicemasterkey.key")); err != nil {
		t.Fatal(err)
	}
	err := runBatch(t, db, backupStmt(`D:\elsewhere\x.key`, keyPass))
	if errNumber(err) != 15240 || !strings.Contains(err.Error(), `'D:\elsewhere\x.key'`) {
		t.Fatalf("unmapped path: %v", err)
	}
	if err := runBatch(t, db, restoreStmt(`C:\keys\SQLHOST01$INST1-servicemasterkey.key`, keyPass)); err != nil {
		t.Fatalf("restore: %v", err)
	}
}

func TestRestoreServiceMasterKey(t *testing.T) {
	srv := startServer(t, Config{})
	other := startServer(t, Config{})
	dir := t.TempDir()
	good := filepath.Join(dir, "other.key")
	if err := runBatch(t, mustDB(t, other, adminUser, adminPass), backupStmt(good, keyPass)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	corrupt := filepath.Join(dir, "corrupt.key")
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0xFF
	if err := os.WriteFile(corrupt, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key file"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		user   string
		pass   string
		stmt   string
		number int32
	}{
		{"a login without CONTROL SERVER gets 15247", plainUser, plainPass, restoreStmt(good, keyPass), 15247},
		{"a wrong password gets 15466", adminUser, adminPass, restoreStmt(good, "Wrong-Pa55word"), 15466},
		{"a corrupt file gets 15317", adminUser, adminPass, restoreStmt(corrupt, keyPass), 15317},
		{"a foreign file gets 15317", adminUser, adminPass, restoreStmt(garbage, keyPass), 15317},
		{"a missing file gets 15317", adminUser, adminPass, restoreStmt(filepath.Join(dir, "missing.key"), keyPass), 15317},
		{"the right password replaces the key", adminUser, adminPass, restoreStmt(good, keyPass), 0},
		{"FORCE is accepted", adminUser, adminPass, restoreStmt(good, keyPass) + " FORCE;", 0},
	}
	before := srv.ServiceMasterKey()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runBatch(t, mustDB(t, srv, tt.user, tt.pass), tt.stmt)
			if tt.number == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(srv.ServiceMasterKey(), other.ServiceMasterKey()) {
					t.Fatal("SMK not replaced")
				}
				return
			}
			if got := errNumber(err); got != tt.number {
				t.Fatalf("error %v (number %d), want %d", err, got, tt.number)
			}
			if !bytes.Equal(srv.ServiceMasterKey(), before) {
				t.Fatal("SMK changed by a failed restore")
			}
		})
	}
}

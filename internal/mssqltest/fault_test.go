package mssqltest

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	t.Run("an injected error reaches the driver as mssql.Error, once", func(t *testing.T) {
		srv := startServer(t, Config{})
		db := mustDB(t, srv, adminUser, adminPass)
		srv.Inject(Fault{Kind: KindBackupSMK, Times: 1, Error: &Error{Number: 3013, State: 1, Class: 16, Message: "BACKUP failed."}})
		path := filepath.Join(t.TempDir(), "x.key")
		if err := runBatch(t, db, backupStmt(path, keyPass)); errNumber(err) != 3013 {
			t.Fatalf("first: %v", err)
		}
		if err := runBatch(t, db, backupStmt(path, keyPass)); err != nil {
			t.Fatalf("second: %v", err)
		}
	})
	t.Run("a fault fires only for its kind and Times=0 means every time", func(t *testing.T) {
		srv := startServer(t, Config{})
		db := mustDB(t, srv, adminUser, adminPass)
		srv.Inject(Fault{Kind: KindRestoreSMK, Error: &Error{Number: 50001, Class: 16, State: 1, Message: "nope"}})
		for range 3 {
			if err := runBatch(t, db, restoreStmt("/nonexistent", keyPass)); errNumber(err) != 50001 {
				t.Fatalf("restore: %v", err)
			}
		}
		if _, err := queryOne(t, db, "SELECT 1"); err != nil {
			t.Fatalf("select: %v", err)
		}
	})
	t.Run("a login fault fails the connection", func(t *testing.T) {
		srv := startServer(t, Config{})
		srv.Inject(Fault{Kind: KindLogin, Times: 1, Error: &Error{Number: 18456, State: 8, Class: 14, Message: "Login failed for user 'x'."}})
		if _, err := openDB(t, srv.DSN(adminUser, adminPass, nil)); errNumber(err) != 18456 {
			t.Fatalf("err %v", err)
		}
		if _, err := openDB(t, srv.DSN(adminUser, adminPass, nil)); err != nil {
			t.Fatalf("second login: %v", err)
		}
	})
	t.Run("a dropped connection is an error, and the pool recovers", func(t *testing.T) {
		srv := startServer(t, Config{})
		db := mustDB(t, srv, adminUser, adminPass)
		srv.Inject(Fault{Kind: KindBackupSMK, Times: 1, Drop: true})
		path := filepath.Join(t.TempDir(), "x.key")
		if err := runBatch(t, db, backupStmt(path, keyPass)); err == nil {
			t.Fatal("no error after drop")
		}
		if _, err := queryOne(t, db, "SELECT 1"); err != nil {
			t.Fatalf("after drop: %v", err)
		}
	})
	t.Run("a delay ends with a context error when the caller cancels, and the connection stays usable", func(t *testing.T) {
		for _, mode := range []EncryptionMode{EncryptNotSupported, EncryptOff, EncryptRequired, EncryptStrict} {
			srv := startServer(t, Config{Encryption: mode})
			db := mustDB(t, srv, adminUser, adminPass)
			db.SetMaxOpenConns(1)
			srv.Inject(Fault{Kind: KindSelect, Times: 1, Delay: 30 * time.Second})
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			start := time.Now()
			var v any
			err := db.QueryRowContext(ctx, "SELECT 1").Scan(&v)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("mode %d: err %v, want deadline exceeded", mode, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("mode %d: cancel took %v", mode, d)
			}
			if got, err := queryOne(t, db, "SELECT 2"); err != nil || got != int64(2) {
				t.Fatalf("mode %d: after cancel: %v %v", mode, got, err)
			}
		}
	})
	t.Run("a delay without cancel just slows the statement down", func(t *testing.T) {
		srv := startServer(t, Config{})
		db := mustDB(t, srv, adminUser, adminPass)
		srv.Inject(Fault{Kind: KindSelect, Times: 1, Delay: 300 * time.Millisecond})
		start := time.Now()
		if _, err := queryOne(t, db, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("took %v", d)
		}
	})
	t.Run("Close interrupts a delay and returns promptly", func(t *testing.T) {
		srv := startServer(t, Config{})
		db := mustDB(t, srv, adminUser, adminPass)
		srv.Inject(Fault{Kind: KindSelect, Delay: time.Minute})
		done := make(chan error, 1)
		go func() {
			var v any
			done <- db.QueryRow("SELECT 1").Scan(&v)
		}()
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		srv.Close()
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Close took %v", d)
		}
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("query succeeded on a closed server")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("query still blocked after Close")
		}
	})
	t.Run("Statements records the kinds of batches in order", func(t *testing.T) {
		srv := startServer(t, Config{})
		db := mustDB(t, srv, adminUser, adminPass)
		path := filepath.Join(t.TempDir(), "x.key")
		_ = runBatch(t, db, backupStmt(path, keyPass))
		_ = runBatch(t, db, restoreStmt(path, keyPass))
		_ = runBatch(t, db, "DBCC CHECKDB")
		want := []StatementKind{KindSelect, KindBackupSMK, KindRestoreSMK, KindOther} // the ping first
		if got := srv.Statements(); !slices.Equal(got, want) {
			t.Fatalf("Statements() = %v, want %v", got, want)
		}
	})
}

func TestConcurrentConnections(t *testing.T) {
	srv := startServer(t, Config{Encryption: EncryptRequired})
	db := mustDB(t, srv, adminUser, adminPass)
	db.SetMaxOpenConns(8)
	dir := t.TempDir()
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			if _, err := queryOne(t, db, "SELECT @@SPID"); err != nil {
				errs <- err
				return
			}
			errs <- runBatch(t, db, backupStmt(filepath.Join(dir, string(rune('a'+i))+".key"), keyPass))
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

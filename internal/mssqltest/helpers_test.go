package mssqltest

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
)

const (
	adminUser = "escrow"
	adminPass = "Adm1n-Pa55!"
	plainUser = "reader"
	plainPass = "Read3r-Pa55!"
)

// startServer starts a stand-in with an admin (CONTROL SERVER) and a plain login.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Logins == nil {
		cfg.Logins = []Login{
			{User: adminUser, Password: adminPass, ControlServer: true},
			{User: plainUser, Password: plainPass},
		}
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// openDB opens a database/sql handle and pings it.
func openDB(t *testing.T, dsn string) (*sql.DB, error) {
	t.Helper()
	db, err := sql.Open("sqlserver", dsn)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return db, db.PingContext(ctx)
}

// mustDB opens an admin connection or fails the test.
func mustDB(t *testing.T, srv *Server, user, pass string) *sql.DB {
	t.Helper()
	db, err := openDB(t, srv.DSN(user, pass, nil))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return db
}

// exec runs a plain batch (no arguments, so no sp_executesql).
func runBatch(t *testing.T, db *sql.DB, stmt string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := db.ExecContext(ctx, stmt)
	return err
}

// errNumber extracts the SQL Server error number, or -1.
func errNumber(err error) int32 {
	var me mssql.Error
	if errors.As(err, &me) {
		return me.Number
	}
	return -1
}

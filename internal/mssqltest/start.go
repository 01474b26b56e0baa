package mssqltest

import "testing"

// Start starts a stand-in for a test on 127.0.0.1:0 and closes it when the
// test ends; a stand-in that cannot start fails the test.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("starting the SQL Server stand-in: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

package mssqltest

import (
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestEncryptionModes(t *testing.T) {
	tests := []struct {
		name    string
		mode    EncryptionMode
		params  map[string]string
		wantErr bool
	}{
		{"a server without TLS accepts encrypt=disable", EncryptNotSupported, nil, false},
		{"a server without TLS refuses encrypt=true", EncryptNotSupported, map[string]string{"encrypt": "true"}, true},
		{"an OFF server encrypts only the login for encrypt=false", EncryptOff, nil, false},
		{"an OFF server encrypts everything for encrypt=true", EncryptOff, map[string]string{"encrypt": "true"}, false},
		{"an OFF server accepts encrypt=disable", EncryptOff, map[string]string{"encrypt": "disable"}, false},
		{"an OFF server refuses a TDS 8 strict client", EncryptOff, map[string]string{"encrypt": "strict"}, true},
		{"a forced-encryption server accepts encrypt=true", EncryptRequired, nil, false},
		{"a forced-encryption server upgrades encrypt=false to full TLS", EncryptRequired, map[string]string{"encrypt": "false"}, false},
		{"a forced-encryption server refuses encrypt=disable", EncryptRequired, map[string]string{"encrypt": "disable"}, true},
		{"a strict server accepts a TDS 8 client that verifies its certificate", EncryptStrict, nil, false},
		{"a strict server refuses a plain PRELOGIN", EncryptStrict, map[string]string{"encrypt": "false"}, true},
		{"a strict server refuses encrypt=disable", EncryptStrict, map[string]string{"encrypt": "disable"}, true},
		{"a strict client rejects a certificate for another host name", EncryptStrict, map[string]string{"hostnameincertificate": "sql.example.com"}, true},
		{"an encrypt=true client rejects a certificate for another host name", EncryptRequired, map[string]string{"hostnameincertificate": "sql.example.com"}, true},
		{"an OFF server reads a multi-packet LOGIN7 whose first packet alone is encrypted", EncryptOff,
			map[string]string{"packet size": "512", "app name": strings.Repeat("long app name ", 50)}, false},
		{"a forced-encryption server reads a multi-packet LOGIN7", EncryptRequired,
			map[string]string{"packet size": "512", "app name": strings.Repeat("long app name ", 50)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{Encryption: tt.mode, ServerName: "SQLHOST01"})
			params := map[string]string{"dial timeout": "5", "connection timeout": "5"}
			for k, v := range tt.params {
				params[k] = v
			}
			db, err := openDB(t, srv.DSN(adminUser, adminPass, params))
			if tt.wantErr {
				if err == nil {
					t.Fatal("connected, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			var name string
			if err := db.QueryRow("SELECT @@SERVERNAME").Scan(&name); err != nil || name != "SQLHOST01" {
				t.Fatalf("SELECT @@SERVERNAME = %q, %v", name, err)
			}
		})
	}
}

func TestDSNEscapesUserAndPassword(t *testing.T) {
	srv := startServer(t, Config{
		Encryption: EncryptOff,
		Logins:     []Login{{User: "us er@x%", Password: "p@ss:w/o?rd#&=+ ü'", ControlServer: true}},
	})
	dsn := srv.DSN("us er@x%", "p@ss:w/o?rd#&=+ ü'", map[string]string{"app name": "keyescrow test"})
	if !strings.HasPrefix(dsn, "sqlserver://") {
		t.Fatalf("DSN %q", dsn)
	}
	if _, err := openDB(t, dsn); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

func TestCloseStopsEveryGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, err := NewServer(Config{Logins: []Login{{User: adminUser, Password: adminPass}}})
	if err != nil {
		t.Fatal(err)
	}
	// Connections stuck before PRELOGIN and in the middle of it.
	for _, payload := range [][]byte{nil, {pktPrelogin, 0, 0, 100}} {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if payload != nil {
			if _, err := c.Write(payload); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.CAFile()); !os.IsNotExist(err) {
		t.Fatalf("CA file left behind: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after Close, %d before", n, before)
	}
}

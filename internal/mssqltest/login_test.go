package mssqltest

import (
	"strings"
	"testing"
)

func TestLogin(t *testing.T) {
	tests := []struct {
		name       string
		user, pass string
		wantNumber int32 // 0 = success
	}{
		{"the right password logs in", adminUser, adminPass, 0},
		{"a login without CONTROL SERVER logs in too", plainUser, plainPass, 0},
		{"a wrong password fails with 18456", adminUser, "Wrong-Pa55!", 18456},
		{"an unknown user fails with 18456", "nobody", adminPass, 18456},
		{"the password is case sensitive", adminUser, strings.ToLower(adminPass), 18456},
	}
	for _, mode := range []EncryptionMode{EncryptNotSupported, EncryptOff, EncryptRequired, EncryptStrict} {
		srv := startServer(t, Config{Encryption: mode})
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := openDB(t, srv.DSN(tt.user, tt.pass, nil))
				if tt.wantNumber == 0 {
					if err != nil {
						t.Fatalf("mode %d: %v", mode, err)
					}
					return
				}
				if got := errNumber(err); got != tt.wantNumber {
					t.Fatalf("mode %d: error %v (number %d), want %d", mode, err, got, tt.wantNumber)
				}
				if !strings.Contains(err.Error(), "Login failed for user '"+tt.user+"'.") {
					t.Fatalf("message %q", err)
				}
			})
		}
	}
}

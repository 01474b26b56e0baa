package mssqltest

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// backupOf writes a key file of srv's current key and returns its path.
func backupOf(t *testing.T, srv *Server, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := runBatch(t, mustDB(t, srv, adminUser, adminPass), backupStmt(path, keyPass)); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRestoreWithDataTheCurrentKeyCannotDecryptNeedsForce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		broken []Undecryptable
		number int32
		quote  string // the error names what does not decrypt
	}{
		{"an undecryptable credential is Msg 15320", []Undecryptable{{Kind: SecretCredential, Name: "AzureBackup"}}, 15320, "credential 'AzureBackup'"},
		{"an undecryptable linked login is Msg 15393", []Undecryptable{{Kind: SecretLinkedLogin, Name: "REPORTS"}}, 15393, "linked login 'REPORTS'"},
		{"an undecryptable current key is Msg 15329", []Undecryptable{{Kind: SecretServiceMasterKey}}, 15329, "current master key cannot be decrypted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, Config{Undecryptable: tc.broken})
			donor := startServer(t, Config{})
			file := backupOf(t, donor, t.TempDir(), "donor.key")
			before := srv.ServiceMasterKey()
			db := mustDB(t, srv, adminUser, adminPass)

			err := runBatch(t, db, restoreStmt(file, keyPass))
			if errNumber(err) != tc.number || !strings.Contains(err.Error(), tc.quote) || !strings.Contains(err.Error(), "FORCE") {
				t.Fatalf("without FORCE: %v, want Msg %d naming %q and FORCE", err, tc.number, tc.quote)
			}
			if !bytes.Equal(srv.ServiceMasterKey(), before) || !slices.Equal(srv.Undecryptable(), tc.broken) {
				t.Fatal("a refused restore changed the server")
			}

			if err := runBatch(t, db, restoreStmt(file, keyPass)+" FORCE"); err != nil {
				t.Fatalf("with FORCE: %v", err)
			}
			if !bytes.Equal(srv.ServiceMasterKey(), donor.ServiceMasterKey()) {
				t.Fatal("FORCE did not install the file's key")
			}
			if len(srv.Undecryptable()) != 0 {
				t.Fatalf("what FORCE could not decrypt is still there: %v", srv.Undecryptable())
			}
		})
	}
}

func TestRestoringTheKeyTheServerAlreadyHasSucceedsWithoutForce(t *testing.T) {
	srv := startServer(t, Config{Undecryptable: []Undecryptable{{Kind: SecretCredential, Name: "c"}}})
	file := backupOf(t, srv, t.TempDir(), "own.key")
	before := srv.ServiceMasterKey()
	if err := runBatch(t, mustDB(t, srv, adminUser, adminPass), restoreStmt(file, keyPass)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(srv.ServiceMasterKey(), before) || len(srv.Undecryptable()) != 1 {
		t.Fatal("an identical key changed the server")
	}
}

func TestATruncatedOrExtendedKeyFileIs15317(t *testing.T) {
	srv := startServer(t, Config{})
	dir := t.TempDir()
	data, err := os.ReadFile(backupOf(t, startServer(t, Config{}), dir, "donor.key"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"truncated": data[:len(data)-1],
		"extended":  append(bytes.Clone(data), 0),
		"empty":     nil,
	} {
		path := filepath.Join(dir, name+".key")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := runBatch(t, mustDB(t, srv, adminUser, adminPass), restoreStmt(path, keyPass)); errNumber(err) != 15317 {
			t.Errorf("%s file: %v, want Msg 15317", name, err)
		}
	}
}

package sqlserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/secret"
)

// The restore tests run against the stand-in only: restoring a service
// master key changes a real server's encryption hierarchy.

// keyFileOf backs up srv's key with testBackupPW into dir (whose name has a
// quote) through the client and returns the path.
func keyFileOf(t *testing.T, srv *mssqltest.Server, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "it's the key.key")
	if err := open(t, srv.DSN(testUser, testLoginPW, nil)).BackupServiceMasterKey(context.Background(), path, secret.New(testBackupPW)); err != nil {
		t.Fatal(err)
	}
	return path
}

func quotedDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "O'Brien's keys")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRestoreInstallsTheKeyOfTheFileAndTheServerThenCarriesIt(t *testing.T) {
	ctx := context.Background()
	donor := newStandin(t, mssqltest.Config{})
	target := newStandin(t, mssqltest.Config{})
	third := newStandin(t, mssqltest.Config{})
	dir := quotedDir(t)
	file := keyFileOf(t, donor, dir)
	if bytes.Equal(target.ServiceMasterKey(), donor.ServiceMasterKey()) {
		t.Fatal("two stand-ins share a key")
	}

	if err := open(t, target.DSN(testUser, testLoginPW, nil)).RestoreServiceMasterKey(ctx, file, secret.New(testBackupPW), false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(target.ServiceMasterKey(), donor.ServiceMasterKey()) {
		t.Fatal("the target's key is not the file's after the restore")
	}

	// What the target now backs up is the donor's key: a third server
	// restoring the target's new backup ends up with the donor's key too.
	again := filepath.Join(dir, "after restore.key")
	if err := open(t, target.DSN(testUser, testLoginPW, nil)).BackupServiceMasterKey(ctx, again, secret.New(testBackupPW)); err != nil {
		t.Fatal(err)
	}
	if err := open(t, third.DSN(testUser, testLoginPW, nil)).RestoreServiceMasterKey(ctx, again, secret.New(testBackupPW), false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(third.ServiceMasterKey(), donor.ServiceMasterKey()) {
		t.Fatal("the restored key did not travel on through a new backup")
	}
}

func TestRestoreFailuresAreExit3WithCauseAndFix(t *testing.T) {
	donor := newStandin(t, mssqltest.Config{})
	dir := quotedDir(t)
	good := keyFileOf(t, donor, dir)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	flipped := filepath.Join(dir, "flipped'.key")
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0x01
	if err := os.WriteFile(flipped, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	wrongPW := "Wr0ng'Pass\"wörd"

	cases := []struct {
		name     string
		cfg      mssqltest.Config
		user     string
		file     string
		password string
		force    bool
		fault    *mssqltest.Fault
		number   int32
		want     []string
		sent     bool // the RESTORE statement reached the server
	}{
		{name: "a wrong password is Msg 15466", file: good, password: wrongPW, number: ErrNumDecryption, sent: true,
			want: []string{"An error occurred during decryption", "password does not decrypt the key file", "FORCE does not help"}},
		{name: "a file with one byte flipped is Msg 15317", file: flipped, number: ErrNumKeyFileInvalid, sent: true,
			want: []string{"does not exist or has invalid format", "corrupted", "another archived copy"}},
		{name: "a missing file is Msg 15317", file: filepath.Join(dir, "missing'.key"), number: ErrNumKeyFileInvalid, sent: true,
			want: []string{"does not exist or has invalid format", "missing or unreadable", "service account"}},
		{name: "a login without CONTROL SERVER is refused before the statement", user: "reader", file: good,
			want: []string{"does not hold CONTROL SERVER", "GRANT CONTROL SERVER"}},
		{name: "a permission error from the server is Msg 15247", file: good, number: ErrNumPermission, sent: true,
			fault: &mssqltest.Fault{Kind: mssqltest.KindRestoreSMK, Error: &mssqltest.Error{Number: 15247, Class: 16, State: 1, Message: "User does not have permission to perform this action."}},
			want:  []string{"GRANT CONTROL SERVER"}},
		{name: "an undecryptable credential is Msg 15320 and names FORCE with its loss", file: good, number: ErrNumSecretUndecryptable, sent: true,
			cfg:  mssqltest.Config{Undecryptable: []mssqltest.Undecryptable{{Kind: mssqltest.SecretCredential, Name: "AzureBlob"}}},
			want: []string{"credential 'AzureBlob'", "FORCE replaces the key anyway", "lost for good"}},
		{name: "an undecryptable linked login is Msg 15393", file: good, number: ErrNumLinkedLoginUndecryptable, sent: true,
			cfg:  mssqltest.Config{Undecryptable: []mssqltest.Undecryptable{{Kind: mssqltest.SecretLinkedLogin, Name: "REPORTS"}}},
			want: []string{"linked login 'REPORTS'", "sp_addlinkedsrvlogin", "lost for good"}},
		{name: "an undecryptable current key is Msg 15329", file: good, number: ErrNumCurrentKeyUndecryptable, sent: true,
			cfg:  mssqltest.Config{Undecryptable: []mssqltest.Undecryptable{{Kind: mssqltest.SecretServiceMasterKey}}},
			want: []string{"current master key cannot be decrypted", "lost for good"}},
		{name: "a server message quoting the password is scrubbed", file: good, number: 50000, sent: true,
			fault: &mssqltest.Fault{Kind: mssqltest.KindRestoreSMK, Error: &mssqltest.Error{Number: 50000, Class: 16, State: 1,
				Message: "echo " + testBackupPW + " and " + strings.ReplaceAll(testBackupPW, "'", "''")}},
			want: []string{"echo " + secret.Redacted + " and " + secret.Redacted}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			srv := newStandin(t, cfg)
			if tc.fault != nil {
				srv.Inject(*tc.fault)
			}
			before := srv.ServiceMasterKey()
			pw := orStr(tc.password, testBackupPW)
			err := open(t, srv.DSN(orStr(tc.user, testUser), testLoginPW, nil)).RestoreServiceMasterKey(context.Background(), tc.file, secret.New(pw), tc.force)
			if exitcode.Code(err) != exitcode.SQLServer {
				t.Fatalf("exit code %d for %v, want 3", exitcode.Code(err), err)
			}
			var se *Error
			if !errors.As(err, &se) || se.Number != tc.number || se.Step != "restore" {
				t.Fatalf("got %#v, want Msg %d in step restore", err, tc.number)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not say %q", err, w)
				}
			}
			for _, s := range []string{pw, strings.ReplaceAll(pw, "'", "''"), testLoginPW} {
				if strings.Contains(err.Error(), s) || strings.Contains(fmt.Sprintf("%+v", se), s) {
					t.Fatalf("the error contains a password: %v", err)
				}
			}
			if got := slices.Contains(srv.Statements(), mssqltest.KindRestoreSMK); got != tc.sent {
				t.Fatalf("RESTORE sent: %v, want %v", got, tc.sent)
			}
			if !bytes.Equal(srv.ServiceMasterKey(), before) {
				t.Fatal("a failed restore changed the key")
			}
		})
	}
}

func TestForceRestoresOverWhatTheCurrentKeyCannotDecrypt(t *testing.T) {
	ctx := context.Background()
	donor := newStandin(t, mssqltest.Config{})
	srv := newStandin(t, mssqltest.Config{Undecryptable: []mssqltest.Undecryptable{
		{Kind: mssqltest.SecretCredential, Name: "AzureBlob"}, {Kind: mssqltest.SecretLinkedLogin, Name: "REPORTS"},
	}})
	file := keyFileOf(t, donor, quotedDir(t))
	c := open(t, srv.DSN(testUser, testLoginPW, nil))
	if err := c.RestoreServiceMasterKey(ctx, file, secret.New(testBackupPW), false); err == nil {
		t.Fatal("a restore without FORCE succeeded over undecryptable data")
	}
	if err := c.RestoreServiceMasterKey(ctx, file, secret.New(testBackupPW), true); err != nil {
		t.Fatalf("FORCE: %v", err)
	}
	if !bytes.Equal(srv.ServiceMasterKey(), donor.ServiceMasterKey()) {
		t.Fatal("FORCE did not install the file's key")
	}
	if lost := srv.Undecryptable(); len(lost) != 0 {
		t.Fatalf("still undecryptable after FORCE: %v", lost)
	}
}

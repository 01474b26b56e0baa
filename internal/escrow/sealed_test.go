package escrow

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/sealed"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// sealedEnv is an environment whose backups seal a fresh password to one
// age recipient, with no static password at all.
func sealedEnv(t *testing.T, mods ...func(*setup)) (*env, *age.X25519Identity) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, mods...)
	e.runner.Config.Backup.SealTo = []string{id.Recipient().String()}
	e.runner.Password = secret.Value{}
	e.runner.ConnectRestore = func(ctx context.Context) (RestoreSQL, error) {
		return sqlserver.Open(ctx, secret.New(e.dsn), e.runner.Log)
	}
	return e, id
}

func (e *env) restoreOpts() RestoreOptions {
	return RestoreOptions{Filter: Filter{Host: serverName}, Apply: true, ServerDirectory: e.serverDir, LocalDirectory: e.keyDir}
}

func TestASealedBackupStoresAProvenPasswordBesideEveryCopy(t *testing.T) {
	e, id := sealedEnv(t)
	rec, err := e.backup()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, e.logs)
	}
	if rec.Password == nil || rec.Password.Mode != receipt.PasswordSealed || !slices.Equal(rec.Password.Recipients, []string{id.Recipient().String()}) {
		t.Fatalf("receipt password = %+v, want sealed to the recipient", rec.Password)
	}
	for _, d := range rec.Destinations {
		sp := d.SealedPassword
		if d.Status != receipt.DestVerified || sp == nil || !sp.ReadBack || sp.SHA256 == "" || sp.Bytes == 0 {
			t.Fatalf("%s: status %s, sealed password %+v: want verified and read back", d.Name, d.Status, sp)
		}
	}
	mem := dest(t, rec, memName).SealedPassword
	if mem.VersionID == "" || mem.Retention == nil || mem.Retention.Mode != "COMPLIANCE" {
		t.Errorf("the S3 sealed password: %+v, want a version locked like the copy", mem)
	}
	st, err := e.mem.Stat(context.Background(), sealedKey(e.memKey()), mem.VersionID)
	if err != nil || st.Retention == nil {
		t.Fatalf("the sealed password is not stored locked: %v %+v", err, st)
	}

	// The identity opens it; the password it holds is nowhere in clear.
	blob := readAll(t, must(e.mem.Open(context.Background(), sealedKey(e.memKey()), mem.VersionID)))
	pw, c, err := sealed.Open(blob, sealed.Copy{Name: e.keyFileName(), SHA256: rec.File.SHA256, Bytes: rec.File.Bytes}, []age.Identity{id})
	if err != nil || c.Name != e.keyFileName() {
		t.Fatalf("opening the sealed password: %v", err)
	}
	if err := sqlserver.CheckPassword(pw); err != nil {
		t.Errorf("the generated password breaks SQL Server's policy: %v", err)
	}
	for what, text := range map[string]string{"logs": e.logs.String(), "receipt": string(receiptJSON(t, rec)), "stored receipt": string(e.memRead(receiptKey(e.memKey())))} {
		if strings.Contains(text, pw.Reveal()) {
			t.Errorf("the generated password appears in the %s", what)
		}
	}
	if _, err := os.Lstat(e.localKeyPath()); !os.IsNotExist(err) {
		t.Errorf("the local key file is still there: %v", err)
	}

	// list shows one copy, not the sealed password as a second.
	copies := listCopies(t, e.runner, ListOptions{Destination: memName})
	if len(copies) != 1 || copies[0].Key != e.memKey() {
		t.Errorf("list shows %d copies (%+v), want the key only", len(copies), copies)
	}
}

func TestASealedCopyIsRestoredWithTheIdentityAndOnlyWithIt(t *testing.T) {
	e, id := sealedEnv(t)
	if _, err := e.backup(); err != nil {
		t.Fatalf("backup: %v\n%s", err, e.logs)
	}
	other, _ := age.GenerateX25519Identity()

	e.runner.Identities = nil
	_, err := e.runner.Restore(testContext(t), e.restoreOpts())
	if exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), "--identity") || !strings.Contains(err.Error(), id.Recipient().String()) {
		t.Errorf("without an identity: %v, want exit 2 naming --identity and the recipient", err)
	}
	e.runner.Identities = []age.Identity{other}
	_, err = e.runner.Restore(testContext(t), e.restoreOpts())
	if exitcode.Code(err) != exitcode.Usage || !errors.Is(err, sealed.ErrNoIdentity) {
		t.Errorf("with another identity: %v, want exit 2 (ErrNoIdentity)", err)
	}
	if slices.Contains(e.srv.Statements(), mssqltest.KindRestoreSMK) {
		t.Errorf("RESTORE was sent without the password opened")
	}

	e.runner.Identities = []age.Identity{other, id}
	rec, err := e.runner.Restore(testContext(t), e.restoreOpts())
	if err != nil || !rec.Restore.Applied {
		t.Fatalf("with the identity: %v, applied %v\n%s", err, rec.Restore, e.logs)
	}

	// --password-out writes the opened password owner-only, once.
	out := filepath.Join(t.TempDir(), "smk.key")
	pwOut := filepath.Join(t.TempDir(), "smk.password")
	if _, err := e.runner.Restore(testContext(t), RestoreOptions{Filter: Filter{Host: serverName}, Out: out, PasswordOut: pwOut}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(pwOut)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != sealed.PasswordLength {
		t.Errorf("--password-out: %v %v", err, fi)
	}
	if _, err := e.runner.Restore(testContext(t), RestoreOptions{Filter: Filter{Host: serverName}, Out: out + "2", PasswordOut: pwOut}); exitcode.Code(err) != exitcode.Usage {
		t.Errorf("an existing --password-out: %v, want exit 2", err)
	}
}

func TestADamagedSealedPasswordIsRefused(t *testing.T) {
	e, id := sealedEnv(t)
	rec, err := e.backup()
	if err != nil {
		t.Fatal(err)
	}
	e.runner.Identities = []age.Identity{id}
	// Behind the agent's back, a byte of the folder's sealed password
	// changes: its receipt's SHA-256 no longer holds.
	path := filepath.Join(e.fileDir, filepath.FromSlash(sealedKey(e.fileKey())))
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 1
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// verify finds it: the copy cannot be opened, so it is not good.
	e.runner.Config.MaxAge = config.Duration(24 * time.Hour)
	aud, err := e.runner.Verify(testContext(t), VerifyOptions{Filter: Filter{Host: serverName}, Copies: 1, Destination: fileName})
	// Its only copy is not good, so the host is also stale: the largest
	// code (8) wins, and the damage is named.
	if exitcode.Code(err) != exitcode.Stale || aud == nil || !strings.Contains(err.Error(), "sealed password") || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("verify of a damaged sealed password: %v, want exit 8 naming the damaged sealed password", err)
	}
	if _, err := e.runner.Verify(testContext(t), VerifyOptions{Filter: Filter{Host: serverName}, Copies: 1, Destination: memName}); err != nil {
		t.Errorf("verify of the intact destination: %v", err)
	}
	opts := e.restoreOpts()
	opts.Destination = fileName
	_, err = e.runner.Restore(testContext(t), opts)
	if exitcode.Code(err) != exitcode.Verify || !strings.Contains(err.Error(), dest(t, rec, fileName).SealedPassword.SHA256) {
		t.Errorf("a damaged sealed password: %v, want exit 6 naming the recorded SHA-256", err)
	}
}

func TestASealedPasswordThatCannotBeStoredFailsTheDestination(t *testing.T) {
	e, _ := sealedEnv(t, func(s *setup) {
		s.wrap = func(b storage.Backend) storage.Backend { return &failSidecar{Backend: b} }
	})
	rec, err := e.backup()
	if exitcode.Code(err) != exitcode.Transfer {
		t.Fatalf("err = %v, want exit 5", err)
	}
	d := dest(t, rec, memName)
	if d.Status != receipt.DestFailed || !strings.Contains(d.Error.Message, "sealed password") {
		t.Errorf("the destination: %s %+v, want failed naming the sealed password", d.Status, d.Error)
	}
	if _, err := os.Lstat(e.localKeyPath()); err != nil {
		t.Errorf("the local key file must be kept when a destination failed: %v", err)
	}
}

// failSidecar refuses to store sealed passwords.
type failSidecar struct{ storage.Backend }

func (f *failSidecar) Put(ctx context.Context, key string, data []byte, opts storage.PutOptions) (storage.Object, error) {
	if strings.HasSuffix(key, sealedSuffix) {
		return storage.Object{}, storage.ErrUnavailable
	}
	return f.Backend.Put(ctx, key, data, opts)
}

func TestQuorumDecidesARunWithAFailedDestination(t *testing.T) {
	broken := newMem(t, "third", nil)
	cases := []struct {
		name     string
		require  int
		required bool
		want     int
		met      bool
	}{
		{name: "two of three verified meets require 2", require: 2, want: exitcode.OK, met: true},
		{name: "two of three verified misses require 3", require: 3, want: exitcode.Transfer},
		{name: "a required destination that failed fails the run", require: 2, required: true, want: exitcode.Transfer},
		{name: "without require every destination counts", require: 0, want: exitcode.Transfer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			third := memDestConfig("third")
			third.Required = tc.required
			e := newEnv(t, func(s *setup) { s.extra = []Destination{{Config: third, Backend: broken}} })
			e.runner.Config.Require = tc.require
			broken.Inject("put", storage.ErrUnavailable, 1)
			rec, err := e.backup()
			if exitcode.Code(err) != tc.want {
				t.Fatalf("exit %d (%v), want %d", exitcode.Code(err), err, tc.want)
			}
			if d := dest(t, rec, "third"); d.Status != receipt.DestFailed {
				t.Errorf("the failed destination is %s in the receipt, want failed", d.Status)
			}
			if tc.require > 0 && (rec.Quorum == nil || rec.Quorum.Met != tc.met || rec.Quorum.Verified != 2 || rec.Quorum.Destinations != 3) {
				t.Errorf("quorum = %+v, want met %v with 2 of 3", rec.Quorum, tc.met)
			}
			if wantOK := tc.want == exitcode.OK; (rec.Status == receipt.StatusOK) != wantOK {
				t.Errorf("status %s with exit %d", rec.Status, tc.want)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// listCopies runs List and collects the copies.
func listCopies(t *testing.T, r *Runner, opts ListOptions) []Copy {
	t.Helper()
	var out []Copy
	_, err := r.List(testContext(t), opts, func(c Copy) error { out = append(out, c); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

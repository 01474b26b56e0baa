package main_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// newIdentity writes a fresh age identity file (owner-only) under dir and
// returns its path and public recipient.
func newIdentity(t *testing.T, dir, name string) (path, recipient string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("# "+name+"\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, id.Recipient().String()
}

// sealTo rewrites the environment's config so that backups seal a fresh
// password to recipients, and removes the static password altogether.
func (e *env) sealTo(recipients ...string) {
	e.t.Helper()
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	const static = "  password_env: KEYESCROW_BACKUP_PASSWORD\n"
	if !bytes.Contains(cfg, []byte(static)) {
		e.t.Fatalf("the config has no static password line:\n%s", cfg)
	}
	cfg = bytes.Replace(cfg, []byte(static), []byte("  seal_to: ["+strings.Join(recipients, ", ")+"]\n"), 1)
	if err := os.WriteFile(e.cfgPath, cfg, 0o600); err != nil {
		e.t.Fatal(err)
	}
	delete(e.vars, "KEYESCROW_BACKUP_PASSWORD")
}

// sealedScenario runs on a world whose config has one destination named
// dest: a sealed backup, the way back with the identity only, and every way
// it must fail; the generated password never shows in any output.
func sealedScenario(t *testing.T, e *env, dest string, corrupt func(t *testing.T, sealedLocation, versionID string)) {
	idDir := t.TempDir()
	idA, rcptA := newIdentity(t, idDir, "security-team-a.txt")
	_, rcptB := newIdentity(t, idDir, "security-team-b.txt")
	wrong, _ := newIdentity(t, idDir, "someone-else.txt")
	e.sealTo(rcptA, rcptB)

	backup := e.run("backup", "--config", e.cfgPath, "--json")
	if backup.code != 0 {
		t.Fatalf("sealed backup: exit %d\n%s", backup.code, backup.stderr)
	}
	rec := parseReceipt(t, backup.stdout)
	if rec.Password == nil || rec.Password.Mode != "sealed" || strings.Join(rec.Password.Recipients, ",") != rcptA+","+rcptB {
		t.Fatalf("receipt password: %+v", rec.Password)
	}
	d := rec.Destinations[0]
	if d.Name != dest || d.Status != "verified" || d.SealedPassword == nil || !d.SealedPassword.ReadBack || !strings.HasSuffix(d.SealedPassword.Location, ".password.age") {
		t.Fatalf("destination: %+v", d)
	}

	// The way back: the copy and its password, with the identity only.
	out := filepath.Join(t.TempDir(), "smk.key")
	pwOut := filepath.Join(t.TempDir(), "smk.password")
	r := e.run("restore", "--config", e.cfgPath, "--host", "SQLHOST01", "--out", out, "--password-out", pwOut, "--identity", idA)
	if r.code != 0 {
		t.Fatalf("restore --password-out: exit %d\n%s", r.code, r.stderr)
	}
	pw, err := os.ReadFile(pwOut)
	if err != nil || len(pw) != 40 {
		t.Fatalf("--password-out: %v, %d bytes", err, len(pw))
	}
	e.secrets = append(e.secrets, string(pw))
	e.assertNoSecrets(backup) // now that the generated password is known

	oldKey := e.srv.ServiceMasterKey()
	rebuilt := newStandin(t, mssqltest.Config{ServerName: "SQLNEW"})
	e.vars["KEYESCROW_SQLSERVER_DSN"] = rebuilt.DSN(loginUser, loginPW, nil)
	apply := func(extra ...string) result {
		t.Helper()
		return e.run(append([]string{"restore", "--config", e.cfgPath, "--json", "--host", "SQLHOST01", "--apply"}, extra...)...)
	}
	if r := apply(); r.code != 2 || !strings.Contains(r.stderr, "--identity") || !strings.Contains(r.stderr, rcptA) {
		t.Errorf("--apply without an identity: exit %d, want 2 naming --identity and the recipients\n%s", r.code, r.stderr)
	}
	if r := apply("--identity", wrong); r.code != 2 || !strings.Contains(r.stderr, "none of the given identities") {
		t.Errorf("--apply with another identity: exit %d, want 2\n%s", r.code, r.stderr)
	}
	if r := apply("--identity", filepath.Join(idDir, "missing.txt")); r.code != 2 {
		t.Errorf("--apply with a missing identity file: exit %d, want 2\n%s", r.code, r.stderr)
	}
	if bytes.Equal(rebuilt.ServiceMasterKey(), oldKey) {
		t.Fatal("a refused restore changed the server's key")
	}
	e.vars["KEYESCROW_IDENTITY_FILE"] = idA
	if r := apply(); r.code != 0 {
		t.Fatalf("--apply with KEYESCROW_IDENTITY_FILE: exit %d\n%s", r.code, r.stderr)
	}
	if !bytes.Equal(rebuilt.ServiceMasterKey(), oldKey) {
		t.Fatal("the rebuilt server does not hold the old key")
	}

	// The drill opens it the same way, into a scratch server.
	scratch := newStandin(t, mssqltest.Config{ServerName: "SCRATCH01"})
	e.vars["KEYESCROW_DRILL_DSN"] = scratch.DSN(loginUser, loginPW, nil)
	if r := e.run("drill", "--config", e.cfgPath, "--host", "SQLHOST01"); r.code != 0 || !bytes.Equal(scratch.ServiceMasterKey(), oldKey) {
		t.Fatalf("drill with the identity: exit %d\n%s", r.code, r.stderr)
	}

	// The sealed password altered where it is stored: refused, exit 6.
	corrupt(t, d.SealedPassword.Location, d.SealedPassword.VersionID)
	if r := apply(); r.code != 6 || !strings.Contains(r.stderr, "sealed password") {
		t.Errorf("a damaged sealed password: exit %d, want 6\n%s", r.code, r.stderr)
	}
}

func TestSealedPasswordOnAFolder(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	sealedScenario(t, e, "usb", func(t *testing.T, location, _ string) {
		_ = os.Chmod(location, 0o600)
		b, err := os.ReadFile(location)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-2] ^= 1
		if err := os.WriteFile(location, b, 0o400); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSealedPasswordOnVersitygw(t *testing.T) {
	srv := s3srv.Start(t, s3srv.VersityGW, s3Region)
	e := newS3Env(t, srv, lockBucket())
	sealedScenario(t, e.env, "offsite-s3", func(t *testing.T, location, _ string) {
		// A byte changed on the server's own disk, behind its back.
		content := mustDownloadS3(t, e, location)
		corruptInDataDir(srv.DataDir)(t, content, location, "")
	})
}

func TestSealedPasswordOnAzurite(t *testing.T) {
	a := newAzEnv(t, false)
	name, c := a.container()
	a.writeAzConfig(map[string]string{"account_url": a.srv.AccountURL, "container": name, "auth": "shared-key",
		"account_key_env": "KEYESCROW_TEST_AZ_ACCOUNT_KEY"}, "region", "versioning", "immutability")
	sealedScenario(t, a.env, "offsite-azure", func(t *testing.T, location, _ string) {
		content := download(t, c, blobName(t, location, name))
		corruptInDataDir(a.srv.DataDir)(t, content, location, "")
	})
}

// mustDownloadS3 reads the current bytes of an s3:// location.
func mustDownloadS3(t *testing.T, e *s3Env, location string) []byte {
	t.Helper()
	key := strings.TrimPrefix(location, "s3://"+e.bucket+"/")
	out, err := e.srv.Admin("").GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// closedPort is a 127.0.0.1 address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestQuorumOfDestinations: with require 2 of 3, one destination down is
// reported and the run succeeds; two down fail it with their code; a
// destination marked required fails the run alone.
func TestQuorumOfDestinations(t *testing.T) {
	srv := s3srv.Start(t, s3srv.VersityGW, s3Region)
	e := newS3Env(t, srv, lockBucket())
	down := func(name string) string {
		return fmt.Sprintf(`  - name: %s
    type: s3
    bucket: gone
    region: us-east-2
    prefix: sqlkeys/
    endpoint: https://%s
    path_style: true
    ca_file: %q
    retention: {mode: COMPLIANCE, days: 1}
`, name, closedPort(t), srv.TLS.CA)
	}
	usb := fmt.Sprintf("  - name: usb\n    type: file\n    path: %q\n", e.usbDir)
	write := func(extraDests, top string) {
		t.Helper()
		e.writeS3(s3Dest{extra: extraDests})
		cfg, _ := os.ReadFile(e.cfgPath)
		if err := os.WriteFile(e.cfgPath, append(cfg, []byte(top)...), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	write(usb+down("dr-site"), "require: 2\n")
	r := e.run("backup", "--config", e.cfgPath, "--json")
	rec := parseReceipt(t, r.stdout)
	if r.code != 0 || rec.Status != "ok" || rec.Quorum == nil || !rec.Quorum.Met || rec.Quorum.Verified != 2 || rec.Quorum.Destinations != 3 {
		t.Fatalf("2 of 3 with require 2: exit %d, quorum %+v\n%s", r.code, rec.Quorum, r.stderr)
	}
	if d := rec.Destinations[2]; d.Name != "dr-site" || d.Status == "verified" || d.Error == nil || d.Error.Code != 5 {
		t.Errorf("the destination that is down: %+v", d)
	}
	if !strings.Contains(r.stderr, "quorum met") {
		t.Errorf("the log does not say the quorum carried the run:\n%s", r.stderr)
	}

	write(down("dr-site")+down("dr-site-2"), "require: 2\n")
	r = e.run("backup", "--config", e.cfgPath, "--json")
	rec = parseReceipt(t, r.stdout)
	if r.code != 5 || rec.Status != "failed" || rec.Quorum == nil || rec.Quorum.Met || rec.Quorum.Verified != 1 {
		t.Errorf("1 of 3 with require 2: exit %d, want 5; quorum %+v\n%s", r.code, rec.Quorum, r.stderr)
	}

	write(usb+strings.Replace(down("dr-site"), "    retention:", "    required: true\n    retention:", 1), "require: 2\n")
	r = e.run("backup", "--config", e.cfgPath, "--json")
	if rec := parseReceipt(t, r.stdout); r.code != 5 || rec.Quorum == nil || rec.Quorum.Met {
		t.Errorf("a required destination down: exit %d, want 5; quorum %+v\n%s", r.code, rec.Quorum, r.stderr)
	}

	write(usb, "require: 3\n")
	if r := e.run("check", "--config", e.cfgPath); r.code != 2 || !strings.Contains(r.stderr, "require") {
		t.Errorf("require above the number of destinations: exit %d, want 2\n%s", r.code, r.stderr)
	}
}

// TestNewIdentityOpensWhatIsSealedToIt: keyescrow new-identity writes the
// secret to a new owner-only file only, prints the public key, never
// overwrites, and the pair seals and opens a backup.
func TestNewIdentityOpensWhatIsSealedToIt(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	idFile := filepath.Join(t.TempDir(), "team.age")
	r := e.run("new-identity", "--out", idFile)
	rcpt := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(rcpt, "age1") || strings.Contains(r.stdout+r.stderr, "AGE-SECRET-KEY") {
		t.Fatalf("new-identity: exit %d\nstdout %q\nstderr %s", r.code, r.stdout, r.stderr)
	}
	fi, err := os.Stat(idFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v %v", err, fi)
	}
	before, _ := os.ReadFile(idFile)
	if r := e.run("new-identity", "--out", idFile); r.code != 2 || !strings.Contains(r.stderr, "exists already") {
		t.Errorf("a second new-identity over the file: exit %d\n%s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(idFile); !bytes.Equal(before, after) {
		t.Fatal("the identity file was changed")
	}
	e.sealTo(rcpt)
	if r := e.run("backup", "--config", e.cfgPath); r.code != 0 {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	pwOut := filepath.Join(t.TempDir(), "pw")
	r = e.run("restore", "--config", e.cfgPath, "--host", "SQLHOST01", "--out", filepath.Join(t.TempDir(), "k"), "--password-out", pwOut, "--identity", idFile)
	if r.code != 0 {
		t.Fatalf("restore with the new identity: exit %d\n%s", r.code, r.stderr)
	}
	for _, line := range strings.Split(string(before), "\n") {
		if strings.HasPrefix(line, "AGE-SECRET-KEY-") {
			e.secrets = append(e.secrets, line)
		}
	}
	e.assertNoSecrets(r)
}

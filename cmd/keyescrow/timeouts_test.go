package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/testsrv/faultproxy"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

// smallTimeouts sets the timeouts through their environment variables.
func smallTimeouts(e *env, connect, request, idle, run string) {
	e.vars["KEYESCROW_TIMEOUTS_CONNECT"] = connect
	e.vars["KEYESCROW_TIMEOUTS_REQUEST"] = request
	e.vars["KEYESCROW_TIMEOUTS_IDLE"] = idle
	e.vars["KEYESCROW_TIMEOUTS_RUN"] = run
}

// timed runs the binary and fails when it has not ended within limit.
func (e *env) timed(limit time.Duration, args ...string) result {
	e.t.Helper()
	start := time.Now()
	r := e.run(args...)
	if d := time.Since(start); d > limit {
		e.t.Fatalf("keyescrow %s took %v, more than the %v its timeouts allow\n%s", args[0], d.Round(time.Millisecond), limit, r.stderr)
	}
	return r
}

// wantTimeout checks a run a limit ended: the exit code, the key named on
// stderr, and for a command with a receipt, one that claims no success.
func wantTimeout(t *testing.T, r result, code int, key string, receiptOut bool) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, key) {
		t.Fatalf("exit %d, want %d naming %s\nstdout: %s\nstderr: %s", r.code, code, key, r.stdout, r.stderr)
	}
	if !receiptOut {
		return
	}
	rec := parseReceipt(t, r.stdout)
	if rec.Status != "failed" || rec.ExitCode != code {
		t.Fatalf("receipt status %q exit %d, want failed %d\n%s", rec.Status, rec.ExitCode, code, r.stdout)
	}
	for _, d := range rec.Destinations {
		if d.Status == "verified" {
			t.Fatalf("a timed-out run reports %s verified\n%s", d.Name, r.stdout)
		}
	}
}

// wantUnreadCopy checks a verify whose only copy could not be read within
// the limits: the copy fails with exit 5 naming the key, and with no other
// proven copy the host is stale, so verify exits 8 (the larger code).
func wantUnreadCopy(t *testing.T, r result, key string) {
	t.Helper()
	if r.code != 8 || !strings.Contains(r.stdout, "error(5)") || !strings.Contains(r.stderr, key) {
		t.Fatalf("exit %d, want 8 with the copy failed as 5 naming %s\nstdout: %s\nstderr: %s", r.code, key, r.stdout, r.stderr)
	}
}

func keyFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "hand-made.key")
	if err := os.WriteFile(p, []byte("key bytes "+testutil.RandHex(32)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestS3RunsThatStallEndWithinTheirTimeouts: a GetObject body that stalls
// after its headers (the hang the issue measured at 392 s), answers that
// never come, a slow drip and a run slower than timeouts.run, each through
// a stalling proxy in front of versitygw: every command ends within its
// limits plus a margin, with exit 5, the key to raise on stderr, a receipt
// that claims nothing, and the lock released (the next clean run is ok).
func TestS3RunsThatStallEndWithinTheirTimeouts(t *testing.T) {
	srv := s3srv.Start(t, s3srv.VersityGW, s3Region)
	e := newS3Env(t, srv, lockBucket())
	fp := faultproxy.NewHTTP(t, srv.Endpoint, srv.TLS.CA, srv.TLS)
	e.writeS3(s3Dest{endpoint: fp.Endpoint})
	smallTimeouts(e.env, "2s", "4s", "1s", "30s")
	in := keyFile(t, e.root)
	out := filepath.Join(e.root, "restored.key")
	clean := func() {
		t.Helper()
		fp.Arm(nil)
		if r := e.timed(30*time.Second, "archive", "--config", e.cfgPath, "--json", in); r.code != 0 {
			t.Fatalf("the clean run after the fault: exit %d\n%s", r.code, r.stderr)
		}
	}
	clean()

	t.Run("archive: the read-back body stalls after its headers", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.StallBody, Op: faultproxy.OpGet, Nth: 1})
		wantTimeout(t, e.timed(20*time.Second, "archive", "--config", e.cfgPath, "--json", in), 5, "timeouts.idle", true)
		clean()
	})
	t.Run("backup: the PutObject answer never comes, on every attempt", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.Stall, Op: faultproxy.OpPut, Nth: 1, Times: 100})
		wantTimeout(t, e.timed(20*time.Second, "backup", "--config", e.cfgPath, "--json"), 5, "timeouts.", true)
		clean()
	})
	t.Run("verify: the body trickles under the idle limit", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.Trickle, Op: faultproxy.OpGet, Nth: 1, Times: 100, Every: 400 * time.Millisecond})
		wantUnreadCopy(t, e.timed(25*time.Second, "verify", "--config", e.cfgPath), "timeouts.request")
		clean()
	})
	t.Run("restore: the body stalls after its headers", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.StallBody, Op: faultproxy.OpGet, Nth: 1, Times: 100})
		// The copies are the clean runs' archives (instance "unknown"),
		// not the recorded backup identity's instance.
		r := e.timed(25*time.Second, "restore", "--config", e.cfgPath, "--instance", "unknown", "--out", out)
		if r.code == 0 {
			t.Fatalf("restore through a stalled body exited 0\n%s", r.stderr)
		}
		if !strings.Contains(r.stderr, "timeouts.idle") {
			t.Fatalf("exit %d without naming timeouts.idle\n%s", r.code, r.stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatal("restore wrote a file although no copy was read")
		}
		clean()
	})
	t.Run("archive: every request slow, the run outlives timeouts.run", func(t *testing.T) {
		smallTimeouts(e.env, "2s", "4s", "3s", "5s")
		defer smallTimeouts(e.env, "2s", "4s", "1s", "30s")
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.Delay, Op: faultproxy.OpAny, Nth: 1, Times: 1000, Every: 1500 * time.Millisecond})
		wantTimeout(t, e.timed(20*time.Second, "archive", "--config", e.cfgPath, "--json", in), 5, "timeouts.run", true)
		clean()
	})
}

// TestAzureRunsThatStallEndWithinTheirTimeouts is the same against Azurite
// behind a stalling proxy (HTTPS, shared key; versioning and immutability
// waived: Azurite has neither).
func TestAzureRunsThatStallEndWithinTheirTimeouts(t *testing.T) {
	a := newAzEnv(t, true)
	name, _ := a.container()
	fp := faultproxy.NewHTTP(t, strings.TrimSuffix(a.srv.AccountURL, "/devstoreaccount1"), a.srv.CAFile, a.srv.TLS)
	a.writeAzConfig(map[string]string{"account_url": fp.Endpoint + "/devstoreaccount1", "container": name, "auth": "shared-key",
		"account_key_env": "KEYESCROW_TEST_AZ_ACCOUNT_KEY", "ca_file": a.srv.CAFile}, "region", "versioning", "immutability")
	smallTimeouts(a.env, "2s", "4s", "1s", "30s")
	in := keyFile(t, a.root)
	clean := func() {
		t.Helper()
		fp.Arm(nil)
		if r := a.timed(30*time.Second, "archive", "--config", a.cfgPath, "--json", in); r.code != 0 {
			t.Fatalf("the clean run after the fault: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	}
	clean()
	t.Run("archive: the read-back body stalls after its headers", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.StallBody, Op: faultproxy.OpGet, Nth: 1})
		wantTimeout(t, a.timed(20*time.Second, "archive", "--config", a.cfgPath, "--json", in), 5, "timeouts.idle", true)
		clean()
	})
	t.Run("archive: the Put Blob answer never comes", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.Stall, Op: faultproxy.OpPut, Nth: 1, Times: 100})
		wantTimeout(t, a.timed(20*time.Second, "archive", "--config", a.cfgPath, "--json", in), 5, "timeouts.", true)
		clean()
	})
	t.Run("verify: the body stalls", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.StallBody, Op: faultproxy.OpGet, Nth: 1, Times: 100})
		wantUnreadCopy(t, a.timed(25*time.Second, "verify", "--config", a.cfgPath), "timeouts.idle")
		clean()
	})
}

// TestASQLStatementThatHangsEndsAtTimeoutsRequestWithExit3: the stand-in
// delays BACKUP SERVICE MASTER KEY far past timeouts.request; the run ends
// with exit 3 naming the key, and the lock is released.
func TestASQLStatementThatHangsEndsAtTimeoutsRequestWithExit3(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	smallTimeouts(e, "2s", "2s", "1s", "30s")
	e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Delay: time.Hour, Times: 1})
	wantTimeout(t, e.timed(15*time.Second, "backup", "--config", e.cfgPath, "--json"), 3, "timeouts.request", true)
	if r := e.timed(30*time.Second, "backup", "--config", e.cfgPath, "--json"); r.code != 0 {
		t.Fatalf("the next backup: exit %d\n%s", r.code, r.stderr)
	}
	// A login that never answers ends at timeouts.connect.
	e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindLogin, Delay: time.Hour, Times: 1})
	wantTimeout(t, e.timed(15*time.Second, "backup", "--config", e.cfgPath, "--json"), 3, "timeouts.connect", true)
	if r := e.timed(30*time.Second, "backup", "--config", e.cfgPath, "--json"); r.code != 0 {
		t.Fatalf("the backup after the hung login: exit %d\n%s", r.code, r.stderr)
	}
}

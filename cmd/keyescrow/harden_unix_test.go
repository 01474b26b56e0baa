//go:build unix

package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
)

// measureEnv names the file a re-executed test binary writes the peak
// memory of the command it ran to (see init).
const measureEnv = "KEYESCROW_TEST_MEASURE_RSS_FILE"

// On Linux a child started by os/exec (vfork) inherits its parent's peak
// RSS as its own starting ru_maxrss, so a child of this big test process
// reports the test's peak, not its own. runMeasured therefore re-executes
// this test binary as a small spawner that runs keyescrow and records the
// child's figure; init does that before any test or TestMain runs.
func init() {
	file := os.Getenv(measureEnv)
	if file == "" {
		return
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, measureEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "measure:", err)
		os.Exit(125)
	}
	rss := int64(0)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = int64(ru.Maxrss) * 1024 // KiB on Linux
	}
	if err := os.WriteFile(file, []byte(strconv.FormatInt(rss, 10)), 0o600); err != nil {
		os.Exit(125)
	}
	os.Exit(code)
}

// runMeasured runs the binary like e.run and also returns its peak memory
// (max RSS, bytes, at most the spawner's own small peak too) and fails the
// test when it had to be killed after 60 s.
func (e *env) runMeasured(args ...string) (result, int64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rssFile := filepath.Join(e.t.TempDir(), "rss")
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{binary}, args...)...)
	cmd.Dir = e.root
	cmd.Env = []string{measureEnv + "=" + rssFile}
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("%v: still running after 60 s (killed)\n%s", args, errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	b, rerr := os.ReadFile(rssFile)
	rss, perr := strconv.ParseInt(string(b), 10, 64)
	if rerr != nil || perr != nil {
		e.t.Fatalf("%v: the spawner recorded no peak memory (%v %v)\n%s", args, rerr, perr, errb.String())
	}
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	e.assertNoSecrets(r)
	return r, rss
}

// TestAConfigThatIsNotASmallRegularFileIsRefused: /dev/zero, a 200 MB
// file and a FIFO nobody writes to are each refused with exit 2 and a
// message, never read into memory and never waited on.
func TestAConfigThatIsNotASmallRegularFileIsRefused(t *testing.T) {
	const maxRSS = 64 << 20
	e := newEnv(t, mssqltest.Config{})
	huge := filepath.Join(e.root, "huge.yaml")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(200 << 20); err != nil { // sparse: 200 MB of zeros
		t.Fatal(err)
	}
	f.Close()
	fifo := filepath.Join(e.root, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/dev/zero", "is a character device, not a regular file"},
		{huge, "too large: 209715200 bytes, the limit is 1 MiB"},
		{fifo, "is a named pipe (FIFO), not a regular file"},
	} {
		for _, cmd := range []string{"backup", "verify"} {
			r, rss := e.runMeasured(cmd, "--config", tc.path, "--json")
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, tc.path) {
				t.Errorf("%s --config %s: exit %d, want 2 saying %q\n%s", cmd, tc.path, r.code, tc.want, r.stderr)
			}
			if rss > maxRSS {
				t.Errorf("%s --config %s: peak memory %d MiB, want under %d MiB", cmd, tc.path, rss>>20, maxRSS>>20)
			}
			var doc map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc["status"] != "failed" {
				t.Errorf("%s --config %s: stdout is not a failed result: %v %s", cmd, tc.path, err, r.stdout)
			}
		}
	}
	if len(e.srv.Statements()) != 0 {
		t.Errorf("SQL Server was asked: %v", e.srv.Statements())
	}
}

// TestBadSecretFilesAreRefusedBeforeSQLServerIsAsked: a FIFO password file
// does not block, two trailing newlines are not silently kept, and the
// secret never appears in the message.
func TestBadSecretFilesAreRefusedBeforeSQLServerIsAsked(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(p string) error
		want  []string
	}{
		{"a FIFO", func(p string) error { return syscall.Mkfifo(p, 0o600) }, []string{"backup.password", "named pipe (FIFO)", `"-"`}},
		{"two trailing newlines", func(p string) error { return os.WriteFile(p, []byte(backupPW+"\n\n"), 0o600) },
			[]string{"backup.password: file", "still holds a line break", "one line"}},
		{"two trailing CRLFs", func(p string) error { return os.WriteFile(p, []byte(backupPW+"\r\n\r\n"), 0o600) },
			[]string{"still holds a line break"}},
		{"over 64 KiB", func(p string) error { return os.WriteFile(p, bytes.Repeat([]byte("x"), 64<<10+1), 0o600) },
			[]string{"too large", "64 KiB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, mssqltest.Config{})
			pwFile := filepath.Join(e.root, "pw")
			if err := tc.write(pwFile); err != nil {
				t.Fatal(err)
			}
			delete(e.vars, "KEYESCROW_BACKUP_PASSWORD")
			r := e.run("backup", "--config", e.cfgPath, "--json", "--set", "backup.password_env=", "--set", "backup.password_file="+pwFile)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\n%s", r.code, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
				}
			}
			for _, k := range e.srv.Statements() {
				if k == mssqltest.KindBackupSMK {
					t.Errorf("SQL Server was asked to BACKUP")
				}
			}
		})
	}
}

// TestAPlantedLockIsRefusedAndItsTargetUntouched: a symbolic link where the
// lock file goes, pointing at a file another account cares about: exit 2,
// the target keeps every byte, nothing is archived.
func TestAPlantedLockIsRefusedAndItsTargetUntouched(t *testing.T) {
	const precious = "root:x:0:0:root:/root:/bin/bash\n"
	for _, where := range []string{"lock_file", "the default lock in the state folder"} {
		t.Run(where, func(t *testing.T) {
			e := newEnv(t, mssqltest.Config{})
			target := filepath.Join(e.root, "passwd")
			if err := os.WriteFile(target, []byte(precious), 0o644); err != nil {
				t.Fatal(err)
			}
			lockPath := e.lockF
			if where != "lock_file" {
				lockPath = filepath.Join(e.vars["STATE_DIRECTORY"], "keyescrow.lock")
				e.writeConfig("")
				cfg, _ := os.ReadFile(e.cfgPath)
				_ = os.WriteFile(e.cfgPath, bytes.Replace(cfg, []byte("lock_file: "+strconv.Quote(e.lockF)+"\n"), nil, 1), 0o600)
			}
			if err := os.MkdirAll(filepath.Dir(lockPath), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, lockPath); err != nil {
				t.Fatal(err)
			}
			r := e.run("backup", "--config", e.cfgPath, "--json")
			if r.code != 2 || !strings.Contains(r.stderr, lockPath+" is a symbolic link") {
				t.Fatalf("exit %d, want 2 naming the link\n%s", r.code, r.stderr)
			}
			if b, _ := os.ReadFile(target); string(b) != precious {
				t.Errorf("the link's target changed: %q", b)
			}
			if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o644 {
				t.Errorf("the link's target mode changed: %v", fi.Mode())
			}
			if got := files(t, e.usbDir); len(got) != 0 {
				t.Errorf("archived without the lock: %v", got)
			}
		})
	}
}

// TestAStateFolderOthersCanWriteIsRefused: verify, which reads the host
// identity from the state folder, refuses one that group can write.
func TestAStateFolderOthersCanWriteIsRefused(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	sd := e.vars["STATE_DIRECTORY"]
	if err := os.Mkdir(sd, 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(sd, 0o770)
	r := e.run("verify", "--config", e.cfgPath)
	if r.code != 2 || !strings.Contains(r.stderr, "can be written by group or others (mode 0770)") || !strings.Contains(r.stderr, "chmod 700 "+sd) {
		t.Fatalf("exit %d, want 2 with the fix\n%s", r.code, r.stderr)
	}
}

// TestBackupThenVerifyWithTheSameConfigFindTheSameHost: the stand-in's
// MachineName (SQLHOST01) is not this machine's name. verify, list and
// restore without --host find backup's copies through the identity backup
// recorded; a host key makes every command use that name instead.
func TestBackupThenVerifyWithTheSameConfigFindTheSameHost(t *testing.T) {
	osName, _ := os.Hostname()
	if strings.EqualFold(osName, "SQLHOST01") {
		t.Fatal("this machine is called SQLHOST01: the test needs a MachineName that differs from the OS host name")
	}
	t.Run("recorded identity", func(t *testing.T) {
		e := newEnv(t, mssqltest.Config{})
		r := e.run("backup", "--config", e.cfgPath, "--json")
		if r.code != 0 {
			t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
		}
		rec := parseReceipt(t, r.stdout)
		if rec.Host != "SQLHOST01" || rec.MachineName != "" {
			t.Fatalf("backup receipt host %q machine_name %q", rec.Host, rec.MachineName)
		}
		r = e.run("verify", "--config", e.cfgPath)
		if r.code != 0 || !strings.Contains(r.stdout, "SQLHOST01/INST1") || !strings.Contains(r.stderr, "the identity backup recorded in the state folder") {
			t.Fatalf("verify after backup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		out := filepath.Join(e.root, "restored.key")
		r = e.run("restore", "--config", e.cfgPath, "--out", out, "--json")
		if r.code != 0 {
			t.Fatalf("restore after backup: exit %d\n%s", r.code, r.stderr)
		}
		if b, _ := os.ReadFile(out); sha(b) != rec.File.SHA256 {
			t.Errorf("restore wrote another copy")
		}
		// Another configuration file on this host has no record: the OS
		// host name, said as such, and nothing of SQLHOST01 is found.
		other := filepath.Join(e.root, "other.yaml")
		b, _ := os.ReadFile(e.cfgPath)
		_ = os.WriteFile(other, b, 0o600)
		r = e.run("verify", "--config", other)
		if r.code != 8 || !strings.Contains(r.stderr, "the OS host name") {
			t.Errorf("verify with another config: exit %d, want 8 (no copy of %s)\n%s", r.code, osName, r.stderr)
		}
	})
	t.Run("host key", func(t *testing.T) {
		e := newEnv(t, mssqltest.Config{})
		e.writeConfig("host: sql-fci-01.corp.example\n")
		r := e.run("backup", "--config", e.cfgPath, "--json")
		if r.code != 0 {
			t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
		}
		rec := parseReceipt(t, r.stdout)
		if rec.Host != "sql-fci-01.corp.example" || rec.MachineName != "SQLHOST01" || !strings.Contains(rec.Destinations[0].Location, "/sql-fci-01.corp.example/INST1/") {
			t.Fatalf("backup receipt host %q machine_name %q location %s", rec.Host, rec.MachineName, rec.Destinations[0].Location)
		}
		if _, err := os.Stat(e.vars["STATE_DIRECTORY"]); err == nil {
			if recs, _ := filepath.Glob(filepath.Join(e.vars["STATE_DIRECTORY"], "identity-*")); len(recs) != 0 {
				t.Errorf("with host set, backup still recorded an identity: %v", recs)
			}
		}
		r = e.run("verify", "--config", e.cfgPath)
		if r.code != 0 || !strings.Contains(r.stdout, "sql-fci-01.corp.example/INST1") || !strings.Contains(r.stderr, "the host key of the configuration") {
			t.Fatalf("verify: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		e.vars["KEYESCROW_HOST"] = "SQL-FCI-02"
		r = e.run("verify", "--config", e.cfgPath)
		if r.code != 8 || !strings.Contains(r.stderr, "SQL-FCI-02") {
			t.Fatalf("verify with KEYESCROW_HOST overriding the file: exit %d, want 8\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestTheLockHolderIsNamedByItsPID: a run holding the lock makes another
// exit 7 naming its pid.
func TestTheLockHolderIsNamedByItsPID(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Delay: 20 * time.Second})
	var first *exec.Cmd
	done := make(chan result, 1)
	started := make(chan struct{})
	go func() {
		done <- e.runCtx(context.Background(), func(c *exec.Cmd) { first = c; close(started) }, "backup", "--config", e.cfgPath)
	}()
	<-started
	deadline := time.Now().Add(20 * time.Second)
	for !backupStarted(e) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	r := e.run("backup", "--config", e.cfgPath)
	_ = first.Process.Signal(os.Interrupt)
	<-done
	if want := "held by pid " + strconv.Itoa(first.Process.Pid); r.code != 7 || !strings.Contains(r.stderr, want) {
		t.Fatalf("exit %d, want 7 saying %q\n%s", r.code, want, r.stderr)
	}
}

func backupStarted(e *env) bool {
	for _, k := range e.srv.Statements() {
		if k == mssqltest.KindBackupSMK {
			return true
		}
	}
	return false
}

// TestAnUnprivilegedAccountGetsItsOwnStateFolder: without lock_file, an
// account other than root locks in ~/.local/state/keyescrow, made 0700.
func TestAnUnprivilegedAccountGetsItsOwnStateFolder(t *testing.T) {
	const nobody = 65534
	me := os.Geteuid()
	if me == 0 {
		me = nobody
	}
	root, err := os.MkdirTemp("", "keyescrow-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	_ = os.Chmod(root, 0o755)
	home := filepath.Join(root, "home")
	usb := filepath.Join(home, "usb")
	if err := os.MkdirAll(usb, 0o700); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(home, "k.key")
	cfg := filepath.Join(home, "keyescrow.yaml")
	_ = os.WriteFile(in, []byte("opaque key bytes"), 0o600)
	_ = os.WriteFile(cfg, []byte("home_region: eu-west-1\ndestinations:\n  - name: usb\n    type: file\n    path: "+usb+"\nwaive: [region]\n"), 0o600)
	if os.Geteuid() == 0 {
		for _, p := range []string{home, usb, in, cfg} {
			if err := os.Chown(p, me, me); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command(binary, "archive", "--config", cfg, "--host", "H", in)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("archive as uid %d: %v\n%s", me, err, out)
	}
	sd := filepath.Join(home, ".local", "state", "keyescrow")
	for p, want := range map[string]os.FileMode{sd: 0o700, filepath.Join(sd, "keyescrow.lock"): 0o600} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode().Perm() != want || fi.Sys().(*syscall.Stat_t).Uid != uint32(me) {
			t.Errorf("%s: mode %v owner %d, want mode %v owned by uid %d", p, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid, want, me)
		}
	}
}

//go:build unix

package lock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/state"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.Skip(t, "making a file another account owns needs root")
	}
}

// privateDir is a fresh owner-only folder.
func privateDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

func wantUnsafe(t *testing.T, err error, parts ...string) {
	t.Helper()
	if !errors.Is(err, state.ErrUnsafe) {
		t.Fatalf("got %v, want a refusal (state.ErrUnsafe)", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("the refusal does not say %q: %v", p, err)
		}
	}
}

func TestAcquireRefusesWhatAnotherAccountCouldHaveMade(t *testing.T) {
	const precious = "root:x:0:0:root:/root:/bin/bash\n"
	cases := []struct {
		name  string
		plant func(t *testing.T) (lockPath, target string)
		want  []string
	}{
		{"a symbolic link as the lock file is refused and its target untouched", func(t *testing.T) (string, string) {
			d := privateDir(t)
			target := filepath.Join(t.TempDir(), "passwd")
			if err := os.WriteFile(target, []byte(precious), 0o644); err != nil {
				t.Fatal(err)
			}
			l := filepath.Join(d, FileName)
			if err := os.Symlink(target, l); err != nil {
				t.Fatal(err)
			}
			return l, target
		}, []string{"is a symbolic link", "rm "}},
		{"a dangling symbolic link is refused and nothing is created at its target", func(t *testing.T) (string, string) {
			d := privateDir(t)
			target := filepath.Join(t.TempDir(), "created-by-the-attacker")
			l := filepath.Join(d, FileName)
			if err := os.Symlink(target, l); err != nil {
				t.Fatal(err)
			}
			return l, target
		}, []string{"is a symbolic link"}},
		{"a symbolic link as the folder is refused", func(t *testing.T) (string, string) {
			real := privateDir(t)
			link := filepath.Join(t.TempDir(), "state")
			if err := os.Symlink(real, link); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(link, FileName), ""
		}, []string{"is a symbolic link", "let keyescrow create the folder"}},
		{"a group-writable folder is refused", func(t *testing.T) (string, string) {
			d := privateDir(t)
			if err := os.Chmod(d, 0o770); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(d, FileName), ""
		}, []string{"can be written by group or others (mode 0770)", "chmod 700"}},
		{"a world-writable sticky folder such as /run/lock is refused", func(t *testing.T) (string, string) {
			d := privateDir(t)
			if err := os.Chmod(d, os.ModeSticky|0o777); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(d, FileName), ""
		}, []string{"mode 1777"}},
		{"a folder another account owns is refused", func(t *testing.T) (string, string) {
			needRoot(t)
			d := privateDir(t)
			if err := os.Chown(d, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(d, FileName), ""
		}, []string{"is owned by", "uid 65534", "not by the account keyescrow runs as"}},
		{"a lock file another account owns is refused", func(t *testing.T) (string, string) {
			needRoot(t)
			l := filepath.Join(privateDir(t), FileName)
			if err := os.WriteFile(l, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(l, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return l, ""
		}, []string{"uid 65534"}},
		{"a FIFO as the lock file is refused without blocking", func(t *testing.T) (string, string) {
			l := filepath.Join(privateDir(t), FileName)
			if err := syscall.Mkfifo(l, 0o600); err != nil {
				t.Fatal(err)
			}
			return l, ""
		}, []string{"not a regular file"}},
		{"a hard link to another file is refused", func(t *testing.T) (string, string) {
			d := privateDir(t)
			target := filepath.Join(d, "other")
			if err := os.WriteFile(target, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			l := filepath.Join(d, FileName)
			if err := os.Link(target, l); err != nil {
				t.Fatal(err)
			}
			return l, ""
		}, []string{"2 hard links"}},
		{"a configured lock_file that holds something else is never written", func(t *testing.T) (string, string) {
			l := filepath.Join(privateDir(t), "passwd")
			if err := os.WriteFile(l, []byte(precious), 0o644); err != nil {
				t.Fatal(err)
			}
			return l, l
		}, []string{"is not a keyescrow lock file", "never writes into a file it did not make"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, target := tc.plant(t)
			var before []byte
			if target != "" {
				before, _ = os.ReadFile(target)
			}
			done := make(chan error, 1)
			go func() {
				l, err := Acquire(path)
				if err == nil {
					_ = l.Release()
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Acquire blocked for 20 s")
			}
			wantUnsafe(t, err, tc.want...)
			if target != "" {
				after, rerr := os.ReadFile(target)
				if string(after) != string(before) || (before == nil) != os.IsNotExist(rerr) {
					t.Errorf("the target changed: before %q, after %q (%v)", before, after, rerr)
				}
			}
		})
	}
}

func TestAcquireMakesAnOwnerOnlyFolderAndFile(t *testing.T) {
	d := filepath.Join(t.TempDir(), "a", "b")
	l, err := Acquire(filepath.Join(d, FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	for p, want := range map[string]os.FileMode{d: 0o700, filepath.Dir(d): 0o700, filepath.Join(d, FileName): 0o600} {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode().Perm(), err, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(d, FileName)); string(b) != "pid "+strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("lock record %q", b)
	}
}

func TestAnExistingOpenLockFileOfAnEarlierVersionIsMadeOwnerOnly(t *testing.T) {
	p := filepath.Join(privateDir(t), FileName)
	if err := os.WriteFile(p, []byte("pid 12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(p, 0o644)
	l, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Release()
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestAForeignFlockIsNamedByItsPID: a process that is not keyescrow (it
// writes no record) holds the lock; the refusal names its pid where the
// kernel lists lock holders.
func TestAForeignFlockIsNamedByItsPID(t *testing.T) {
	if p := os.Getenv("KEYESCROW_RAW_FLOCK"); p != "" {
		f, err := os.Open(p)
		if err != nil {
			os.Exit(3)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			os.Exit(4)
		}
		os.Stdout.WriteString("locked\n")
		buf := make([]byte, 1)
		_, _ = os.Stdin.Read(buf)
		os.Exit(0)
	}
	path := filepath.Join(privateDir(t), FileName)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAForeignFlockIsNamedByItsPID$")
	cmd.Env = append(os.Environ(), "KEYESCROW_RAW_FLOCK="+path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	buf := make([]byte, 7)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("helper did not lock: %q %v", buf, err)
	}
	_, err := Acquire(path)
	if !errors.Is(err, ErrHeld) {
		t.Fatalf("got %v, want ErrHeld", err)
	}
	if _, perr := os.Stat("/proc/locks"); perr == nil {
		if want := "held by pid " + strconv.Itoa(cmd.Process.Pid); !strings.Contains(err.Error(), want) {
			t.Errorf("the message does not say %q: %v", want, err)
		}
	}
}

package lock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecondAcquireFailsWithErrHeldAndNamesTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.lock")
	l, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(path)
	if !errors.Is(err, ErrHeld) {
		t.Fatalf("second Acquire: got %v, want ErrHeld", err)
	}
	if !strings.Contains(err.Error(), "pid ") {
		t.Errorf("message does not name the holder: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(path)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	_ = l2.Release()
}

func TestLockHeldByAnotherProcessIsSeen(t *testing.T) {
	if os.Getenv("KEYESCROW_LOCK_HELPER") != "" {
		l, err := Acquire(os.Getenv("KEYESCROW_LOCK_HELPER"))
		if err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		buf := make([]byte, 1)
		_, _ = os.Stdin.Read(buf) // hold until the parent closes stdin
		_ = l.Release()
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "k.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHeldByAnotherProcessIsSeen$")
	cmd.Env = append(os.Environ(), "KEYESCROW_LOCK_HELPER="+path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("helper did not lock: %q %v", buf, err)
	}
	if _, err := Acquire(path); !errors.Is(err, ErrHeld) {
		t.Errorf("lock held by another process: got %v, want ErrHeld", err)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(path)
	if err != nil {
		t.Fatalf("after the holder exited: %v", err)
	}
	_ = l.Release()
}

func TestAcquireInAMissingUnwritableFolderSaysWhatToSet(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Acquire(filepath.Join(blocker, "sub", "k.lock"))
	if err == nil || !strings.Contains(err.Error(), "lock_file") {
		t.Fatalf("got %v, want an error naming lock_file", err)
	}
}

// Package lock owns the per-host run lock: at most one keyescrow run that
// writes (backup, archive, restore) holds it at a time. The lock is an OS
// file lock (flock on Unix, LockFileEx on Windows), so it is released by the
// kernel when the process dies, and a stale lock file never blocks a run.
package lock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// ErrHeld is returned by Acquire when another process holds the lock.
var ErrHeld = errors.New("another keyescrow run holds the lock")

// Lock is a held lock; Release gives it back.
type Lock struct {
	f    *os.File
	path string
}

// DefaultPath is the lock file used when lock_file is not configured: one per
// host, shared by every user.
func DefaultPath() string {
	if runtime.GOOS == "windows" {
		if pd := os.Getenv("ProgramData"); pd != "" {
			return filepath.Join(pd, "keyescrow", "keyescrow.lock")
		}
		return filepath.Join(os.TempDir(), "keyescrow.lock")
	}
	if fi, err := os.Stat("/run/lock"); err == nil && fi.IsDir() {
		return "/run/lock/keyescrow.lock"
	}
	return filepath.Join(os.TempDir(), "keyescrow.lock")
}

// Acquire takes the lock at path without waiting. When another process holds
// it, the error wraps ErrHeld and names that process where it can be told.
func Acquire(path string) (*Lock, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create the lock folder %s: %w (set lock_file to a writable path)", dir, err)
		}
	}
	// 0644 so that runs under other accounts can open and lock it too.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil && errors.Is(err, os.ErrPermission) {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open the lock file %s: %w (set lock_file to a writable path)", path, err)
	}
	held, err := tryLock(f)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cannot lock %s: %w", path, err)
	}
	if held {
		owner := readOwner(path)
		_ = f.Close()
		if owner != "" {
			return nil, fmt.Errorf("%w (%s, lock file %s): wait for it to finish, or check for a hung run", ErrHeld, owner, path)
		}
		return nil, fmt.Errorf("%w (lock file %s): wait for it to finish, or check for a hung run", ErrHeld, path)
	}
	// Record who holds it, for the message another run prints. Best effort:
	// a lock file opened read-only still locks.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, path: path}, nil
}

// Release gives the lock back. The file stays: removing it would race with
// a run that has just opened it.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

func readOwner(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(b))
	if !strings.HasPrefix(s, "pid ") || len(s) > 32 {
		return ""
	}
	return "held by " + s
}

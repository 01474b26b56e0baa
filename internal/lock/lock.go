// Package lock owns the per-host run lock: at most one keyescrow run that
// writes (backup, archive, restore) holds it at a time. The lock is an OS
// file lock (flock on Unix, LockFileEx on Windows), so it is released by the
// kernel when the process dies, and a stale lock file never blocks a run.
//
// The lock file lives in a folder only the agent's account can write (see
// package state): no other local user can open it to hold the lock, or
// plant a symbolic link that makes keyescrow write somewhere else. A file
// keyescrow did not make itself is never truncated or written.
package lock

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/keyescrow/keyescrow/internal/state"
)

// ErrHeld is returned by Acquire when another process holds the lock.
var ErrHeld = errors.New("another keyescrow run holds the lock")

// FileName is the lock file's name in the state folder.
const FileName = "keyescrow.lock"

// Lock is a held lock; Release gives it back.
type Lock struct {
	f    *os.File
	path string
}

// record is what a holder writes into the lock file; an existing lock file
// must hold nothing else.
var record = regexp.MustCompile(`^(pid [0-9]{1,10}\n?)?$`)

// maxRecord bounds what is read of an existing lock file.
const maxRecord = 64

// Acquire takes the lock at path without waiting. Its folder is created
// owner-only when missing and refused when unsafe (errors match
// state.ErrUnsafe); the file is refused when it is a symbolic link, not a
// regular file, owned by another account, or holds anything but a lock
// record. When another process holds it, the error wraps ErrHeld and names
// that process's id where it can be told.
func Acquire(path string) (*Lock, error) {
	dir, err := state.Open(filepath.Dir(path), true)
	if err != nil {
		return nil, fmt.Errorf("the lock folder: %w (lock_file names the lock; remove it for the default in the state folder, or point it into a folder only this account can write)", err)
	}
	f, created, err := dir.OpenFile(filepath.Base(path))
	_ = dir.Close()
	if err != nil {
		return nil, fmt.Errorf("the lock file: %w", err)
	}
	ok := created
	if !created {
		buf := make([]byte, maxRecord+1)
		n, rerr := f.ReadAt(buf, 0)
		ok = (rerr == nil || n < len(buf)) && n <= maxRecord && record.Match(buf[:n])
		if !ok {
			_ = f.Close()
			return nil, &state.UnsafeError{Path: path, Problem: "is not a keyescrow lock file (it holds something else)",
				Fix: "keyescrow never writes into a file it did not make; set lock_file to a new file in a folder only this account can write, or remove lock_file for the default"}
		}
	}
	held, err := tryLock(f)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cannot lock %s: %w", path, err)
	}
	if held {
		who := holder(f)
		_ = f.Close()
		return nil, fmt.Errorf("%w (%slock file %s): wait for it to finish, or check for a hung run", ErrHeld, who, path)
	}
	// Record who holds it, for the message another run prints. The file is
	// ours and holds at most an earlier record.
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

// holder names the process holding f's lock: the kernel's record where the
// OS has one (Linux /proc/locks, which also names a holder that is not
// keyescrow), else the holder's own record in the file. "" when unknown.
func holder(f *os.File) string {
	if pid := lockHolderPID(f); pid > 0 {
		name := ""
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil {
			name = " " + string(bytes.TrimSpace(b))
		}
		return "held by pid " + strconv.Itoa(pid) + name + ", "
	}
	buf := make([]byte, maxRecord)
	n, _ := f.ReadAt(buf, 0)
	if m := regexp.MustCompile(`^pid ([0-9]{1,10})\n?$`).FindSubmatch(buf[:n]); m != nil {
		return "held by pid " + string(m[1]) + ", "
	}
	return ""
}

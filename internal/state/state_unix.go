//go:build unix

package state

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// systemDir is the state folder of root and of the agent's system account.
const systemDir = "/var/lib/" + Name

func osDefault(getenv func(string) string) (string, error) {
	euid := os.Geteuid()
	if euid == 0 {
		return systemDir, nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(systemDir, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && int(st.Uid) == euid {
		return systemDir, nil
	}
	if x := getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, Name), nil
	}
	if h := getenv("HOME"); filepath.IsAbs(h) && h != "/nonexistent" {
		return filepath.Join(h, ".local", "state", Name), nil
	}
	return "", fmt.Errorf("no state folder for this account (uid %d): HOME is not set and %s does not belong to it; set state_directory to a folder only this account can write (or create %s owned by this account, mode 0700)", euid, systemDir, systemDir)
}

// Dir is an opened, checked state folder. Files are opened relative to it,
// so the folder cannot be swapped for another after the check.
type Dir struct {
	Path string
	f    *os.File
}

// Open opens and checks the folder at path. With create, a missing folder
// (and missing parents) is created owner-only; without, a missing folder is
// an error matching fs.ErrNotExist.
func Open(path string, create bool) (*Dir, error) {
	path = filepath.Clean(path)
	fd, err := openDir(path)
	if errors.Is(err, unix.ENOENT) && create {
		if merr := os.MkdirAll(path, 0o700); merr != nil {
			return nil, fmt.Errorf("cannot create %s: %w", path, merr)
		}
		fd, err = openDir(path)
	}
	switch {
	case err == nil:
	case errors.Is(err, unix.ENOENT):
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, &UnsafeError{Path: path, Problem: "is a symbolic link",
				Fix: "keyescrow refuses it, so that nobody can redirect its lock and records; remove the link (rm " + path + ") and let keyescrow create the folder"}
		}
		return nil, &UnsafeError{Path: path, Problem: "is not a folder", Fix: "remove or rename it, or choose another folder"}
	default:
		return nil, fmt.Errorf("cannot open %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot stat %s: %w", path, err)
	}
	if err := checkOwner(path, &st, "chown "+strconv.Itoa(os.Geteuid())+" "+path+" && chmod 700 "+path); err != nil {
		f.Close()
		return nil, err
	}
	if perm := st.Mode & 0o7777; perm&0o022 != 0 {
		f.Close()
		return nil, &UnsafeError{Path: path, Problem: fmt.Sprintf("can be written by group or others (mode %04o)", perm),
			Fix: "another account could plant or replace files in it; if it is keyescrow's own folder, chmod 700 " + path + ", otherwise use a folder of its own"}
	}
	return &Dir{Path: path, f: f}, nil
}

func openDir(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// checkOwner refuses what another account owns.
func checkOwner(path string, st *unix.Stat_t, fix string) error {
	if euid := os.Geteuid(); int(st.Uid) != euid {
		return &UnsafeError{Path: path, Problem: fmt.Sprintf("is owned by %s, not by the account keyescrow runs as (%s)", account(int(st.Uid)), account(euid)),
			Fix: "run keyescrow as its owner, or give it to this account: " + fix}
	}
	return nil
}

// account names a uid for messages: "nobody (uid 65534)".
func account(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil && u.Username != "" {
		return u.Username + " (uid " + id + ")"
	}
	return "uid " + id
}

// Close releases the folder.
func (d *Dir) Close() error { return d.f.Close() }

func (d *Dir) openat(name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(int(d.f.Fd()), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// checkFile refuses a file that is a symbolic link, not regular, owned by
// another account, or linked elsewhere (a hard link could make a write land
// in another file).
func (d *Dir) checkFile(name string, fd int, err error) (*os.File, error) {
	p := filepath.Join(d.Path, name)
	if errors.Is(err, unix.ELOOP) {
		return nil, &UnsafeError{Path: p, Problem: "is a symbolic link",
			Fix: "keyescrow never follows one here, so that nobody can make it write another file; remove it (rm " + p + ")"}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, &UnsafeError{Path: p, Problem: "is not a regular file", Fix: "remove it (keyescrow creates its own)"}
	}
	if err := checkOwner(p, &st, "chown "+strconv.Itoa(os.Geteuid())+" "+p); err != nil {
		f.Close()
		return nil, err
	}
	if st.Nlink > 1 {
		f.Close()
		return nil, &UnsafeError{Path: p, Problem: fmt.Sprintf("has %d hard links", st.Nlink), Fix: "it may be another file under a second name; remove it (keyescrow creates its own)"}
	}
	return f, nil
}

// OpenFile opens name in the folder for reading and writing, creating it
// owner-only when missing. created says whether this call made it. An
// existing file must pass the checks of checkFile; one that group or others
// may read is made owner-only.
func (d *Dir) OpenFile(name string) (f *os.File, created bool, err error) {
	fd, err := d.openat(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
	created = err == nil
	if errors.Is(err, unix.EEXIST) {
		// O_NONBLOCK: a FIFO planted here must not hang the open.
		fd, err = d.openat(name, unix.O_RDWR|unix.O_NONBLOCK, 0)
	}
	f, err = d.checkFile(name, fd, err)
	if err != nil {
		return nil, false, err
	}
	if !created {
		if fi, serr := f.Stat(); serr == nil && fi.Mode().Perm()&0o077 != 0 {
			_ = f.Chmod(0o600)
		}
	}
	return f, created, nil
}

// ReadFile reads name from the folder, at most max bytes. A missing file
// matches fs.ErrNotExist.
func (d *Dir) ReadFile(name string, max int64) ([]byte, error) {
	fd, err := d.openat(name, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(d.Path, name), Err: fs.ErrNotExist}
	}
	f, err := d.checkFile(name, fd, err)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, &UnsafeError{Path: f.Name(), Problem: fmt.Sprintf("is larger than %d bytes", max), Fix: "it is not keyescrow's; remove it"}
	}
	return b, nil
}

// WriteFile replaces name in the folder with data, atomically: a new
// owner-only temporary file, synced, then renamed over it.
func (d *Dir) WriteFile(name string, data []byte) error {
	tmp := "." + name + ".tmp" + strconv.Itoa(os.Getpid())
	_ = unix.Unlinkat(int(d.f.Fd()), tmp, 0)
	fd, err := d.openat(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return &fs.PathError{Op: "create", Path: filepath.Join(d.Path, tmp), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.Path, tmp))
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(int(d.f.Fd()), tmp, int(d.f.Fd()), name)
	}
	if err != nil {
		_ = unix.Unlinkat(int(d.f.Fd()), tmp, 0)
		return &fs.PathError{Op: "write", Path: filepath.Join(d.Path, name), Err: err}
	}
	_ = d.f.Sync()
	return nil
}

//go:build windows

package state

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

func osDefault(getenv func(string) string) (string, error) {
	if pd := getenv("ProgramData"); filepath.IsAbs(pd) {
		return filepath.Join(pd, Name), nil
	}
	return "", errors.New("no state folder: %ProgramData% is not set; set state_directory to a folder only this account and the administrators can write")
}

// Dir is a checked state folder. On Windows access is governed by ACLs: a
// folder keyescrow creates gets a protected ACL granting only SYSTEM, the
// Administrators and this account; an existing folder is checked for being
// a real folder (no symbolic link or junction) owned by one of them.
type Dir struct {
	Path string
}

// Open checks the folder at path, creating it when create is set.
func Open(path string, create bool) (*Dir, error) {
	path = filepath.Clean(path)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		if merr := os.MkdirAll(path, 0o700); merr != nil {
			return nil, fmt.Errorf("cannot create %s: %w", path, merr)
		}
		if perr := restrictACL(path); perr != nil {
			return nil, fmt.Errorf("cannot make %s private: %w", path, perr)
		}
		fi, err = os.Lstat(path)
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode()&(fs.ModeSymlink|fs.ModeIrregular) != 0 {
		return nil, &UnsafeError{Path: path, Problem: "is a symbolic link or junction",
			Fix: "keyescrow refuses it, so that nobody can redirect its lock and records; remove it and let keyescrow create the folder"}
	}
	if !fi.IsDir() {
		return nil, &UnsafeError{Path: path, Problem: "is not a folder", Fix: "remove or rename it, or choose another folder"}
	}
	if err := checkOwner(path); err != nil {
		return nil, err
	}
	return &Dir{Path: path}, nil
}

// Close releases the folder.
func (d *Dir) Close() error { return nil }

func (d *Dir) check(name string) (string, error) {
	p := filepath.Join(d.Path, name)
	fi, err := os.Lstat(p)
	if err != nil {
		return p, err
	}
	if fi.Mode()&(fs.ModeSymlink|fs.ModeIrregular) != 0 {
		return p, &UnsafeError{Path: p, Problem: "is a symbolic link", Fix: "keyescrow never follows one here; remove it"}
	}
	if !fi.Mode().IsRegular() {
		return p, &UnsafeError{Path: p, Problem: "is not a regular file", Fix: "remove it (keyescrow creates its own)"}
	}
	return p, nil
}

// OpenFile opens name for reading and writing, creating it when missing.
func (d *Dir) OpenFile(name string) (*os.File, bool, error) {
	p := filepath.Join(d.Path, name)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, err
	}
	if _, err := d.check(name); err != nil {
		return nil, false, err
	}
	f, err = os.OpenFile(p, os.O_RDWR, 0)
	return f, false, err
}

// ReadFile reads name, at most max bytes.
func (d *Dir) ReadFile(name string, max int64) ([]byte, error) {
	p, err := d.check(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, &UnsafeError{Path: p, Problem: fmt.Sprintf("is larger than %d bytes", max), Fix: "it is not keyescrow's; remove it"}
	}
	return b, nil
}

// WriteFile replaces name with data through a temporary file and a rename.
func (d *Dir) WriteFile(name string, data []byte) error {
	p := filepath.Join(d.Path, name)
	tmp := filepath.Join(d.Path, "."+name+".tmp"+strconv.Itoa(os.Getpid()))
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

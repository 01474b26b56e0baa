//go:build unix

package filestore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/keyescrow/keyescrow/internal/storage"
)

var errUnsupportedLink = unix.EXDEV

func TestFinalFileIsReadOnlyAndTempFileOwnerOnly(t *testing.T) {
	for _, direct := range []bool{false, true} {
		s := newStore(t)
		if direct {
			s.link = func(string, string) error { return &os.LinkError{Op: "link", Err: unix.EPERM} }
		}
		var tempMode os.FileMode
		s.write = func(f *os.File, p []byte) (int, error) {
			if fi, err := f.Stat(); err == nil && tempMode == 0 {
				tempMode = fi.Mode().Perm()
			}
			return f.Write(p)
		}
		data := []byte("k")
		if _, err := s.Put(t.Context(), "h/a.key", data, opts(data)); err != nil {
			t.Fatal(err)
		}
		if tempMode != 0o600 {
			t.Errorf("direct %v: temp file mode %o, want 600", direct, tempMode)
		}
		fi, err := os.Stat(s.Location("h/a.key"))
		if err != nil || fi.Mode().Perm() != 0o400 {
			t.Errorf("direct %v: final file mode %v, %v; want 0400", direct, fi.Mode().Perm(), err)
		}
		if di, _ := os.Stat(filepath.Join(s.path, "h")); di.Mode().Perm() != 0o700 {
			t.Errorf("direct %v: folder mode %o, want 700", direct, di.Mode().Perm())
		}
	}
}

func TestPreflightReportsWhetherTheFolderIsWritable(t *testing.T) {
	cases := []struct {
		name  string
		probe error
		want  storage.State
	}{
		{"a folder this user may write is proven writable", nil, storage.Proven},
		{"a folder without write permission is not writable", unix.EACCES, storage.Absent},
		{"a read-only file system is not writable", unix.EROFS, storage.Absent},
		{"an unexpected answer leaves writability unknown", unix.EIO, storage.Unknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			s.probe = func(string) error { return tc.probe }
			p, err := s.Preflight(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if p.Writable.State != tc.want || p.Writable.Detail == "" {
				t.Fatalf("Writable = %+v, want %v with a detail", p.Writable, tc.want)
			}
		})
	}
}

// A real mode-0500 folder: only root (who ignores permission bits, and is
// how tests run here) may still write to it, and Preflight must say so.
func TestPreflightOfARealReadOnlyFolderMatchesWhatThisUserMayDo(t *testing.T) {
	s := newStore(t)
	if err := os.Chmod(s.path, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(s.path, 0o700) })
	want := storage.Absent
	if os.Geteuid() == 0 {
		want = storage.Proven
	}
	p, err := s.Preflight(t.Context())
	if err != nil || p.Writable.State != want {
		t.Fatalf("Preflight Writable = %+v, %v; want %v for euid %d", p.Writable, err, want, os.Geteuid())
	}
}

func TestOSErrorsTranslateToStorageSentinels(t *testing.T) {
	cases := []struct {
		err  error
		want error
		says string
	}{
		{&os.PathError{Op: "open", Path: "p", Err: unix.EEXIST}, storage.ErrExists, ""},
		{&os.PathError{Op: "open", Path: "p", Err: unix.ENOENT}, storage.ErrNotFound, ""},
		{&os.PathError{Op: "open", Path: "p", Err: unix.ENOTDIR}, storage.ErrNotFound, ""},
		{&os.PathError{Op: "open", Path: "p", Err: unix.EACCES}, storage.ErrPermission, ""},
		{&os.PathError{Op: "write", Path: "p", Err: unix.ENOSPC}, storage.ErrUnavailable, "full"},
		{&os.PathError{Op: "open", Path: "p", Err: unix.EROFS}, storage.ErrUnavailable, "read-only"},
		{&os.PathError{Op: "read", Path: "p", Err: unix.EIO}, storage.ErrUnavailable, "removed or is failing"},
	}
	for _, tc := range cases {
		got := translateError("put", "/mnt/keys/a.key", tc.err)
		if !errors.Is(got, tc.want) || !errors.Is(got, tc.err) {
			t.Errorf("translateError(%v) = %v, want it to wrap %v and the OS error", tc.err, got, tc.want)
		}
		if tc.says != "" && !strings.Contains(got.Error(), tc.says) {
			t.Errorf("translateError(%v) = %q, want it to say %q", tc.err, got, tc.says)
		}
	}
}

package filestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Harness{
		New: func(t *testing.T) storage.Backend { return newStore(t) },
		Corrupt: func(t *testing.T, b storage.Backend, key, versionID string) {
			name := b.Location(key)
			if err := os.Chmod(name, 0o600); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(name)
			if err != nil || len(data) == 0 {
				t.Fatalf("reading %s to corrupt it: %v (%d bytes)", name, err, len(data))
			}
			data[len(data)/2] ^= 0xff
			if err := os.WriteFile(name, data, 0o400); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(name, 0o400); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(Options{Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func opts(data []byte) storage.PutOptions {
	s := sha256.Sum256(data)
	return storage.PutOptions{SHA256: s[:]}
}

// assertNoTemp fails when a temp file is left anywhere under root.
func assertNoTemp(t *testing.T, root string) {
	t.Helper()
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tempPrefix) {
			t.Errorf("temp file left behind: %s", p)
		}
		return nil
	})
}

func TestNewRefusesARelativePath(t *testing.T) {
	for _, p := range []string{"", "keys", "./keys", "../keys"} {
		if _, err := New(Options{Path: p}); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("New(%q) = %v, want ErrInvalid", p, err)
		}
	}
}

func TestKeysOutsidePlainRelativePathsAreRejected(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for _, key := range []string{"", "../x", "a/../../x", "/abs", "a\\b", "a//b", "a/", "./a", "a/\x00b", "a/" + tempPrefix + "x"} {
		t.Run(key, func(t *testing.T) {
			if _, err := s.Put(ctx, key, []byte("x"), opts([]byte("x"))); !errors.Is(err, storage.ErrInvalid) {
				t.Errorf("Put = %v, want ErrInvalid", err)
			}
			if _, err := s.Stat(ctx, key, ""); !errors.Is(err, storage.ErrInvalid) {
				t.Errorf("Stat = %v, want ErrInvalid", err)
			}
			if _, err := s.Open(ctx, key, ""); !errors.Is(err, storage.ErrInvalid) {
				t.Errorf("Open = %v, want ErrInvalid", err)
			}
		})
	}
	if err := s.List(ctx, "../", func(storage.Object) error { return nil }); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("List(../) = %v, want ErrInvalid", err)
	}
}

func TestAnExistingFileIsNeverOverwrittenEvenWhenMadeWritable(t *testing.T) {
	s := newStore(t)
	first, second := []byte("first"), []byte("second")
	if _, err := s.Put(t.Context(), "h/i/a.key", first, opts(first)); err != nil {
		t.Fatal(err)
	}
	name := s.Location("h/i/a.key")
	if err := os.Chmod(name, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, direct := range []bool{false, true} {
		if direct { // the fallback path where links are unsupported
			s.link = func(string, string) error { return &os.LinkError{Op: "link", Err: errUnsupportedLink} }
		}
		if _, err := s.Put(t.Context(), "h/i/a.key", second, opts(second)); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second Put (direct %v) = %v, want ErrExists", direct, err)
		}
		if got, _ := os.ReadFile(name); !bytes.Equal(got, first) {
			t.Fatalf("file now holds %q, want %q", got, first)
		}
	}
	assertNoTemp(t, s.path)
}

func TestWhereLinksAreUnsupportedPutCreatesTheFileDirectly(t *testing.T) {
	s := newStore(t)
	s.link = func(string, string) error { return &os.LinkError{Op: "link", Err: errUnsupportedLink} }
	data := []byte("direct")
	if _, err := s.Put(t.Context(), "a/b.key", data, opts(data)); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stat(t.Context(), "a/b.key", "")
	if sum := sha256.Sum256(data); err != nil || !bytes.Equal(st.SHA256, sum[:]) {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	assertNoTemp(t, s.path)
}

func TestTempFilesAreNeverLeftBehind(t *testing.T) {
	errDisk := errors.New("disk went away")
	cases := []struct {
		name  string
		setup func(s *Store, cancel context.CancelFunc)
		want  error
	}{
		{"when a write fails", func(s *Store, _ context.CancelFunc) {
			s.write = func(*os.File, []byte) (int, error) { return 0, errDisk }
		}, errDisk},
		{"when a write makes no progress", func(s *Store, _ context.CancelFunc) {
			s.write = func(*os.File, []byte) (int, error) { return 0, nil }
		}, storage.ErrUnavailable},
		{"when the context is cancelled during the write", func(s *Store, cancel context.CancelFunc) {
			s.write = func(f *os.File, p []byte) (int, error) { cancel(); return f.Write(p) }
		}, context.Canceled},
		{"when the link fails", func(s *Store, _ context.CancelFunc) {
			s.link = func(string, string) error { return errDisk }
		}, errDisk},
		{"when the direct write fails where links are unsupported", func(s *Store, _ context.CancelFunc) {
			calls := 0
			s.link = func(string, string) error { return &os.LinkError{Op: "link", Err: errUnsupportedLink} }
			s.write = func(f *os.File, p []byte) (int, error) {
				if calls++; calls > 1 {
					return 0, errDisk
				}
				return f.Write(p)
			}
		}, errDisk},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			tc.setup(s, cancel)
			data := []byte("secret key bytes")
			_, err := s.Put(ctx, "h/i/a.key", data, opts(data))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Put = %v, want %v", err, tc.want)
			}
			assertNoTemp(t, s.path)
			if _, err := os.Stat(s.Location("h/i/a.key")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("final file exists after a failed put: %v", err)
			}
		})
	}
}

func TestPutRefusesRetentionAndLegalHold(t *testing.T) {
	s := newStore(t)
	for _, o := range []storage.PutOptions{{Retention: &storage.Retention{Mode: "COMPLIANCE"}}, {LegalHold: true}} {
		if _, err := s.Put(t.Context(), "a.key", []byte("x"), o); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Put(%+v) = %v, want ErrInvalid", o, err)
		}
	}
}

func TestPreflightOfAMissingFolderSaysToMountOrCreateIt(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]string{
		"a missing folder":              filepath.Join(root, "missing"),
		"a folder under a regular file": filepath.Join(file, "sub"),
		"a regular file":                file,
	} {
		t.Run(name, func(t *testing.T) {
			s, err := New(Options{Path: p})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Preflight(t.Context())
			if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "mount the medium") {
				t.Fatalf("Preflight = %v, want ErrNotFound naming %s and saying to mount the medium", err, p)
			}
		})
	}
}

func TestPutIntoAMissingFolderFailsInsteadOfCreatingIt(t *testing.T) {
	root := filepath.Join(t.TempDir(), "unmounted")
	s, err := New(Options{Path: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), "h/a.key", []byte("x"), opts([]byte("x"))); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Put = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Put created %s: %v", root, err)
	}
}

func TestPreflightReportsAFolderAsNotWORM(t *testing.T) {
	s := newStore(t)
	p, err := s.Preflight(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for name, prop := range map[string]storage.Property{"region": p.Region, "versioning": p.Versioning, "immutability": p.Immutability} {
		if prop.State != storage.NotApplicable || !strings.Contains(prop.Detail, "not WORM") {
			t.Errorf("%s = %+v, want not applicable, explained", name, prop)
		}
	}
	entries, _ := os.ReadDir(s.path)
	if len(entries) != 0 {
		t.Errorf("Preflight wrote %d entries", len(entries))
	}
}

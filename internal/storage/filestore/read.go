package filestore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Stat re-reads the stored file to report its SHA-256: a folder keeps no
// checksum of its own. versionID must be ""; any other is ErrNotFound.
func (s *Store) Stat(ctx context.Context, key, versionID string) (storage.Object, error) {
	f, fi, err := s.openFile(ctx, key, versionID)
	if err != nil {
		return storage.Object{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return storage.Object{}, translateError("stat: reading", f.Name(), err)
	}
	if err := ctx.Err(); err != nil {
		return storage.Object{}, translateError("stat", f.Name(), err)
	}
	return storage.Object{Key: key, Size: n, SHA256: h.Sum(nil), LastModified: fi.ModTime(), IsLatest: true}, nil
}

// Open returns the stored file. versionID must be "".
func (s *Store) Open(ctx context.Context, key, versionID string) (io.ReadCloser, error) {
	f, _, err := s.openFile(ctx, key, versionID)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// openFile opens key's regular file; folders and other versions are
// ErrNotFound.
func (s *Store) openFile(ctx context.Context, key, versionID string) (*os.File, os.FileInfo, error) {
	if err := checkKey(key); err != nil {
		return nil, nil, err
	}
	name := s.Location(key)
	if versionID != "" {
		return nil, nil, fmt.Errorf("file destination: %s has no version %q (a folder keeps no versions): %w", name, versionID, storage.ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, translateError("open", name, err)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, translateError("open", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, translateError("open: stat", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("file destination: %s is not a regular file: %w", name, storage.ErrNotFound)
	}
	return f, fi, nil
}

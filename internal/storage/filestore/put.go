package filestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Put writes data under key, create-only: into a temp file in the same
// folder (O_EXCL, mode 0600), fsynced and made read-only (0400), then
// linked into place without ever replacing a file (hard link on Unix,
// MoveFileEx without replace on Windows). Where the file system cannot
// link, the final file is created directly with O_EXCL. The folder is then
// fsynced. Folders are created below Path only: a missing Path (an
// unmounted medium) is ErrNotFound. The temp file is removed on every path, cancellation included.
// Retention and legal holds are refused with ErrInvalid.
func (s *Store) Put(ctx context.Context, key string, data []byte, opts storage.PutOptions) (storage.Object, error) {
	if err := checkKey(key); err != nil {
		return storage.Object{}, err
	}
	if opts.Retention != nil || opts.LegalHold {
		return storage.Object{}, fmt.Errorf("file destination: a folder cannot enforce retention or a legal hold: %w", storage.ErrInvalid)
	}
	final := s.Location(key)
	if err := ctx.Err(); err != nil {
		return storage.Object{}, translateError("put", final, err)
	}
	if err := s.checkRoot(); err != nil {
		return storage.Object{}, err
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return storage.Object{}, translateError("put: creating folder", dir, err)
	}
	tmp, err := s.writeTemp(ctx, dir, data)
	if err != nil {
		return storage.Object{}, err
	}
	defer removeFile(tmp)
	if err := ctx.Err(); err != nil { // the last moment before the copy becomes visible
		return storage.Object{}, translateError("put", final, err)
	}
	if err := s.link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) || !linkUnsupported(err) {
			return storage.Object{}, translateError("put", final, err)
		}
		if err := s.createDirect(final, data); err != nil {
			return storage.Object{}, err
		}
	}
	removeFile(tmp)
	for d := dir; ; d = filepath.Dir(d) { // new folders too, up to the root
		if err := syncDir(d); err != nil {
			return storage.Object{}, translateError("put: syncing folder", d, err)
		}
		if len(d) <= len(s.path) || d == filepath.Dir(d) {
			break
		}
	}
	fi, err := os.Stat(final)
	if err != nil {
		return storage.Object{}, translateError("put: stat", final, err)
	}
	return storage.Object{Key: key, Size: int64(len(data)), LastModified: fi.ModTime(), IsLatest: true}, nil
}

// writeTemp writes data to a new temp file in dir (O_EXCL, 0600), fsyncs
// it and makes it read-only. On error nothing is left behind.
func (s *Store) writeTemp(ctx context.Context, dir string, data []byte) (_ string, err error) {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	name := filepath.Join(dir, tempPrefix+hex.EncodeToString(b))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", translateError("put: creating temp file", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			removeFile(name)
		}
	}()
	if err := s.writeAll(f, data); err != nil {
		return "", translateError("put: writing", name, err)
	}
	if err := ctx.Err(); err != nil {
		return "", translateError("put", name, err)
	}
	if err := f.Sync(); err != nil {
		return "", translateError("put: fsync", name, err)
	}
	if err := f.Chmod(0o400); err != nil {
		return "", translateError("put: making read-only", name, err)
	}
	if err := f.Close(); err != nil {
		return "", translateError("put: closing", name, err)
	}
	return name, nil
}

// createDirect is the fallback where links are unsupported: it creates
// final with O_EXCL, read-only from the start, writes and fsyncs it, and
// removes it again (it is ours) when that fails.
func (s *Store) createDirect(final string, data []byte) (err error) {
	f, err := os.OpenFile(final, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return translateError("put", final, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			removeFile(final)
		}
	}()
	if err := s.writeAll(f, data); err != nil {
		return translateError("put: writing", final, err)
	}
	if err := f.Sync(); err != nil {
		return translateError("put: fsync", final, err)
	}
	return translateError("put: closing", final, f.Close())
}

// writeAll writes all of data through the write seam.
func (s *Store) writeAll(f *os.File, data []byte) error {
	for len(data) > 0 {
		n, err := s.write(f, data)
		if err != nil {
			return err
		}
		if n <= 0 {
			return io.ErrShortWrite
		}
		data = data[n:]
	}
	return nil
}

// removeFile removes a file of ours, read-only or not; a missing file is fine.
func removeFile(name string) {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = os.Chmod(name, 0o600) // Windows refuses to delete read-only files
		_ = os.Remove(name)
	}
}

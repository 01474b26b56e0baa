package filestore

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// List walks the folder below prefix and calls fn for each stored file as
// it goes, in ascending key order (byte order of the slash-separated key,
// which is not a folder walk's name order: "a-b" < "a.txt" < "a/z"). Temp
// files, symlinks and other non-regular files are skipped. Each key has
// one version, IsLatest true; SHA256 is not computed (use Stat).
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	start := ""
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		start = prefix[:i]
		if err := checkKey(start); err != nil {
			return err
		}
		start += "/"
	}
	return s.walk(ctx, start, prefix, fn)
}

// walk lists the folder holding keys that start with rel.
func (s *Store) walk(ctx context.Context, rel, prefix string, fn func(storage.Object) error) error {
	dir := s.Location(rel)
	if rel == "" {
		dir = s.path
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // nothing stored under this prefix
		}
		return translateError("list", dir, err)
	}
	sortKey := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return cmp.Compare(sortKey(a), sortKey(b)) })
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return translateError("list", dir, err)
		}
		key := rel + e.Name()
		switch {
		case strings.HasPrefix(e.Name(), tempPrefix):
		case e.IsDir():
			if strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
				if err := s.walk(ctx, key+"/", prefix, fn); err != nil {
					return err
				}
			}
		case e.Type().IsRegular() && strings.HasPrefix(key, prefix):
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return translateError("list", filepath.Join(dir, e.Name()), err)
			}
			o := storage.Object{Key: key, Size: fi.Size(), LastModified: fi.ModTime(), IsLatest: true}
			if err := fn(o); err != nil {
				return err
			}
		}
	}
	return nil
}

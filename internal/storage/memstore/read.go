package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Stat describes the version (versionID "" = current). A missing key or
// version, or a delete marker, is ErrNotFound. SHA256 is the checksum
// computed at Put, even after Corrupt.
func (s *Store) Stat(ctx context.Context, key, versionID string) (storage.Object, error) {
	if err := s.begin("stat"); err != nil {
		return storage.Object{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Object{}, fmt.Errorf("memstore stat %s: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.readable(key, versionID)
	if err != nil {
		return storage.Object{}, fmt.Errorf("memstore stat: %w", err)
	}
	return v.object(key, v == s.latest(key)), nil
}

// Open returns a reader over a copy of the version's stored bytes.
func (s *Store) Open(ctx context.Context, key, versionID string) (io.ReadCloser, error) {
	if err := s.begin("open"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore open %s: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.readable(key, versionID)
	if err != nil {
		return nil, fmt.Errorf("memstore open: %w", err)
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(v.data))), nil
}

// readable finds a version that has bytes. Callers hold s.mu.
func (s *Store) readable(key, versionID string) (*version, error) {
	v := s.find(key, versionID)
	switch {
	case v == nil:
		return nil, fmt.Errorf("%s version %q: %w", key, versionID, storage.ErrNotFound)
	case v.deleteMarker:
		return nil, fmt.Errorf("%s version %q is a delete marker: %w", key, versionID, storage.ErrNotFound)
	}
	return v, nil
}

// List calls fn for every version under prefix, keys ascending, newest
// version first, delete markers included. It takes a snapshot under the
// lock, then calls fn without holding it, so fn may call the store.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	if err := s.begin("list"); err != nil {
		return err
	}
	for _, o := range s.snapshot(prefix) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("memstore list %s: %w", prefix, err)
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

// snapshot returns the listing of prefix in List's order.
func (s *Store) snapshot(prefix string) []storage.Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.objects {
		if strings.HasPrefix(k, prefix) && len(s.objects[k]) > 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []storage.Object
	for _, k := range keys {
		vs := s.objects[k]
		for i := len(vs) - 1; i >= 0; i-- {
			out = append(out, vs[i].object(k, i == len(vs)-1))
		}
	}
	return out
}

// Package filestore is the "file" destination: a folder on a mounted
// removable medium or share. Every copy is written under a unique key,
// create-only (never overwritten, not even a file made writable again),
// fsynced and made read-only. A folder is not WORM storage: it has no
// versions, no retention and keeps no checksum of its own, so Stat re-reads
// the stored bytes to report their SHA-256.
package filestore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Options configure the destination.
type Options struct {
	// Path is the absolute folder that holds the keys.
	Path string
	// Clock is unused by the folder itself; default time.Now.
	Clock func() time.Time
}

// Store is a folder destination.
type Store struct {
	path  string
	clock func() time.Time

	// Seams for tests; New sets the real implementations.
	write func(f *os.File, p []byte) (int, error) // writes a copy's bytes
	link  func(tmp, final string) error           // links tmp to final, never replacing
	probe func(dir string) error                  // the no-write writability check
}

var _ storage.Backend = (*Store)(nil)

// tempPrefix starts the name of every temp file; List skips such files and
// keys may not use the prefix.
const tempPrefix = ".keyescrow-tmp-"

// New returns a Store for opts.Path, which must be absolute. It does no I/O.
func New(opts Options) (*Store, error) {
	p := filepath.Clean(opts.Path)
	if opts.Path == "" || !filepath.IsAbs(p) {
		return nil, fmt.Errorf("file destination: path %q must be absolute: %w", opts.Path, storage.ErrInvalid)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Store{
		path:  p,
		clock: opts.Clock,
		write: func(f *os.File, b []byte) (int, error) { return f.Write(b) },
		link:  linkNoReplace,
		probe: probeWritable,
	}, nil
}

// Type returns "file".
func (s *Store) Type() string { return "file" }

// Location returns the file path of key.
func (s *Store) Location(key string) string { return filepath.Join(s.path, filepath.FromSlash(key)) }

// Capabilities: a folder has no versions, no retention and no checksum.
func (s *Store) Capabilities() storage.Capabilities { return storage.Capabilities{} }

// checkKey refuses keys that are not plain slash-separated relative paths
// inside the folder.
func checkKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("file destination: key %q %s: %w", key, why, storage.ErrInvalid)
	}
	switch {
	case key == "":
		return bad("is empty")
	case strings.HasPrefix(key, "/") || filepath.IsAbs(filepath.FromSlash(key)) || filepath.VolumeName(filepath.FromSlash(key)) != "":
		return bad("is absolute")
	case strings.ContainsAny(key, "\\\x00"+osInvalidChars):
		return bad("contains a backslash, NUL or a character the file system refuses")
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return bad("has an empty segment")
		case seg == "." || seg == "..":
			return bad("has a . or .. segment")
		case strings.HasPrefix(seg, tempPrefix):
			return bad("uses the temp-file prefix " + tempPrefix)
		}
	}
	return nil
}

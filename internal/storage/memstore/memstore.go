// Package memstore is an in-memory storage.Backend that enforces the rules
// of the real services: create-only writes, versioning, retention (WORM)
// locks and legal holds measured against an injected clock, and a stored
// checksum the store computed itself. Its extra methods (Delete,
// PutRetention, PutLegalHold, Corrupt, Inject, Hook, Requests) exist so
// tests can prove that locks hold and that corruption is detected.
package memstore

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Options configure a Store the way a bucket is configured.
type Options struct {
	// Clock is the store's notion of now; default time.Now.
	Clock func() time.Time
	// Region reported by Preflight; "" reports the region as Unknown.
	Region string
	// Versioning keeps every version under its own id. Without it, versions
	// have the id "" and a key holds one version (create-only still applies).
	Versioning bool
	// ObjectLock allows retention and legal holds; it requires Versioning,
	// as on S3.
	ObjectLock bool
	// DefaultRetention applies to a Put without Retention when ObjectLock.
	DefaultRetention *storage.DefaultRetention
	// Modes are the accepted retention modes; default COMPLIANCE, GOVERNANCE.
	// GOVERNANCE and "unlocked" can be bypassed; every other mode is strict.
	Modes []string
	// Name appears in Location: mem://<Name>/<key>; default "mem".
	Name string
}

// Store is the in-memory backend. Its zero value is not usable; call New.
type Store struct {
	opts Options

	mu       sync.Mutex
	objects  map[string][]*version // per key, oldest first
	usedIDs  map[string]bool
	faults   map[string]*fault
	hooks    map[string]func()
	requests map[string]int
}

// version is one stored version or delete marker.
type version struct {
	id           string
	data         []byte
	sha256       []byte
	md5          []byte
	retention    *storage.Retention
	legalHold    bool
	modified     time.Time
	deleteMarker bool
	metadata     map[string]string
}

var _ storage.Backend = (*Store)(nil)

// New returns an empty store. ObjectLock without Versioning is refused, as
// S3 refuses it.
func New(opts Options) (*Store, error) {
	if opts.ObjectLock && !opts.Versioning {
		return nil, fmt.Errorf("memstore: object lock requires versioning: %w", storage.ErrInvalid)
	}
	if opts.DefaultRetention != nil && !opts.ObjectLock {
		return nil, fmt.Errorf("memstore: a default retention requires object lock: %w", storage.ErrInvalid)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Modes == nil {
		opts.Modes = []string{"COMPLIANCE", "GOVERNANCE"}
	}
	opts.Modes = slices.Clone(opts.Modes)
	if opts.DefaultRetention != nil {
		d := *opts.DefaultRetention
		if !slices.Contains(opts.Modes, d.Mode) || d.Days < 1 {
			return nil, fmt.Errorf("memstore: default retention %s %dd: %w", d.Mode, d.Days, storage.ErrInvalid)
		}
		opts.DefaultRetention = &d
	}
	if opts.Name == "" {
		opts.Name = "mem"
	}
	return &Store{
		opts:     opts,
		objects:  map[string][]*version{},
		usedIDs:  map[string]bool{},
		faults:   map[string]*fault{},
		hooks:    map[string]func(){},
		requests: map[string]int{},
	}, nil
}

// Type returns "memory".
func (s *Store) Type() string { return "memory" }

// Location returns mem://<Name>/<key>.
func (s *Store) Location(key string) string { return "mem://" + s.opts.Name + "/" + key }

// Capabilities follow the options.
func (s *Store) Capabilities() storage.Capabilities {
	c := storage.Capabilities{Versioning: s.opts.Versioning, Retention: s.opts.ObjectLock, ServiceChecksum: true}
	if s.opts.ObjectLock {
		c.RetentionModes = slices.Clone(s.opts.Modes)
	}
	return c
}

// latest returns the current version of key, or nil. Callers hold s.mu.
func (s *Store) latest(key string) *version {
	vs := s.objects[key]
	if len(vs) == 0 {
		return nil
	}
	return vs[len(vs)-1]
}

// find returns the version of key with id ("" = current), or nil.
// Callers hold s.mu.
func (s *Store) find(key, id string) *version {
	if id == "" {
		return s.latest(key)
	}
	for _, v := range s.objects[key] {
		if v.id == id {
			return v
		}
	}
	return nil
}

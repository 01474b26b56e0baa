package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/memstore"
	"github.com/keyescrow/keyescrow/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	configs := []struct {
		name string
		opts memstore.Options
		ret  *storage.Retention
	}{
		{"a versioned store with object lock", memstore.Options{Versioning: true, ObjectLock: true, Region: "us-east-2"}, &storage.Retention{Mode: "COMPLIANCE"}},
		{"a versioned store with governance locks", memstore.Options{Versioning: true, ObjectLock: true}, &storage.Retention{Mode: "GOVERNANCE"}},
		{"a versioned store without object lock", memstore.Options{Versioning: true}, nil},
		{"a plain store without versioning", memstore.Options{}, nil},
	}
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			storagetest.Run(t, storagetest.Harness{
				New: func(t *testing.T) storage.Backend {
					s, err := memstore.New(c.opts)
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
				Delete: func(ctx context.Context, t *testing.T, b storage.Backend, key, versionID string) error {
					return b.(*memstore.Store).Delete(ctx, key, versionID, false)
				},
				Corrupt: func(t *testing.T, b storage.Backend, key, versionID string) {
					b.(*memstore.Store).Corrupt(key, versionID)
				},
				Retention: c.ret,
			})
		})
	}
}

// clock is a settable clock for tests.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newLocked(t *testing.T, opts memstore.Options) (*memstore.Store, *clock) {
	t.Helper()
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts.Clock, opts.Versioning, opts.ObjectLock = c.Now, true, true
	s, err := memstore.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

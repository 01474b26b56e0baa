package memstore

import (
	"context"
	"fmt"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Preflight reports the options as a bucket would report its settings.
func (s *Store) Preflight(ctx context.Context) (storage.Properties, error) {
	if err := s.begin("preflight"); err != nil {
		return storage.Properties{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Properties{}, fmt.Errorf("memstore preflight: %w", err)
	}
	p := storage.Properties{
		Region:       storage.Property{State: storage.Unknown, Detail: "memstore: no region configured"},
		Versioning:   storage.Property{State: storage.Absent, Value: "Disabled", Detail: "memstore option Versioning"},
		Immutability: storage.Property{State: storage.Absent, Detail: "memstore option ObjectLock"},
		Writable:     storage.Property{State: storage.Proven, Detail: "memstore accepts writes"},
	}
	if s.opts.Region != "" {
		p.Region = storage.Property{State: storage.Proven, Value: s.opts.Region, Detail: "memstore option Region"}
	}
	if s.opts.Versioning {
		p.Versioning = storage.Property{State: storage.Proven, Value: "Enabled", Detail: "memstore option Versioning"}
	}
	if s.opts.ObjectLock {
		p.Immutability = storage.Property{State: storage.Proven, Value: "object-lock", Detail: "memstore option ObjectLock"}
	}
	if d := s.opts.DefaultRetention; d != nil {
		dc := *d
		p.DefaultRetention = &dc
	}
	return p, nil
}

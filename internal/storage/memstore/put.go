package memstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Put stores a copy of data under key, create-only. It refuses data that
// does not match opts.SHA256 (ErrChecksum), retention or a legal hold
// without object lock, an unknown mode or an Until not in the future
// (ErrInvalid), and a key whose current version is not a delete marker
// (ErrExists). Of concurrent Puts of one key exactly one succeeds.
func (s *Store) Put(ctx context.Context, key string, data []byte, opts storage.PutOptions) (storage.Object, error) {
	if err := s.begin("put"); err != nil {
		return storage.Object{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Object{}, fmt.Errorf("memstore put %s: %w", key, err)
	}
	if key == "" {
		return storage.Object{}, fmt.Errorf("memstore put: empty key: %w", storage.ErrInvalid)
	}
	sum := sha256.Sum256(data)
	if opts.SHA256 != nil && !bytes.Equal(opts.SHA256, sum[:]) {
		return storage.Object{}, fmt.Errorf("memstore put %s: sha256 %x sent, %x received: %w",
			key, opts.SHA256, sum, storage.ErrChecksum)
	}
	md := md5.Sum(data)
	if opts.MD5 != nil && !bytes.Equal(opts.MD5, md[:]) {
		return storage.Object{}, fmt.Errorf("memstore put %s: md5 mismatch: %w", key, storage.ErrChecksum)
	}
	now := s.opts.Clock()
	ret, err := s.retentionFor(opts, now)
	if err != nil {
		return storage.Object{}, fmt.Errorf("memstore put %s: %w", key, err)
	}
	v := &version{
		data:      bytes.Clone(data),
		sha256:    sum[:],
		md5:       md[:],
		retention: ret,
		legalHold: opts.LegalHold,
		modified:  now,
		metadata:  maps.Clone(opts.Metadata),
	}
	if v.data == nil {
		v.data = []byte{}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.latest(key); cur != nil && !cur.deleteMarker {
		return storage.Object{}, fmt.Errorf("memstore put %s: %w", key, storage.ErrExists)
	}
	if s.opts.Versioning {
		v.id = s.newID()
		s.objects[key] = append(s.objects[key], v)
	} else {
		s.objects[key] = []*version{v}
	}
	return v.object(key, true), nil
}

// retentionFor validates the requested lock and applies the default one.
func (s *Store) retentionFor(opts storage.PutOptions, now time.Time) (*storage.Retention, error) {
	if !s.opts.ObjectLock {
		if opts.Retention != nil || opts.LegalHold {
			return nil, fmt.Errorf("retention or legal hold without object lock: %w", storage.ErrInvalid)
		}
		return nil, nil
	}
	if opts.Retention == nil {
		if d := s.opts.DefaultRetention; d != nil {
			return &storage.Retention{Mode: d.Mode, Until: now.Add(time.Duration(d.Days) * 24 * time.Hour)}, nil
		}
		return nil, nil
	}
	if err := s.checkRetention(*opts.Retention, now); err != nil {
		return nil, err
	}
	r := *opts.Retention
	return &r, nil
}

// checkRetention refuses an unknown mode or an Until not after now.
func (s *Store) checkRetention(r storage.Retention, now time.Time) error {
	if !slices.Contains(s.opts.Modes, r.Mode) {
		return fmt.Errorf("retention mode %q not one of %v: %w", r.Mode, s.opts.Modes, storage.ErrInvalid)
	}
	if !r.Until.After(now) {
		return fmt.Errorf("retain-until %s is not in the future: %w", r.Until.Format(time.RFC3339), storage.ErrInvalid)
	}
	return nil
}

// newID returns a random version id never handed out before. Callers hold s.mu.
func (s *Store) newID() string {
	for {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		id := hex.EncodeToString(b)
		if !s.usedIDs[id] {
			s.usedIDs[id] = true
			return id
		}
	}
}

// object describes v as the service would. Callers hold s.mu.
func (v *version) object(key string, latest bool) storage.Object {
	o := storage.Object{
		Key:          key,
		VersionID:    v.id,
		LastModified: v.modified,
		IsLatest:     latest,
		DeleteMarker: v.deleteMarker,
	}
	if v.deleteMarker {
		return o
	}
	o.Size = int64(len(v.data))
	o.SHA256 = bytes.Clone(v.sha256)
	o.MD5 = bytes.Clone(v.md5)
	o.LegalHold = v.legalHold
	o.Metadata = maps.Clone(v.metadata)
	if v.retention != nil {
		r := *v.retention
		o.Retention = &r
	}
	return o
}

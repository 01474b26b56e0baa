package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Delete is the test-only delete the Backend interface does not have.
// versionID "" adds a delete marker (allowed even when the current version
// is locked, as on S3; without versioning it removes the object). Deleting
// a version under retention (Clock() before Until) or legal hold is
// ErrLocked; GOVERNANCE (or "unlocked") retention yields to bypassGovernance.
func (s *Store) Delete(ctx context.Context, key, versionID string, bypassGovernance bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore delete %s: %w", key, err)
	}
	now := s.opts.Clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.objects[key]
	if versionID == "" {
		if len(vs) == 0 {
			return fmt.Errorf("memstore delete %s: %w", key, storage.ErrNotFound)
		}
		if !s.opts.Versioning {
			return s.remove(key, 0, now, bypassGovernance)
		}
		s.objects[key] = append(vs, &version{id: s.newID(), deleteMarker: true, modified: now})
		return nil
	}
	for i, v := range vs {
		if v.id == versionID {
			return s.remove(key, i, now, bypassGovernance)
		}
	}
	return fmt.Errorf("memstore delete %s version %q: %w", key, versionID, storage.ErrNotFound)
}

// remove deletes version i of key unless a lock forbids it. Callers hold s.mu.
func (s *Store) remove(key string, i int, now time.Time, bypass bool) error {
	v := s.objects[key][i]
	if v.legalHold {
		return fmt.Errorf("memstore delete %s version %q: under legal hold: %w", key, v.id, storage.ErrLocked)
	}
	if r := v.retention; r != nil && now.Before(r.Until) && !(bypass && bypassable(r.Mode)) {
		return fmt.Errorf("memstore delete %s version %q: %s retention until %s: %w",
			key, v.id, r.Mode, r.Until.Format(time.RFC3339), storage.ErrLocked)
	}
	vs := append(s.objects[key][:i:i], s.objects[key][i+1:]...)
	if len(vs) == 0 {
		delete(s.objects, key)
	} else {
		s.objects[key] = vs
	}
	return nil
}

// PutRetention replaces a version's retention. While a strict (COMPLIANCE)
// lock is in force it may only be extended in the same mode; a GOVERNANCE
// lock may be extended or made strict, and shortened or removed only with
// bypassGovernance. Otherwise ErrLocked. r.Mode "" removes the retention.
func (s *Store) PutRetention(ctx context.Context, key, versionID string, r storage.Retention, bypassGovernance bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore put retention %s: %w", key, err)
	}
	if !s.opts.ObjectLock {
		return fmt.Errorf("memstore put retention %s: no object lock: %w", key, storage.ErrInvalid)
	}
	now := s.opts.Clock()
	if r.Mode != "" {
		if err := s.checkRetention(r, now); err != nil {
			return fmt.Errorf("memstore put retention %s: %w", key, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.readable(key, versionID)
	if err != nil {
		return fmt.Errorf("memstore put retention: %w", err)
	}
	if old := v.retention; old != nil && now.Before(old.Until) {
		weaker := r.Mode == "" || r.Until.Before(old.Until) || (!bypassable(old.Mode) && r.Mode != old.Mode)
		if weaker && (!bypassable(old.Mode) || !bypassGovernance) {
			return fmt.Errorf("memstore put retention %s version %q: %s until %s cannot be shortened or weakened: %w",
				key, v.id, old.Mode, old.Until.Format(time.RFC3339), storage.ErrLocked)
		}
	}
	if r.Mode == "" {
		v.retention = nil
		return nil
	}
	v.retention = &r
	return nil
}

// PutLegalHold sets or clears a version's legal hold (needs object lock).
func (s *Store) PutLegalHold(ctx context.Context, key, versionID string, on bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore put legal hold %s: %w", key, err)
	}
	if !s.opts.ObjectLock {
		return fmt.Errorf("memstore put legal hold %s: no object lock: %w", key, storage.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.readable(key, versionID)
	if err != nil {
		return fmt.Errorf("memstore put legal hold: %w", err)
	}
	v.legalHold = on
	return nil
}

// Corrupt flips the bits of one stored byte of the version (versionID "" =
// current) while its stored checksum stays: bit rot or tampering behind
// the agent's back. It panics when the version is missing or empty, since
// that is a broken test.
func (s *Store) Corrupt(key, versionID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.readable(key, versionID)
	if err != nil || len(v.data) == 0 {
		panic(fmt.Sprintf("memstore: cannot corrupt %s version %q: %v (empty: %v)", key, versionID, err, err == nil))
	}
	v.data[len(v.data)/2] ^= 0xff
}

// bypassable reports whether a retention mode yields to a bypass.
func bypassable(mode string) bool { return mode == "GOVERNANCE" || mode == "unlocked" }

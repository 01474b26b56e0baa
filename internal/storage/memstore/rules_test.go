package memstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/memstore"
)

func putOpts(data []byte, r *storage.Retention, hold bool) storage.PutOptions {
	s := sha256.Sum256(data)
	return storage.PutOptions{SHA256: s[:], Retention: r, LegalHold: hold}
}

// step advances the clock, then deletes the version with or without bypass.
type step struct {
	advance time.Duration
	bypass  bool
	want    error
}

func TestLocksFollowTheInjectedClock(t *testing.T) {
	hour := time.Hour
	cases := []struct {
		name  string
		mode  string
		hold  bool
		steps []step
	}{
		{"compliance retention expires when the clock passes until", "COMPLIANCE", false, []step{{0, true, storage.ErrLocked}, {hour - time.Second, true, storage.ErrLocked}, {time.Second, false, nil}}},
		{"governance retention yields only to a bypass", "GOVERNANCE", false, []step{{0, false, storage.ErrLocked}, {0, true, nil}}},
		{"a legal hold outlasts retention and bypass", "GOVERNANCE", true, []step{{0, true, storage.ErrLocked}, {2 * hour, true, storage.ErrLocked}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, c := newLocked(t, memstore.Options{})
			ctx := t.Context()
			data := []byte("smk")
			o, err := s.Put(ctx, "k", data, putOpts(data, &storage.Retention{Mode: tc.mode, Until: c.now.Add(hour)}, tc.hold))
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range tc.steps {
				c.now = c.now.Add(st.advance)
				err := s.Delete(ctx, "k", o.VersionID, st.bypass)
				if (st.want == nil && err != nil) || !errors.Is(err, st.want) {
					t.Fatalf("step %d: Delete = %v, want %v", i, err, st.want)
				}
			}
		})
	}
}

func TestRetentionChanges(t *testing.T) {
	cases := []struct {
		name   string
		mode   string
		next   storage.Retention
		bypass bool
		want   error
	}{
		{"compliance can be extended", "COMPLIANCE", storage.Retention{Mode: "COMPLIANCE", Until: t0.Add(2 * time.Hour)}, false, nil},
		{"compliance cannot be shortened, not even with bypass", "COMPLIANCE", storage.Retention{Mode: "COMPLIANCE", Until: t0.Add(30 * time.Minute)}, true, storage.ErrLocked},
		{"compliance cannot become governance", "COMPLIANCE", storage.Retention{Mode: "GOVERNANCE", Until: t0.Add(2 * time.Hour)}, true, storage.ErrLocked},
		{"compliance cannot be removed", "COMPLIANCE", storage.Retention{}, true, storage.ErrLocked},
		{"governance cannot be shortened without bypass", "GOVERNANCE", storage.Retention{Mode: "GOVERNANCE", Until: t0.Add(30 * time.Minute)}, false, storage.ErrLocked},
		{"governance can be shortened with bypass", "GOVERNANCE", storage.Retention{Mode: "GOVERNANCE", Until: t0.Add(30 * time.Minute)}, true, nil},
		{"governance can become compliance", "GOVERNANCE", storage.Retention{Mode: "COMPLIANCE", Until: t0.Add(time.Hour)}, false, nil},
		{"an unknown mode is invalid", "GOVERNANCE", storage.Retention{Mode: "FOREVER", Until: t0.Add(2 * time.Hour)}, false, storage.ErrInvalid},
		{"an until in the past is invalid", "GOVERNANCE", storage.Retention{Mode: "GOVERNANCE", Until: t0.Add(-time.Hour)}, true, storage.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newLocked(t, memstore.Options{})
			ctx := t.Context()
			o, err := s.Put(ctx, "k", []byte("x"), putOpts([]byte("x"), &storage.Retention{Mode: tc.mode, Until: t0.Add(time.Hour)}, false))
			if err != nil {
				t.Fatal(err)
			}
			err = s.PutRetention(ctx, "k", o.VersionID, tc.next, tc.bypass)
			if (tc.want == nil && err != nil) || !errors.Is(err, tc.want) {
				t.Fatalf("PutRetention = %v, want %v", err, tc.want)
			}
			st, _ := s.Stat(ctx, "k", o.VersionID)
			if tc.want == nil && (st.Retention == nil || *st.Retention != tc.next) {
				t.Fatalf("retention now %+v, want %+v", st.Retention, tc.next)
			}
		})
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestPutRefusals(t *testing.T) {
	future := &storage.Retention{Mode: "COMPLIANCE", Until: t0.Add(time.Hour)}
	cases := []struct {
		name string
		opts memstore.Options
		po   storage.PutOptions
		want error
	}{
		{"retention without object lock is invalid", memstore.Options{Versioning: true}, storage.PutOptions{Retention: future}, storage.ErrInvalid},
		{"a legal hold without object lock is invalid", memstore.Options{Versioning: true}, storage.PutOptions{LegalHold: true}, storage.ErrInvalid},
		{"a mode the store does not accept is invalid", memstore.Options{Versioning: true, ObjectLock: true, Modes: []string{"GOVERNANCE"}}, storage.PutOptions{Retention: future}, storage.ErrInvalid},
		{"an until in the past is invalid", memstore.Options{Versioning: true, ObjectLock: true}, storage.PutOptions{Retention: &storage.Retention{Mode: "COMPLIANCE", Until: t0}}, storage.ErrInvalid},
		{"a wrong sha256 is refused as a checksum error", memstore.Options{}, storage.PutOptions{SHA256: make([]byte, 32)}, storage.ErrChecksum},
		{"an empty key is invalid", memstore.Options{}, storage.PutOptions{}, storage.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Clock = func() time.Time { return t0 }
			s, err := memstore.New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			key := "k"
			if tc.want == storage.ErrInvalid && tc.po.Retention == nil && !tc.po.LegalHold {
				key = ""
			}
			if _, err := s.Put(t.Context(), key, []byte("x"), tc.po); !errors.Is(err, tc.want) {
				t.Fatalf("Put = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewRefusesObjectLockWithoutVersioning(t *testing.T) {
	if _, err := memstore.New(memstore.Options{ObjectLock: true}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("New = %v, want ErrInvalid", err)
	}
}

func TestTheDefaultRetentionAppliesToAPutWithoutOne(t *testing.T) {
	s, c := newLocked(t, memstore.Options{DefaultRetention: &storage.DefaultRetention{Mode: "COMPLIANCE", Days: 30}})
	o, err := s.Put(t.Context(), "k", []byte("x"), putOpts([]byte("x"), nil, false))
	if err != nil {
		t.Fatal(err)
	}
	want := storage.Retention{Mode: "COMPLIANCE", Until: c.now.Add(30 * 24 * time.Hour)}
	if o.Retention == nil || *o.Retention != want {
		t.Fatalf("retention %+v, want %+v", o.Retention, want)
	}
	p, _ := s.Preflight(t.Context())
	if p.DefaultRetention == nil || p.DefaultRetention.Days != 30 || p.Immutability.State != storage.Proven {
		t.Fatalf("Preflight = %+v", p)
	}
}

func TestDeleteMarkersHideTheKeyButNotTheLockedVersion(t *testing.T) {
	s, c := newLocked(t, memstore.Options{})
	ctx := t.Context()
	o, err := s.Put(ctx, "k", []byte("x"), putOpts([]byte("x"), &storage.Retention{Mode: "COMPLIANCE", Until: c.now.Add(time.Hour)}, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k", "", false); err != nil {
		t.Fatalf("adding a delete marker over a locked version = %v, want success", err)
	}
	if _, err := s.Stat(ctx, "k", ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat of the current version = %v, want ErrNotFound", err)
	}
	var listed []storage.Object
	_ = s.List(ctx, "", func(o storage.Object) error { listed = append(listed, o); return nil })
	if len(listed) != 2 || !listed[0].DeleteMarker || !listed[0].IsLatest || listed[1].VersionID != o.VersionID || listed[1].IsLatest {
		t.Fatalf("List = %+v, want the marker (latest) then the version", listed)
	}
	if err := s.Delete(ctx, "k", listed[0].VersionID, false); err != nil {
		t.Fatalf("removing the delete marker = %v", err)
	}
	if st, err := s.Stat(ctx, "k", ""); err != nil || st.VersionID != o.VersionID {
		t.Fatalf("after removing the marker Stat = %+v, %v; want the version back", st, err)
	}
}

func TestCorruptChangesTheBytesButNotTheStoredChecksum(t *testing.T) {
	s, _ := newLocked(t, memstore.Options{})
	data := []byte("service master key")
	o, err := s.Put(t.Context(), "k", data, putOpts(data, nil, false))
	if err != nil {
		t.Fatal(err)
	}
	s.Corrupt("k", o.VersionID)
	st, _ := s.Stat(t.Context(), "k", o.VersionID)
	r, _ := s.Open(t.Context(), "k", o.VersionID)
	got, _ := io.ReadAll(r)
	want := sha256.Sum256(data)
	if !bytes.Equal(st.SHA256, want[:]) || bytes.Equal(got, data) {
		t.Fatalf("after Corrupt: stored sha256 %x (want %x), bytes changed %v", st.SHA256, want, !bytes.Equal(got, data))
	}
}

func TestInjectedFaultsHitTheNextCallsOnly(t *testing.T) {
	errBoom := errors.New("boom")
	calls := map[string]func(s *memstore.Store) error{
		"preflight": func(s *memstore.Store) error { _, err := s.Preflight(context.Background()); return err },
		"put": func(s *memstore.Store) error {
			_, err := s.Put(context.Background(), "k", []byte("x"), storage.PutOptions{})
			if errors.Is(err, storage.ErrExists) {
				return nil
			}
			return err
		},
		"stat": func(s *memstore.Store) error { _, err := s.Stat(context.Background(), "k", ""); return err },
		"open": func(s *memstore.Store) error { _, err := s.Open(context.Background(), "k", ""); return err },
		"list": func(s *memstore.Store) error {
			return s.List(context.Background(), "", func(storage.Object) error { return nil })
		},
	}
	for op, call := range calls {
		t.Run("a fault on "+op+" fails the next two calls and then clears", func(t *testing.T) {
			s, _ := newLocked(t, memstore.Options{})
			if _, err := s.Put(t.Context(), "k", []byte("x"), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			hooked := 0
			s.Hook(op, func() { hooked++ })
			s.Inject(op, errBoom, 2)
			for i, want := range []error{errBoom, errBoom, nil} {
				if err := call(s); (want == nil && err != nil) || !errors.Is(err, want) {
					t.Fatalf("call %d = %v, want %v", i, err, want)
				}
			}
			wantCount := 3
			if op == "put" {
				wantCount = 4
			}
			if got := s.Requests()[op]; got != wantCount || hooked != 3 {
				t.Fatalf("Requests()[%s] = %d, hook ran %d times; want %d and 3", op, got, hooked, wantCount)
			}
		})
	}
}

func TestWithoutVersioningTheVersionIDIsEmpty(t *testing.T) {
	s, err := memstore.New(memstore.Options{Name: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.Put(t.Context(), "a/k", []byte("x"), storage.PutOptions{})
	if err != nil || o.VersionID != "" {
		t.Fatalf("Put = %+v, %v; want no version id", o, err)
	}
	if got := s.Location("a/k"); got != "mem://plain/a/k" {
		t.Fatalf("Location = %q", got)
	}
	p, _ := s.Preflight(t.Context())
	if p.Versioning.State != storage.Absent || p.Immutability.State != storage.Absent || p.Region.State != storage.Unknown {
		t.Fatalf("Preflight = %+v", p)
	}
}

func TestListMayCallTheStoreFromFn(t *testing.T) {
	s, _ := newLocked(t, memstore.Options{})
	ctx := t.Context()
	for _, k := range []string{"b", "a"} {
		if _, err := s.Put(ctx, k, []byte(k), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	err := s.List(ctx, "", func(o storage.Object) error {
		_, err := s.Stat(ctx, o.Key, o.VersionID) // would deadlock if List held the lock
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

package storagetest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
)

func versioned(h Harness, c storage.Capabilities) (bool, string) {
	return c.Versioning, "the backend does not version objects"
}

func unversioned(h Harness, c storage.Capabilities) (bool, string) {
	return !c.Versioning, "the backend versions objects"
}

func withRetention(h Harness, c storage.Capabilities) (bool, string) {
	return c.Retention && h.Retention != nil, "the backend has no retention or the harness names none"
}

// retention returns the harness's retention, locked for an hour from now
// (whole seconds, as services store it).
func retention(h Harness) *storage.Retention {
	return &storage.Retention{Mode: h.Retention.Mode, Until: time.Now().Add(time.Hour).Truncate(time.Second)}
}

func versionCases() []testCase {
	return []testCase{
		{name: "versioned backends return a version id that stat and open accept", applies: versioned, run: func(t *testing.T, h Harness, b storage.Backend) {
			key, data := uniqueKey(t, "a.key"), payload("version")
			o := put(t, b, key, data)
			if o.VersionID == "" {
				t.Fatal("Put returned no version id")
			}
			st, err := b.Stat(ctxFor(t), key, o.VersionID)
			if err != nil || st.VersionID != o.VersionID {
				t.Fatalf("Stat(version %q) = version %q, %v", o.VersionID, st.VersionID, err)
			}
			if got := read(t, b, key, o.VersionID); !bytes.Equal(got, data) {
				t.Fatal("Open of the version read different bytes")
			}
		}},
		{name: "unversioned backends return no version id and know no other", applies: unversioned, run: func(t *testing.T, h Harness, b storage.Backend) {
			key := uniqueKey(t, "a.key")
			if o := put(t, b, key, payload("plain")); o.VersionID != "" {
				t.Fatalf("Put returned version id %q from an unversioned backend", o.VersionID)
			}
			_, err := b.Stat(ctxFor(t), key, "made-up-version")
			wantErr(t, "Stat of a made-up version", err, storage.ErrNotFound)
		}},
		{name: "retention read back is at least what was asked", applies: withRetention, run: func(t *testing.T, h Harness, b storage.Backend) {
			key, data, want := uniqueKey(t, "a.key"), payload("retention"), retention(h)
			o, err := b.Put(ctxFor(t), key, data, storage.PutOptions{SHA256: sum(data), Retention: want})
			if err != nil {
				t.Fatalf("Put with retention = %v", err)
			}
			st, err := b.Stat(ctxFor(t), key, o.VersionID)
			if err != nil {
				t.Fatalf("Stat = %v", err)
			}
			if st.Retention == nil || st.Retention.Mode != want.Mode || st.Retention.Until.Before(want.Until) {
				t.Fatalf("Stat retention = %+v, want %s until at least %s", st.Retention, want.Mode, want.Until)
			}
		}},
		{name: "a put asking for retention where the backend has none is refused with ErrInvalid", applies: func(h Harness, c storage.Capabilities) (bool, string) {
			return !c.Retention, "the backend has retention"
		}, run: func(t *testing.T, h Harness, b storage.Backend) {
			key, data := uniqueKey(t, "a.key"), payload("no retention")
			r := &storage.Retention{Mode: "COMPLIANCE", Until: time.Now().Add(time.Hour)}
			_, err := b.Put(ctxFor(t), key, data, storage.PutOptions{SHA256: sum(data), Retention: r})
			wantErr(t, "Put with retention", err, storage.ErrInvalid)
			_, err = b.Stat(ctxFor(t), key, "")
			wantErr(t, "Stat after the refused put", err, storage.ErrNotFound)
		}},
		{name: "a locked version cannot be deleted", applies: func(h Harness, c storage.Capabilities) (bool, string) {
			ok, why := withRetention(h, c)
			return ok && h.Delete != nil, why + " or no Delete"
		}, run: func(t *testing.T, h Harness, b storage.Backend) {
			key, data := uniqueKey(t, "a.key"), payload("locked")
			o, err := b.Put(ctxFor(t), key, data, storage.PutOptions{SHA256: sum(data), Retention: retention(h)})
			if err != nil {
				t.Fatalf("Put with retention = %v", err)
			}
			err = h.Delete(ctxFor(t), t, b, key, o.VersionID)
			wantErr(t, "Delete of a locked version", err, storage.ErrLocked)
			if got := read(t, b, key, o.VersionID); !bytes.Equal(got, data) {
				t.Fatal("the locked version's bytes changed")
			}
		}},
		{name: caseDeleteMarker, applies: func(h Harness, c storage.Capabilities) (bool, string) {
			return c.Versioning && h.Delete != nil, "the backend does not version objects or the harness has no Delete"
		}, run: func(t *testing.T, h Harness, b storage.Backend) {
			key, first, second := uniqueKey(t, "a.key"), payload("v1"), payload("v2")
			v1 := put(t, b, key, first)
			if err := h.Delete(ctxFor(t), t, b, key, ""); err != nil {
				t.Fatalf("Delete (marker) = %v", err)
			}
			_, err := b.Stat(ctxFor(t), key, "")
			wantErr(t, "Stat of the current version after a delete marker", err, storage.ErrNotFound)
			if got := read(t, b, key, v1.VersionID); !bytes.Equal(got, first) {
				t.Fatal("the first version is not readable by its id after a delete marker")
			}
			v2 := put(t, b, key, second)
			got := list(t, b, key)
			type entry struct {
				id       string
				marker   bool
				isLatest bool
			}
			want := []entry{{v2.VersionID, false, true}, {"", true, false}, {v1.VersionID, false, false}}
			if h.NoDeleteMarkers {
				want = []entry{{v2.VersionID, false, true}, {v1.VersionID, false, false}}
			}
			if len(got) != len(want) {
				t.Fatalf("List = %d entries, want %d (v2, the delete marker unless the service keeps none, v1)", len(got), len(want))
			}
			for i, w := range want {
				o := got[i]
				if (w.id != "" && o.VersionID != w.id) || o.DeleteMarker != w.marker || o.IsLatest != w.isLatest {
					t.Errorf("List[%d] = version %q marker %v latest %v, want %q %v %v",
						i, o.VersionID, o.DeleteMarker, o.IsLatest, w.id, w.marker, w.isLatest)
				}
			}
			var ids []string
			for _, o := range got {
				ids = append(ids, o.VersionID)
			}
			slices.Sort(ids)
			if len(slices.Compact(ids)) != len(got) {
				t.Errorf("version ids are not unique: %q", ids)
			}
		}},
	}
}

package azstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/azstore/recorded"
	"github.com/keyescrow/keyescrow/internal/storage/storagetest"
	"github.com/keyescrow/keyescrow/internal/testsrv/azurite"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

// recordedStore opens a Store on a recorded Azure account with OAuth from
// the fake Entra ID, ARM on the same server.
func recordedStore(t *testing.T, o recorded.Options) (*Store, *recorded.Server, *counter) {
	t.Helper()
	if o.Container == "" {
		o.Container = "sqlkeys"
	}
	srv := recorded.Start(t, o)
	tok := azurite.StartTokenServer(t, srv.TLS, "11111111-2222-3333-4444-555555555555", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "s~"+testutil.RandHex(6))
	hc, cnt := countingClient(t, srv.TLS.CA)
	cred, err := NewCredential(oauth(tok), hc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{AccountURL: srv.AccountURL, Container: o.Container, Credential: cred, HTTPClient: hc,
		ResourceID: srv.ResourceID, ARMEndpoint: srv.ARMEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	return s, srv, cnt
}

// deleteVersion is Delete Blob (with versionid when given).
func deleteVersion(ctx context.Context, s *Store, key, versionID string) error {
	c, err := s.blobClient(key, versionID)
	if err != nil {
		return err
	}
	_, err = c.Delete(ctx, nil)
	return translate("delete "+key, err)
}

// TestRecordedAzureConformance runs the storage conformance suite against
// the recorded Azure contract layer (replays recorded Azure behaviour:
// versions, version-level immutability), where the versioning and
// retention cases that Azurite cannot run apply. Deleting without a
// version id leaves no delete marker in Azure (NoDeleteMarkers): the current
// version becomes a previous one.
func TestRecordedAzureConformance(t *testing.T) {
	servers := map[storage.Backend]*recorded.Server{}
	storagetest.Run(t, storagetest.Harness{
		New: func(t *testing.T) storage.Backend {
			s, srv, _ := recordedStore(t, recorded.Options{})
			servers[s] = srv
			if _, err := s.Preflight(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if c := s.Proven(); !c.Versioning || !c.Retention {
				t.Fatalf("the recorded account proves %+v", c)
			}
			return s
		},
		Corrupt: func(t *testing.T, b storage.Backend, key, versionID string) {
			if !servers[b].Corrupt("sqlkeys", key, versionID) {
				t.Fatalf("no version %q of %s to corrupt", versionID, key)
			}
		},
		Delete: func(ctx context.Context, t *testing.T, b storage.Backend, key, versionID string) error {
			return deleteVersion(ctx, b.(*Store), key, versionID)
		},
		NoDeleteMarkers: true,
		Retention:       &storage.Retention{Mode: ModeLocked},
	})
}

func TestRecordedAzurePreflightProvesImmutabilityVersioningAndRegion(t *testing.T) {
	s, _, cnt := recordedStore(t, recorded.Options{Region: "northeurope"})
	p, err := s.Preflight(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Immutability.State != storage.Proven || p.Versioning.State != storage.Proven || p.Region.State != storage.Proven || p.Region.Value != "northeurope" {
		t.Fatalf("preflight against recorded Azure: %+v", p)
	}
	mustContain(t, "notes", strings.Join(p.Notes, "; "), "Standard_RAGZRS", "secondary region westeurope")
	if n := len(blobRequests(cnt.take())); n != 4 {
		t.Errorf("preflight sent %d requests, want 4 (container, account info, ARM account, ARM blob service)", n)
	}
}

func TestRecordedAzurePreflightWithoutARMReadNamesTheMissingAction(t *testing.T) {
	s, _, _ := recordedStore(t, recorded.Options{DenyARM: true})
	p, err := s.Preflight(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Region.State != storage.Unknown {
		t.Fatalf("region = %+v", p.Region)
	}
	mustContain(t, "region detail", p.Region.Detail, "AuthorizationFailed", "Microsoft.Storage/storageAccounts/read")
	// The container still proves immutability, hence versioning.
	if p.Immutability.State != storage.Proven || p.Versioning.State != storage.Proven {
		t.Fatalf("immutability %+v versioning %+v", p.Immutability, p.Versioning)
	}
}

func TestRecordedAzureContainerWithoutImmutabilityIsAbsent(t *testing.T) {
	s, _, _ := recordedStore(t, recorded.Options{NotImmutable: true})
	p, err := s.Preflight(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Immutability.State != storage.Absent || !strings.Contains(p.Immutability.Detail, "not immutable") {
		t.Fatalf("immutability = %+v", p.Immutability)
	}
}

// TestRecordedAzureLockedWriteIsProvenAndHolds replays recorded Azure
// behaviour: a locked version with a legal hold gets a version id, reads
// back its policy (lower-case mode, until-date) and hold, and refuses
// delete (409 BlobImmutableDueToLegalHold / BlobImmutableDueToPolicy) and
// overwrite.
func TestRecordedAzureLockedWriteIsProvenAndHolds(t *testing.T) {
	s, _, cnt := recordedStore(t, recorded.Options{})
	lockedWriteHolds(t, s, cnt, ModeLocked, true, 30*24*time.Hour)
	s2, _, cnt2 := recordedStore(t, recorded.Options{})
	lockedWriteHolds(t, s2, cnt2, ModeUnlocked, false, time.Hour)
}

// lockedWriteHolds is shared by the recorded layer and a real account: a
// write with a policy (and a legal hold when hold) gets a version id,
// reads back its policy and hold, is proven in exactly 3 requests, and
// refuses delete (409 BlobImmutableDueToLegalHold / BlobImmutableDueToPolicy)
// and overwrite.
func lockedWriteHolds(t *testing.T, s *Store, cnt *counter, mode string, hold bool, lock time.Duration) {
	t.Helper()
	if _, err := s.Preflight(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	cnt.take()
	prefix := "keyescrow-test/" + testutil.RandHex(6) + "/"
	data := []byte("service master key " + testutil.RandHex(4))
	o := putOpts(data)
	until := time.Now().Add(lock).Truncate(time.Second).UTC()
	o.Retention, o.LegalHold = &storage.Retention{Mode: mode, Until: until}, hold
	obj, err := s.Put(ctxT(t), prefix+"smk.key", data, o)
	if err != nil {
		t.Fatal(err)
	}
	if obj.VersionID == "" {
		t.Fatal("no x-ms-version-id")
	}
	st, err := s.Stat(ctxT(t), prefix+"smk.key", obj.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	if st.VersionID != obj.VersionID || !st.IsLatest || st.Retention == nil || st.Retention.Mode != mode || st.Retention.Until.Before(until) || st.LegalHold != hold {
		t.Fatalf("Stat = %+v retention %+v", st, st.Retention)
	}
	if !bytes.Equal(st.SHA256, o.SHA256) || !bytes.Equal(st.MD5, o.MD5) {
		t.Fatal("checksums read back differ")
	}
	r, err := s.Open(ctxT(t), prefix+"smk.key", obj.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("read back different bytes")
	}
	if w := blobRequests(cnt.take()); len(w) != 3 {
		t.Errorf("write and proof sent %q, want 3 requests", w)
	}
	err = deleteVersion(ctxT(t), s, prefix+"smk.key", obj.VersionID)
	want := "BlobImmutableDueToPolicy"
	if hold {
		want = "BlobImmutableDueToLegalHold"
	}
	if !errors.Is(err, storage.ErrLocked) || !strings.Contains(err.Error(), want) {
		t.Fatalf("delete of a locked version = %v, want %s", err, want)
	}
	if _, err := s.Put(ctxT(t), prefix+"smk.key", data, putOpts(data)); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("overwrite = %v, want ErrExists", err)
	}
}

func TestRecordedAzureRecordingsNameTheirProvenance(t *testing.T) {
	names := recorded.Names()
	if len(names) < 10 {
		t.Fatalf("only %d recordings", len(names))
	}
	for _, n := range names {
		r, err := recorded.Load(n)
		if err != nil || r.Provenance == "" || r.Status == 0 || r.Operation == "" {
			t.Errorf("%s: %v %+v", n, err, r)
		}
		if r.Status >= 400 && r.Headers["x-ms-error-code"] == "" && !strings.HasPrefix(n, "arm-") {
			t.Errorf("%s: an error recording without x-ms-error-code", n)
		}
	}
}

// TestRecordedAzureDeleteKeepsVersions replays recorded Azure behaviour
// for a delete without a version id on a versioned account: the current
// version becomes a previous version (no delete marker), readable by id,
// and the name can be written again; listing shows both versions, newest
// first.
func TestRecordedAzureDeleteKeepsVersions(t *testing.T) {
	s, _, _ := recordedStore(t, recorded.Options{})
	if _, err := s.Preflight(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	v1data, v2data := []byte("v1"), []byte("v2")
	v1, err := s.Put(ctxT(t), "a.key", v1data, putOpts(v1data))
	if err != nil {
		t.Fatal(err)
	}
	if err := deleteVersion(ctxT(t), s, "a.key", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctxT(t), "a.key", ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat of the deleted current version = %v", err)
	}
	if st, err := s.Stat(ctxT(t), "a.key", v1.VersionID); err != nil || st.IsLatest {
		t.Fatalf("Stat of v1 by id = %+v, %v", st, err)
	}
	v2, err := s.Put(ctxT(t), "a.key", v2data, putOpts(v2data))
	if err != nil {
		t.Fatal(err)
	}
	var got []storage.Object
	if err := s.List(ctxT(t), "a.key", func(o storage.Object) error { got = append(got, o); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].VersionID != v2.VersionID || !got[0].IsLatest || got[1].VersionID != v1.VersionID || got[1].IsLatest {
		t.Fatalf("List = %+v", got)
	}
}

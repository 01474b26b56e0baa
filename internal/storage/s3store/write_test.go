package s3store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// readBack returns the bytes Open gives for the version.
func readBack(t *testing.T, s storage.Backend, key, versionID string) []byte {
	t.Helper()
	r, err := s.Open(t.Context(), key, versionID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// The write and its proof are exactly three requests: PutObject, HeadObject
// (which carries the lock headers), GetObject.
func TestWriteAndProofAreThreeRequests(t *testing.T) {
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3srv.Start(t, kind, serverRegion)
			var log requestLog
			s := open(t, srv, srv.NewBucket(t, s3srv.Bucket{ObjectLock: true}), "", log.option)
			data := []byte("key bytes")
			until := time.Now().Add(time.Hour).Truncate(time.Second)
			o, err := s.Put(t.Context(), "k/a.key", data, storage.PutOptions{SHA256: sum(data),
				Retention: &storage.Retention{Mode: "COMPLIANCE", Until: until}, LegalHold: true})
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.Stat(t.Context(), "k/a.key", o.VersionID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Retention == nil || st.Retention.Mode != "COMPLIANCE" || st.Retention.Until.Before(until) || !st.LegalHold || !bytes.Equal(st.SHA256, sum(data)) {
				t.Fatalf("Stat = %+v", st)
			}
			if !bytes.Equal(readBack(t, s, "k/a.key", o.VersionID), data) {
				t.Fatal("read back different bytes")
			}
			if ops := log.take(); !slices.Equal(ops, []string{"GetObject", "HeadObject", "PutObject"}) {
				t.Fatalf("requests %q, want exactly PutObject, HeadObject, GetObject", ops)
			}
		})
	}
}

// A PutObject whose response is lost is retried; the retry meets 412 for
// the first attempt, which Put recognises as its own: one object, no error.
// Somebody else's object under the key stays ErrExists.
func TestARetryAfterALostResponseMakesNoSecondObject(t *testing.T) {
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3srv.Start(t, kind, serverRegion)
			bucket := srv.NewBucket(t, s3srv.Bucket{ObjectLock: true})
			proxy := s3srv.NewProxy(t, srv)
			s := open(t, srv, bucket, proxy.Endpoint)
			data := []byte("key bytes")
			proxy.DropPutReply(1)
			o, err := s.Put(t.Context(), "k/a.key", data, storage.PutOptions{SHA256: sum(data)})
			if err != nil {
				t.Fatalf("Put after a lost response = %v", err)
			}
			out, err := srv.Admin("").ListObjectVersions(t.Context(), &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Versions) != 1 || aws.ToString(out.Versions[0].VersionId) != o.VersionID {
				t.Fatalf("versions %d (want 1, %q)", len(out.Versions), o.VersionID)
			}
			puts := 0
			for _, q := range proxy.Requests() {
				if q.Action == "s3:PutObject" {
					puts++
				}
			}
			if puts != 2 {
				t.Fatalf("PutObject sent %d times, want 2 (the lost one and its retry)", puts)
			}
			// The same bytes by another writer: not ours, so ErrExists.
			_, err = s.Put(t.Context(), "k/a.key", data, storage.PutOptions{SHA256: sum(data)})
			if !errors.Is(err, storage.ErrExists) {
				t.Fatalf("a second Put of the same bytes = %v, want ErrExists", err)
			}
		})
	}
}

// A body corrupted between the agent and the server is refused by the
// server (x-amz-checksum-sha256 and Content-MD5 travel as headers), and
// nothing is stored.
func TestABodyCorruptedInFlightIsRefused(t *testing.T) {
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3srv.Start(t, kind, serverRegion)
			proxy := s3srv.NewProxy(t, srv)
			s := open(t, srv, srv.NewBucket(t, s3srv.Bucket{ObjectLock: true}), proxy.Endpoint)
			data := bytes.Repeat([]byte("k"), 100)
			proxy.TamperPut(10)
			_, err := s.Put(t.Context(), "k/a.key", data, storage.PutOptions{SHA256: sum(data)})
			if !errors.Is(err, storage.ErrChecksum) {
				t.Fatalf("Put = %v, want ErrChecksum", err)
			}
			t.Logf("%s refuses a corrupted body: %v", kind, err)
			if _, err := s.Stat(t.Context(), "k/a.key", ""); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("Stat after the refused put = %v", err)
			}
		})
	}
}

// TestLockedVersionCannotBeDeleted: the servers refuse to delete a locked
// version (versitygw 403 AccessDenied, MinIO 400 InvalidRequest) and it
// still reads back.
func TestLockedVersionCannotBeDeleted(t *testing.T) {
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3srv.Start(t, kind, serverRegion)
			bucket := srv.NewBucket(t, s3srv.Bucket{ObjectLock: true})
			s := open(t, srv, bucket, "")
			data := []byte("locked")
			o, err := s.Put(t.Context(), "k/a.key", data, storage.PutOptions{SHA256: sum(data),
				Retention: &storage.Retention{Mode: "COMPLIANCE", Until: time.Now().Add(time.Hour)}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := deleteVersion(ctx, srv, bucket, "k/a.key", o.VersionID); !errors.Is(err, storage.ErrLocked) {
				t.Fatalf("delete of a locked version = %v, want refused", err)
			}
			if !bytes.Equal(readBack(t, s, "k/a.key", o.VersionID), data) {
				t.Fatal("the locked version changed")
			}
		})
	}
}

package s3store_test

import (
	"context"
	"testing"

	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/storagetest"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// The conformance suite against each real server, over HTTPS, on a fresh
// versioned Object Lock bucket per case.
func TestConformance(t *testing.T) {
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3srv.Start(t, kind, serverRegion)
			buckets := map[storage.Backend]string{}
			h := storagetest.Harness{
				New: func(t *testing.T) storage.Backend {
					bucket := srv.NewBucket(t, s3srv.Bucket{ObjectLock: true})
					s := open(t, srv, bucket, "")
					buckets[s] = bucket
					return s
				},
				Delete: func(ctx context.Context, t *testing.T, b storage.Backend, key, versionID string) error {
					return deleteVersion(ctx, srv, buckets[b], key, versionID)
				},
				Retention: &storage.Retention{Mode: "GOVERNANCE"},
			}
			if kind == s3srv.VersityGW {
				// versitygw v1.8.0 answers If-None-Match: * with 412 when the
				// key's current version is a delete marker (AWS and MinIO
				// accept the write). The backend stays create-only rather than
				// retry without the condition, so the delete cases run on
				// MinIO only; TestLockedVersionCannotBeDeleted covers the lock
				// on versitygw too.
				t.Log("versitygw: delete cases not run (If-None-Match over a delete marker is refused by versitygw v1.8.0)")
				h.Delete = nil
			}
			storagetest.Run(t, h)
		})
	}
}

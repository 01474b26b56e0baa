package s3store_test

import (
	"context"
	"os"
	"testing"

	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/s3store"
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
				// retry without the condition.
				h.ServerBugs = map[string]string{storagetest.CaseDeleteMarker: "versitygw v1.8.0 refuses If-None-Match: * over a delete marker with 412; MinIO runs the case"}
			}
			storagetest.Run(t, h)
		})
	}
	bucket, region := os.Getenv("KEYESCROW_TEST_S3_BUCKET"), os.Getenv("KEYESCROW_TEST_S3_REGION")
	if bucket == "" {
		t.Log("KEYESCROW_TEST_S3_BUCKET is unset: conformance proven against versitygw and MinIO only")
		return
	}
	t.Run("real S3", func(t *testing.T) {
		if region == "" {
			t.Fatal("with KEYESCROW_TEST_S3_BUCKET set, set KEYESCROW_TEST_S3_REGION (the bucket's region)")
		}
		for k, v := range machineAWS { // on purpose: the real account's credentials
			t.Setenv(k, v)
		}
		storagetest.Run(t, storagetest.Harness{
			New: func(t *testing.T) storage.Backend {
				s, err := s3store.New(t.Context(), s3store.Options{Bucket: bucket, Region: region, Profile: os.Getenv("KEYESCROW_TEST_S3_PROFILE")})
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			// No Delete: the agent's policy has none, and copies stay locked.
			Retention: &storage.Retention{Mode: "GOVERNANCE"},
		})
	})
}

package s3store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/middleware"

	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/s3store"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// requestLog records the operation of every attempt the SDK sends.
type requestLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *requestLog) option(o *s3store.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("keyescrow-test-count",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				l.mu.Lock()
				l.ops = append(l.ops, middleware.GetOperationName(ctx))
				l.mu.Unlock()
				return next.HandleFinalize(ctx, in)
			}), middleware.After)
	})
}

func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.ops)
	slices.Sort(out)
	l.ops = nil
	return out
}

func TestPreflightReportsTheBucketsFactsInFourRequests(t *testing.T) {
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3srv.Start(t, kind, serverRegion)
			for _, tc := range []struct {
				name                         string
				bucket                       s3srv.Bucket
				versioning, lock             storage.State
				defaultMode                  string
				defaultDays                  int
				versioningDetail, lockDetail string
			}{
				{name: "lock bucket with a default retention", bucket: s3srv.Bucket{ObjectLock: true, DefaultMode: "COMPLIANCE", DefaultDays: 7},
					versioning: storage.Proven, lock: storage.Proven, defaultMode: "COMPLIANCE", defaultDays: 7},
				{name: "lock bucket without a default", bucket: s3srv.Bucket{ObjectLock: true}, versioning: storage.Proven, lock: storage.Proven},
				{name: "versioned bucket", bucket: s3srv.Bucket{Versioning: true}, versioning: storage.Proven, lock: storage.Absent, lockDetail: "object-lock"},
				{name: "plain bucket", bucket: s3srv.Bucket{}, versioning: storage.Absent, lock: storage.Absent, versioningDetail: "put-bucket-versioning"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var log requestLog
					s := open(t, srv, srv.NewBucket(t, tc.bucket), "", log.option)
					p, err := s.Preflight(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					if p.Region.State != storage.Proven || p.Region.Value != serverRegion {
						t.Errorf("region %+v, want proven %s", p.Region, serverRegion)
					}
					if p.Versioning.State != tc.versioning || !strings.Contains(p.Versioning.Detail, tc.versioningDetail) {
						t.Errorf("versioning %+v, want %v naming %q", p.Versioning, tc.versioning, tc.versioningDetail)
					}
					if p.Immutability.State != tc.lock || !strings.Contains(p.Immutability.Detail, tc.lockDetail) {
						t.Errorf("immutability %+v, want %v naming %q", p.Immutability, tc.lock, tc.lockDetail)
					}
					switch d := p.DefaultRetention; {
					case tc.defaultMode == "" && d != nil:
						t.Errorf("default retention %+v, want none", d)
					case tc.defaultMode != "" && (d == nil || d.Mode != tc.defaultMode || d.Days != tc.defaultDays):
						t.Errorf("default retention %+v, want %s %d", d, tc.defaultMode, tc.defaultDays)
					}
					if p.Writable.State == storage.Absent || len(p.Notes) == 0 || !strings.HasPrefix(p.Notes[0], "replication: ") {
						t.Errorf("writable %+v notes %q", p.Writable, p.Notes)
					}
					want := []string{"GetBucketReplication", "GetBucketVersioning", "GetObjectLockConfiguration", "HeadBucket"}
					if got := log.take(); !slices.Equal(got, want) {
						t.Errorf("preflight requests %q, want %q", got, want)
					}
				})
			}
			t.Run("a missing bucket is ErrNotFound naming the fix", func(t *testing.T) {
				_, err := open(t, srv, "no-such-bucket", "").Preflight(t.Context())
				if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "create it") {
					t.Fatalf("Preflight = %v", err)
				}
			})
			t.Run("rejected credentials are ErrAuth naming the fix", func(t *testing.T) {
				s := open(t, srv, srv.NewBucket(t, s3srv.Bucket{ObjectLock: true}), "", func(o *s3store.Options) {
					o.Credentials = credentials.NewStaticCredentialsProvider(srv.AccessKey, "not-the-secret", "")
				})
				_, err := s.Preflight(t.Context())
				if !errors.Is(err, storage.ErrAuth) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") || strings.Contains(err.Error(), srv.SecretKey) {
					t.Fatalf("Preflight = %v", err)
				}
			})
			t.Run("a region other than the bucket's is reported as the bucket's", func(t *testing.T) {
				s := open(t, srv, srv.NewBucket(t, s3srv.Bucket{ObjectLock: true}), "", func(o *s3store.Options) { o.Region = "ap-south-1" })
				p, err := s.Preflight(t.Context())
				if err != nil || p.Region.State != storage.Proven || p.Region.Value != serverRegion || !strings.Contains(p.Versioning.Detail, "correct region") {
					t.Fatalf("Preflight = %+v, %v", p, err)
				}
			})
		})
	}
}

func TestNoCredentialsFailsNamingEveryWayToGiveThem(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("AWS_CONFIG_FILE", dir+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/none")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9") // nothing listens: IMDS fails at once
	s, err := s3store.New(t.Context(), s3store.Options{Bucket: "b", Region: "eu-central-1", Endpoint: "https://127.0.0.1:9", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Preflight(t.Context())
	if !errors.Is(err, storage.ErrAuth) {
		t.Fatalf("Preflight = %v, want ErrAuth", err)
	}
	for _, w := range []string{"AWS_ACCESS_KEY_ID", "profile", "SSO", "web identity", "IMDS"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the message does not name %q: %v", w, err)
		}
	}
}

func TestAMissingProfileIsNamed(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/none")
	_, err := s3store.New(t.Context(), s3store.Options{Bucket: "b", Region: "eu-central-1", Profile: "keyescrow-nope"})
	if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), `"keyescrow-nope"`) {
		t.Fatalf("New = %v", err)
	}
}

func TestACAFileWithoutACertificateIsRefused(t *testing.T) {
	f := t.TempDir() + "/ca.pem"
	if err := writeFile(f, "not a certificate"); err != nil {
		t.Fatal(err)
	}
	_, err := s3store.New(t.Context(), s3store.Options{Bucket: "b", Region: "eu-central-1", CAFile: f,
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("New = %v", err)
	}
}

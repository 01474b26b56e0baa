package s3store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/deadline"
	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/s3store"
	"github.com/keyescrow/keyescrow/internal/testsrv/faultproxy"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// within fails the test when fn has not returned within limit.
func within(t *testing.T, limit time.Duration, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("still running after %v", limit)
		return nil
	}
}

func wantLimit(t *testing.T, err error, key string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), key) || !errors.Is(err, storage.ErrUnavailable) || errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want a timeout naming %s", err, key)
	}
}

// TestS3RequestsThatStallEndAtTheirLimits: versitygw behind a stalling
// proxy; the store's HTTP client and deadline.Bound end each stall at the
// limit it hits, naming it.
func TestS3RequestsThatStallEndAtTheirLimits(t *testing.T) {
	srv := s3srv.Start(t, s3srv.VersityGW, serverRegion)
	bucket := srv.NewBucket(t, s3srv.Bucket{Versioning: true})
	fp := faultproxy.NewHTTP(t, srv.Endpoint, srv.TLS.CA, srv.TLS)
	l := deadline.Limits{Connect: time.Second, Request: 3 * time.Second, Idle: 500 * time.Millisecond, Run: time.Minute}
	st := open(t, srv, bucket, fp.Endpoint, func(o *s3store.Options) { o.Limits = l })
	b := deadline.Bound(st, l)
	ctx := context.Background()
	data := []byte("key bytes that stall")
	sum := sha256.Sum256(data)
	obj, err := b.Put(ctx, "k", data, storage.PutOptions{SHA256: sum[:]})
	if err != nil {
		t.Fatal(err)
	}
	read := func() error {
		rc, err := b.Open(ctx, "k", obj.VersionID)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.ReadAll(rc)
		return err
	}
	t.Run("the GetObject body stalls after its headers", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.StallBody, Op: faultproxy.OpGet, Nth: 1})
		wantLimit(t, within(t, 10*time.Second, read), "timeouts.idle")
	})
	t.Run("the GetObject body trickles under the idle limit", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.Trickle, Op: faultproxy.OpGet, Nth: 1, Times: 100, Every: 300 * time.Millisecond})
		wantLimit(t, within(t, 10*time.Second, read), "timeouts.request")
	})
	t.Run("HeadObject's answer never comes", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.Stall, Op: faultproxy.OpHead, Nth: 1, Times: 100})
		wantLimit(t, within(t, 10*time.Second, func() error { _, err := b.Stat(ctx, "k", obj.VersionID); return err }), "timeouts.")
	})
	t.Run("one stalled PutObject attempt is retried and the copy is stored once", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.Stall, Op: faultproxy.OpPut, Nth: 1})
		err := within(t, 10*time.Second, func() error { _, err := b.Put(ctx, "k2", data, storage.PutOptions{SHA256: sum[:]}); return err })
		if err != nil {
			t.Fatalf("a retried PutObject failed: %v", err)
		}
	})
	fp.Arm(nil)
}

package azstore

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/deadline"
	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/testsrv/azurite"
	"github.com/keyescrow/keyescrow/internal/testsrv/faultproxy"
)

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

// TestAzureRequestsThatStallEndAtTheirLimits: Azurite (HTTPS) behind a
// stalling proxy; the store's HTTP client and deadline.Bound end each stall
// at the limit it hits, naming it.
func TestAzureRequestsThatStallEndAtTheirLimits(t *testing.T) {
	srv := azurite.Start(t, azurite.Options{HTTPS: true})
	name := newContainer(t, srv)
	fp := faultproxy.NewHTTP(t, strings.TrimSuffix(srv.AccountURL, "/"+azurite.AccountName), srv.CAFile, srv.TLS)
	l := deadline.Limits{Connect: time.Second, Request: 3 * time.Second, Idle: 500 * time.Millisecond, Run: time.Minute}
	hc, err := NewHTTPClientWith(srv.CAFile, l)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := NewCredential(sharedKey(), hc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := New(Options{AccountURL: fp.Endpoint + "/" + azurite.AccountName, Container: name, Credential: cred, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	b := deadline.Bound(st, l)
	ctx := context.Background()
	data := []byte("key bytes that stall")
	sum, m := sha256.Sum256(data), md5.Sum(data)
	if _, err := b.Put(ctx, "k", data, storage.PutOptions{SHA256: sum[:], MD5: m[:]}); err != nil {
		t.Fatal(err)
	}
	read := func() error {
		rc, err := b.Open(ctx, "k", "")
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.ReadAll(rc)
		return err
	}
	t.Run("the Get Blob body stalls after its headers", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.StallBody, Op: faultproxy.OpGet, Nth: 1})
		wantLimit(t, within(t, 10*time.Second, read), "timeouts.idle")
	})
	t.Run("the Get Blob body trickles under the idle limit", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.Trickle, Op: faultproxy.OpGet, Nth: 1, Times: 100, Every: 300 * time.Millisecond})
		wantLimit(t, within(t, 10*time.Second, read), "timeouts.request")
	})
	t.Run("Get Blob Properties never answers", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.Stall, Op: faultproxy.OpHead, Nth: 1, Times: 100})
		wantLimit(t, within(t, 10*time.Second, func() error { _, err := b.Stat(ctx, "k", ""); return err }), "timeouts.")
	})
	t.Run("Put Blob never answers", func(t *testing.T) {
		fp.Arm(&faultproxy.Fault{Kind: faultproxy.Stall, Op: faultproxy.OpPut, Nth: 1, Times: 100})
		wantLimit(t, within(t, 10*time.Second, func() error {
			_, err := b.Put(ctx, "k2", data, storage.PutOptions{SHA256: sum[:], MD5: m[:]})
			return err
		}), "timeouts.")
	})
	fp.Arm(nil)
}

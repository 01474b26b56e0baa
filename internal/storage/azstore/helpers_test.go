package azstore

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/testsrv/azurite"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

// counter counts the requests an http.Client sends, per host.
type counter struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []string // "METHOD host path?comp/versionid"
	n    atomic.Int64
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	q := r.URL.Query()
	d := r.Method + " " + r.URL.Path
	for _, k := range []string{"restype", "comp", "versionid"} {
		if q.Has(k) {
			d += " " + k + "=" + q.Get(k)
		}
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, d)
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

func (c *counter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.reqs
	c.reqs = nil
	return out
}

// countingClient returns an HTTP client trusting caFile whose requests
// are counted.
func countingClient(t *testing.T, caFile string) (*http.Client, *counter) {
	return countingClientB(t, caFile)
}

func countingClientB(t testing.TB, caFile string) (*http.Client, *counter) {
	t.Helper()
	hc, err := NewHTTPClient(caFile)
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{base: hc.Transport}
	return &http.Client{Transport: c}, c
}

// newContainer creates a fresh container on srv with the development key
// and returns its name.
func newContainer(t *testing.T, srv *azurite.Server) string {
	t.Helper()
	name := "t" + testutil.RandHex(8)
	c := srv.Container(t, name)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := c.Create(ctx, nil); err != nil {
		t.Fatalf("creating container %s: %v", name, err)
	}
	return name
}

// containerSAS returns a service SAS for the container with perms.
func containerSAS(t *testing.T, name string, perms sas.ContainerPermissions) string {
	t.Helper()
	key, err := container.NewSharedKeyCredential(azurite.AccountName, azurite.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
		ContainerName: name, Permissions: perms.String()}.SignWithSharedKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

func sharedKey() Auth {
	return Auth{Mode: AuthSharedKey, AccountKey: secret.New(azurite.AccountKey)}
}

// open returns a Store for the container with a, over hc.
func open(t *testing.T, srv *azurite.Server, name string, a Auth, hc *http.Client) *Store {
	t.Helper()
	if hc == nil {
		var err error
		if hc, err = NewHTTPClient(srv.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	accountURL := srv.AccountURL
	cred, err := NewCredential(a, hc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{AccountURL: accountURL, Container: name, Credential: cred, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// proven is a Store whose Capabilities are what its container proved in
// Preflight, so the conformance suite checks the guarantees the container
// really gives (Azurite: none of versions or locks).
type proven struct{ *Store }

func (p proven) Capabilities() storage.Capabilities { return p.Proven() }

func mustContain(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not say %q: %s", what, w, got)
		}
	}
}

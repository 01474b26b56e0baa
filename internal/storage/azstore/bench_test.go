package azstore

import (
	"crypto/rand"
	"fmt"
	"io"
	"testing"

	"github.com/keyescrow/keyescrow/internal/testsrv/azurite"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

// BenchmarkAzuriteWriteAndProve measures one copy as the pipeline makes
// it over HTTPS with OAuth: Put Blob, Get Blob Properties, Get Blob of a
// 2 KiB key file, and reports the requests per copy.
func BenchmarkAzuriteWriteAndProve(b *testing.B) {
	srv := azurite.Start(b, azurite.Options{HTTPS: true})
	tok := azurite.StartTokenServer(b, srv.TLS, "11111111-2222-3333-4444-555555555555", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "s~"+testutil.RandHex(6))
	hc, cnt := countingClientB(b, srv.CAFile)
	name := "bench" + testutil.RandHex(6)
	if _, err := srv.Container(b, name).Create(b.Context(), nil); err != nil {
		b.Fatal(err)
	}
	cred, err := NewCredential(oauth(tok), hc)
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{AccountURL: srv.AccountURL, Container: name, Credential: cred, HTTPClient: hc})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Preflight(b.Context()); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 2048)
	_, _ = rand.Read(data)
	opts := putOpts(data)
	cnt.take()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		key := fmt.Sprintf("h/i/%d.key", i)
		o, err := s.Put(b.Context(), key, data, opts)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Stat(b.Context(), key, o.VersionID); err != nil {
			b.Fatal(err)
		}
		r, err := s.Open(b.Context(), key, o.VersionID)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, r)
		r.Close()
	}
	b.ReportMetric(float64(len(blobRequests(cnt.take())))/float64(b.N), "requests/copy")
}

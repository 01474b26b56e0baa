package testtls

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"testing"
)

// The files serve HTTPS on 127.0.0.1 that a client trusting only ca.pem
// accepts, and a client with the system roots refuses.
func TestTheCertificateServesTLSTrustedOnlyThroughItsCA(t *testing.T) {
	f, err := Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := Serve(t, f, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))

	ca, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("ca.pem holds no certificate")
	}
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := trusting.Get(srv.URL)
	if err != nil {
		t.Fatalf("a client trusting ca.pem: %v", err)
	}
	resp.Body.Close()
	if _, err := (&http.Client{Transport: &http.Transport{}}).Get(srv.URL); err == nil {
		t.Error("a client without ca.pem accepted the throw-away certificate")
	}
	if st, err := os.Stat(f.Key); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key.pem mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
}

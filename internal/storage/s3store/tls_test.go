package s3store

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/testtls"
)

// The verification that replaces crypto/tls's own when ca_file is set
// accepts exactly what one pool of ca_file, AWS_CA_BUNDLE and the system
// roots would.
func TestVerifyTrustsCAFileBundleAndSystemRootsOnly(t *testing.T) {
	ours := newCert(t)
	other := newCert(t)
	own := x509.NewCertPool()
	own.AddCert(ours.Leaf)
	bundle := x509.NewCertPool()
	bundle.AddCert(other.Leaf)
	unionCalls := 0
	union := func() *x509.CertPool { unionCalls++; return x509.NewCertPool() } // no system root signs these
	state := func(c tls.Certificate, name string) tls.ConnectionState {
		return tls.ConnectionState{ServerName: name, PeerCertificates: []*x509.Certificate{c.Leaf}}
	}
	for _, tc := range []struct {
		name       string
		cs         tls.ConnectionState
		endpointIP string
		bundle     *x509.CertPool
		ok         bool
		unionAsked bool
	}{
		{name: "a ca_file certificate for the name asked is trusted without the system roots", cs: state(ours, "localhost"), ok: true},
		{name: "an IP literal is checked against the endpoint's IP", cs: state(ours, ""), endpointIP: "127.0.0.1", ok: true},
		{name: "an IP literal the certificate does not name is refused", cs: state(ours, ""), endpointIP: "127.0.0.2"},
		{name: "no server name and no endpoint IP is refused", cs: state(ours, "")},
		{name: "a name the certificate does not hold is refused", cs: state(ours, "example.com")},
		{name: "an unknown CA is refused after the system roots are asked", cs: state(other, "localhost"), unionAsked: true},
		{name: "AWS_CA_BUNDLE's certificates are trusted too", cs: state(other, "localhost"), bundle: bundle, ok: true},
		{name: "no certificate is refused", cs: tls.ConnectionState{ServerName: "localhost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unionCalls = 0
			err := verify(tc.cs, tc.endpointIP, own, tc.bundle, union)
			if tc.ok != (err == nil) {
				t.Fatalf("verify = %v, want ok %v", err, tc.ok)
			}
			var cve *tls.CertificateVerificationError
			if err != nil && !errors.As(err, &cve) {
				t.Fatalf("verify = %T %v, want a *tls.CertificateVerificationError", err, err)
			}
			if (unionCalls > 0) != tc.unionAsked {
				t.Fatalf("system roots asked %d times, want asked %v", unionCalls, tc.unionAsked)
			}
		})
	}
}

func TestTLSConfigVerifiesItselfOnlyWithCAFile(t *testing.T) {
	cfg, err := tlsConfig("", "https://s3.eu-central-1.amazonaws.com")
	if err != nil || cfg.InsecureSkipVerify || cfg.VerifyConnection != nil {
		t.Fatalf("without ca_file: %+v, %v; want crypto/tls's own verification", cfg, err)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsConfig(bad, ""); err == nil {
		t.Fatal("a ca_file without a certificate was accepted")
	}
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: newCert(t).Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = tlsConfig(good, "https://127.0.0.1:9000")
	if err != nil || !cfg.InsecureSkipVerify || cfg.VerifyConnection == nil {
		t.Fatalf("with ca_file: %v; want verification in VerifyConnection", err)
	}
}

func newCert(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := testtls.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

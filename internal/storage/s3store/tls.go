package s3store

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// tlsConfig is the client's TLS configuration. Without caFile it is Go's
// default: the system roots, which Go loads at the first handshake.
//
// With caFile the trusted roots are the system roots plus caFile, as
// storage.RootCAs documents, but the system roots are read only when a
// certificate does not chain to caFile. Reading them costs a large part of
// a run on a small host (x509.SystemCertPool parses every file of
// /etc/ssl/certs: about 45 ms and 4 MB of heap in deploy/dev/bench.sh's
// profile; a program that only calls it once takes 13–72 ms, median 17 ms,
// and allocates 3.8 MB for Debian's 145 roots, against 68 ms for a whole
// `keyescrow archive`), and a private endpoint's certificate never needs
// them. That is why crypto/tls is not simply given one pool of the system
// roots plus caFile as RootCAs: it would load them on every run. The verification is crypto/tls's own, done in VerifyConnection: the
// chain to a trusted root, and the host name the client asked for (for an IP
// literal, which TLS does not send as a server name, the endpoint's IP).
func tlsConfig(caFile, endpoint string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: ca_file: %v", storage.ErrInvalid, err)
	}
	own := x509.NewCertPool()
	if !own.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: ca_file %s holds no PEM certificate: give the CA bundle of the endpoint", storage.ErrInvalid, caFile)
	}
	endpointIP := ""
	if u, err := url.Parse(endpoint); err == nil && net.ParseIP(u.Hostname()) != nil {
		endpointIP = u.Hostname()
	}
	// The union, built once and only when a certificate needs it.
	union := sync.OnceValue(func() *x509.CertPool {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(pem)
		return pool
	})
	// Verification moves into VerifyConnection, which runs on every
	// handshake (resumed ones too); it is never skipped.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		// AWS_CA_BUNDLE: the SDK puts its certificates in RootCAs of this
		// very config (newHTTPClient hands it over uncloned).
		return verify(cs, endpointIP, own, cfg.RootCAs, union)
	}
	return cfg, nil
}

// verify checks the peer's chain for the server name of cs (or endpointIP
// when TLS sent no name: an IP literal) against own (ca_file), then bundle
// (AWS_CA_BUNDLE, when set), then union (the system roots plus ca_file),
// each tried only when the chain leads to none of the roots before: a chain
// ends at one root, so this trusts what one pool of them all would. A
// failure is a *tls.CertificateVerificationError, as crypto/tls returns.
func verify(cs tls.ConnectionState, endpointIP string, own, bundle *x509.CertPool, union func() *x509.CertPool) error {
	fail := func(err error) error {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	if len(cs.PeerCertificates) == 0 {
		return fail(errors.New("x509: the server sent no certificate"))
	}
	name := cs.ServerName
	if name == "" {
		if endpointIP == "" {
			return fail(errors.New("x509: no server name to verify the certificate for"))
		}
		name = endpointIP
	}
	opts := x509.VerifyOptions{DNSName: name, Roots: own, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	var err error
	for _, roots := range []func() *x509.CertPool{
		func() *x509.CertPool { return own },
		func() *x509.CertPool { return bundle },
		union,
	} {
		if opts.Roots = roots(); opts.Roots == nil {
			continue
		}
		if _, err = leaf.Verify(opts); err == nil {
			return nil
		}
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			break // expired, wrong name, …: another root does not change that
		}
	}
	return fail(err)
}

package storage

import (
	"crypto/x509"
	"fmt"
	"os"
)

// RootCAs returns the certificates a destination's HTTPS client trusts: the
// system roots plus the PEM certificates in caFile (a destination's
// ca_file, for a private endpoint or a local emulator). caFile "" returns
// nil, which means the system roots alone. Errors wrap ErrInvalid.
func RootCAs(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: ca_file: %v", ErrInvalid, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: ca_file %s holds no PEM certificate: give the CA bundle of the endpoint", ErrInvalid, caFile)
	}
	return pool, nil
}

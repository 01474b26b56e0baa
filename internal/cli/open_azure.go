package cli

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/azstore"
)

// openAzureBlob opens an azureblob destination's backend: one HTTP client
// (system roots plus ca_file) for blob, token and ARM requests, and the
// credential named by auth. Secrets are read through readSecret, so the
// scrubber knows them before any request is made.
func (inv *invocation) openAzureBlob(d config.Destination) (storage.Backend, error) {
	hc, err := azstore.NewHTTPClientWith(d.CAFile, inv.limits)
	if err != nil {
		return nil, err
	}
	a := azstore.Auth{Mode: d.Auth, TenantID: d.TenantID, ClientID: d.ClientID, CertificateFile: d.ClientCertificateFile}
	// AZURE_AUTHORITY_HOST names a sovereign or private Entra ID endpoint.
	a.AuthorityHost, _ = inv.app.Env("AZURE_AUTHORITY_HOST")
	switch d.Auth {
	case azstore.AuthSharedKey:
		if a.AccountKey, err = inv.readSecret(d.AccountKeySource()); err != nil {
			return nil, err
		}
	case azstore.AuthSAS:
		if a.SAS, err = inv.readSecret(d.SASSource()); err != nil {
			return nil, err
		}
		// The signature alone may show up re-encoded in a URL: scrub it too.
		if q, perr := url.ParseQuery(strings.TrimPrefix(a.SAS.Reveal(), "?")); perr == nil && q.Get("sig") != "" {
			inv.scrub.Add(secret.New(q.Get("sig")))
		}
	case azstore.AuthClientSecret:
		if a.ClientSecret, err = inv.readSecret(d.ClientSecretSource()); err != nil {
			return nil, err
		}
	case azstore.AuthClientCertificate:
		if src := d.ClientCertificatePasswordSource(); src.Env != "" {
			if a.CertificatePassword, err = inv.readSecret(src); err != nil {
				return nil, err
			}
		}
	}
	cred, err := azstore.NewCredential(a, hc)
	if err != nil {
		return nil, fmt.Errorf("auth %s: %w", d.Auth, err)
	}
	return azstore.New(azstore.Options{
		AccountURL: d.AccountURL, Container: d.Container, Credential: cred,
		ResourceID: d.ResourceID, HTTPClient: hc,
	})
}

package azstore

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/keyescrow/keyescrow/internal/deadline"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// Auth modes (config key auth).
const (
	AuthDefault           = "default"
	AuthManagedIdentity   = "managed-identity"
	AuthWorkloadIdentity  = "workload-identity"
	AuthClientSecret      = "client-secret"
	AuthClientCertificate = "client-certificate"
	AuthCLI               = "cli"
	AuthSharedKey         = "shared-key"
	AuthSAS               = "sas"
)

// Auth is what NewCredential needs; secrets are already read (and
// registered with the scrubber) by the caller.
type Auth struct {
	Mode     string // one of the Auth* constants; "" = default
	TenantID string
	ClientID string
	// ClientSecret for client-secret.
	ClientSecret secret.Value
	// CertificateFile (PEM or PKCS#12 with the key) and its password for
	// client-certificate.
	CertificateFile     string
	CertificatePassword secret.Value
	// AccountKey for shared-key, SAS (the query string, with or without
	// "?") for sas.
	AccountKey secret.Value
	SAS        secret.Value
	// AuthorityHost is the Entra ID endpoint (AZURE_AUTHORITY_HOST); ""
	// means the public cloud. A host outside Microsoft's clouds (a private
	// cloud, a test endpoint) turns instance discovery off.
	AuthorityHost string
}

// Credential authorises blob (and ARM) requests.
type Credential struct {
	mode  string
	token azcore.TokenCredential // nil for shared-key and sas
	key   secret.Value
	sas   string
}

// Token is the Entra ID credential, nil for shared-key and sas (which
// cannot call ARM).
func (c *Credential) Token() azcore.TokenCredential { return c.token }

// Mode is the auth mode.
func (c *Credential) Mode() string { return c.mode }

// NewCredential builds the credential for a; token requests go through hc.
// It sends no request.
func NewCredential(a Auth, hc *http.Client) (*Credential, error) {
	if a.Mode == "" {
		a.Mode = AuthDefault
	}
	if hc == nil {
		hc = newHTTPClient(nil, deadline.Limits{})
	}
	co := clientOptions(hc)
	disableDiscovery := false
	if a.AuthorityHost != "" {
		co.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: a.AuthorityHost}
		disableDiscovery = !knownAuthority(a.AuthorityHost)
	}
	c := &Credential{mode: a.Mode}
	var err error
	switch a.Mode {
	case AuthDefault:
		c.token, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: co, TenantID: a.TenantID, DisableInstanceDiscovery: disableDiscovery})
	case AuthManagedIdentity:
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
		if a.ClientID != "" {
			o.ID = azidentity.ClientID(a.ClientID)
		}
		c.token, err = azidentity.NewManagedIdentityCredential(o)
	case AuthWorkloadIdentity:
		c.token, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: co, ClientID: a.ClientID, TenantID: a.TenantID, DisableInstanceDiscovery: disableDiscovery})
	case AuthClientSecret:
		c.token, err = azidentity.NewClientSecretCredential(a.TenantID, a.ClientID, a.ClientSecret.Reveal(),
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: disableDiscovery})
	case AuthClientCertificate:
		data, rerr := os.ReadFile(a.CertificateFile)
		if rerr != nil {
			return nil, fmt.Errorf("reading client_certificate_file: %v: %w", rerr, storage.ErrInvalid)
		}
		var pw []byte
		if !a.CertificatePassword.Empty() {
			pw = []byte(a.CertificatePassword.Reveal())
		}
		certs, key, perr := azidentity.ParseCertificates(data, pw)
		if perr != nil {
			return nil, fmt.Errorf("client_certificate_file %s holds no usable certificate and private key (PEM or PKCS#12; check client_certificate_password_env): %w", a.CertificateFile, storage.ErrInvalid)
		}
		c.token, err = azidentity.NewClientCertificateCredential(a.TenantID, a.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: disableDiscovery})
	case AuthCLI:
		c.token, err = azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: a.TenantID})
	case AuthSharedKey:
		if a.AccountKey.Empty() {
			return nil, fmt.Errorf("auth shared-key needs the account key: %w", storage.ErrInvalid)
		}
		c.key = a.AccountKey
	case AuthSAS:
		if a.SAS.Empty() {
			return nil, fmt.Errorf("auth sas needs the SAS token: %w", storage.ErrInvalid)
		}
		c.sas = strings.TrimPrefix(strings.TrimSpace(a.SAS.Reveal()), "?")
		if _, perr := url.ParseQuery(c.sas); perr != nil || !strings.Contains(c.sas, "sig=") {
			return nil, fmt.Errorf("the SAS token is not a query string with sig=: %w", storage.ErrInvalid)
		}
	default:
		return nil, fmt.Errorf("unknown auth %q: %w", a.Mode, storage.ErrInvalid)
	}
	if err != nil {
		// azidentity's constructor errors name missing settings, never secrets.
		return nil, fmt.Errorf("auth %s: %v: %w", a.Mode, err, storage.ErrInvalid)
	}
	return c, nil
}

// containerClient returns the container client this credential authorises.
func (c *Credential) containerClient(containerURL, account string, co azcore.ClientOptions) (*container.Client, error) {
	opts := &container.ClientOptions{ClientOptions: co}
	switch {
	case c.token != nil:
		return container.NewClient(containerURL, c.token, opts)
	case !c.key.Empty():
		if account == "" {
			return nil, errNoAccount
		}
		kc, err := container.NewSharedKeyCredential(account, c.key.Reveal())
		if err != nil {
			return nil, fmt.Errorf("the account key is not valid base64: %w", storage.ErrInvalid)
		}
		return container.NewClientWithSharedKeyCredential(containerURL, kc, opts)
	default:
		return container.NewClientWithNoCredential(containerURL+"?"+c.sas, opts)
	}
}

// sasPermissions returns the sp= field of a SAS credential, "" otherwise.
func (c *Credential) sasPermissions() (string, bool) {
	if c.sas == "" {
		return "", false
	}
	q, _ := url.ParseQuery(c.sas)
	return q.Get("sp"), true
}

// knownAuthority reports whether host is one of Microsoft's Entra ID
// endpoints, where instance discovery works.
func knownAuthority(host string) bool {
	u, err := url.Parse(host)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Hostname()) {
	case "login.microsoftonline.com", "login.chinacloudapi.cn", "login.microsoftonline.us":
		return true
	}
	return false
}

// NewHTTPClient is NewHTTPClientWith under the default limits.
func NewHTTPClient(caFile string) (*http.Client, error) {
	return NewHTTPClientWith(caFile, deadline.Default())
}

// NewHTTPClientWith returns the one HTTP client a destination uses for
// blob, ARM and token requests: HTTP/1.1 and 2 keep-alive, TLS 1.2 or
// later, trusting the system roots plus the PEM file caFile ("" for none),
// every attempt under the limits l (the zero value means
// deadline.Default()): connect and TLS handshake within l.Connect, each
// attempt with its body within l.Request, no l.Idle without a byte moving.
func NewHTTPClientWith(caFile string, l deadline.Limits) (*http.Client, error) {
	pool, err := storage.RootCAs(caFile)
	if err != nil {
		return nil, err
	}
	return newHTTPClient(pool, l), nil
}

func newHTTPClient(roots *x509.CertPool, l deadline.Limits) *http.Client {
	if l == (deadline.Limits{}) {
		l = deadline.Default()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: l.Connect, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = l.Connect
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	tr.ResponseHeaderTimeout = l.Request // the idle watchdog comes first
	return &http.Client{Transport: deadline.GuardTransport(tr, l)}
}

// Package azstore is the azureblob destination: block blobs in one
// container of an Azure Storage account, written create-only with one
// single-shot Put Blob (never a block list) and proven by version id.
//
// Checksums: Azure validates and stores the blob's Content-MD5, not a
// SHA-256. Stat therefore reports the service-validated Content-MD5 in
// Object.MD5 and the SHA-256 recorded in the blob's metadata (x-ms-meta-sha256,
// written in the same Put Blob) in Object.SHA256; the pipeline's re-hash of
// the downloaded bytes is the independent proof of the SHA-256. Put refuses
// data whose SHA-256 differs from PutOptions.SHA256 before sending anything,
// so the metadata never carries a wrong checksum.
//
// Requests: Preflight sends at most 4 concurrent requests (container
// properties, account information, and with a resource id the ARM storage
// account and its blob service properties); a write and its proof are
// exactly 3 (Put Blob, Get Blob Properties and Get Blob of the new version).
package azstore

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/keyescrow/keyescrow/internal/deadline"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// Retention modes as the service names them (lower case when read back).
const (
	ModeLocked   = "locked"
	ModeUnlocked = "unlocked"
)

// Options configure a Store.
type Options struct {
	// AccountURL is the blob endpoint: https://ACCOUNT.blob.core.windows.net,
	// or for an emulator http(s)://127.0.0.1:PORT/ACCOUNT.
	AccountURL string
	// Container holds every copy.
	Container string
	// Credential says how requests are authorised (see NewCredential).
	Credential *Credential
	// ResourceID is the ARM id of the storage account; when set, Preflight
	// reads its region, redundancy and versioning through ARM.
	ResourceID string
	// ARMEndpoint overrides the Azure Resource Manager endpoint; "" derives
	// it from AccountURL's cloud (public, China, US Government).
	ARMEndpoint string
	// HTTPClient carries every request (blob, ARM and token); nil uses one
	// with the system roots. Pass the same client to NewCredential.
	HTTPClient *http.Client
}

// Store is an azureblob destination.
type Store struct {
	opts      Options
	account   string // the account name
	container *container.Client
	base      string // https://host/[account/]container, for Location

	mu     sync.Mutex
	proven *storage.Properties // set by Preflight
}

// New opens the container client; it sends no request.
func New(o Options) (*Store, error) {
	if o.Container == "" {
		return nil, fmt.Errorf("azureblob: container is empty: %w", storage.ErrInvalid)
	}
	if o.Credential == nil {
		return nil, fmt.Errorf("azureblob: no credential: %w", storage.ErrInvalid)
	}
	u, err := url.Parse(strings.TrimRight(o.AccountURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" {
		return nil, fmt.Errorf("azureblob: account_url %q is not an http(s) URL without a query: %w", o.AccountURL, storage.ErrInvalid)
	}
	parts, err := blob.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("azureblob: account_url %q: %v: %w", o.AccountURL, err, storage.ErrInvalid)
	}
	account := parts.IPEndpointStyleInfo.AccountName
	if account == "" {
		account, _, _ = strings.Cut(u.Hostname(), ".")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = newHTTPClient(nil, deadline.Limits{})
	}
	containerURL := u.String() + "/" + url.PathEscape(o.Container)
	c, err := o.Credential.containerClient(containerURL, account, clientOptions(o.HTTPClient))
	if err != nil {
		return nil, fmt.Errorf("azureblob: %w", err)
	}
	return &Store{opts: o, account: account, container: c, base: containerURL}, nil
}

// clientOptions are the pipeline options of every client: the shared HTTP
// client, and retries only for transient failures, bounded so that a run
// against a dead endpoint ends in seconds, not minutes. Wrong credentials
// (401/403) are never retried: the SDK retries only 408, 429, 500, 502,
// 503, 504 and transport errors.
//
// A try may last as long as the HTTP client's request limit (see
// NewHTTPClient); the operation as a whole is bounded by its context.
func clientOptions(hc *http.Client) azcore.ClientOptions {
	try := time.Minute
	if l, ok := deadline.LimitsOf(hc.Transport); ok {
		try = l.Request
	}
	return azcore.ClientOptions{
		Transport: hc,
		Retry: policy.RetryOptions{
			MaxRetries:    2,
			TryTimeout:    try,
			RetryDelay:    300 * time.Millisecond,
			MaxRetryDelay: 2 * time.Second,
		},
		Telemetry: policy.TelemetryOptions{ApplicationID: "keyescrow"},
	}
}

// Type is "azureblob".
func (s *Store) Type() string { return "azureblob" }

// Location is https://account-endpoint/container/key.
func (s *Store) Location(key string) string { return s.base + "/" + key }

// Capabilities are the Azure service's: versions, version-level
// immutability (locked, unlocked) and the Content-MD5 the service
// validates. Whether this container gives them is Preflight's to prove.
func (s *Store) Capabilities() storage.Capabilities {
	return storage.Capabilities{Versioning: true, Retention: true, RetentionModes: []string{ModeLocked, ModeUnlocked}, ServiceChecksum: true}
}

// Proven returns the capabilities this container proved in the last
// Preflight: versioning and retention only where the service answered that
// they hold. Before Preflight it returns the service's Capabilities.
func (s *Store) Proven() storage.Capabilities {
	c := s.Capabilities()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proven != nil {
		c.Versioning = s.proven.Versioning.State == storage.Proven
		c.Retention = s.proven.Immutability.State == storage.Proven
		if !c.Retention {
			c.RetentionModes = nil
		}
	}
	return c
}

// immutabilityDisproven reports whether the last Preflight found that the
// container cannot lock versions (so a lock asked of Put would be ignored).
func (s *Store) immutabilityDisproven() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proven != nil && s.proven.Immutability.State != storage.Proven
}

var errNoAccount = errors.New("the account name cannot be read from account_url")

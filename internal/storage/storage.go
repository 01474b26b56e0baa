// Package storage defines the one interface every archive destination (S3,
// Azure Blob, a mounted folder, the in-memory fake) implements, the values
// that travel through it and the sentinel errors it returns.
//
// Backends report facts; they never decide policy. The pipeline (package
// escrow) compares the facts a backend proves against the configured policy
// and waivers, and it alone turns a difference into an exit code.
package storage

import (
	"context"
	"io"
	"time"
)

// Backend is one archive destination.
//
// Guarantees every implementation gives, checked by the conformance suite in
// package storagetest:
//   - Put is create-only: it never replaces bytes that are stored under key
//     (current version); it returns an error wrapping ErrExists instead, and a
//     racing second writer also gets ErrExists, never a silent overwrite.
//   - Put is single-shot: the data reaches the service in one request (or one
//     rename), so the service can validate the whole checksum it is given.
//   - Read after write: once Put returns, Stat and Open of the returned
//     version see exactly the stored bytes.
//   - Stat reports what the service itself stored (its checksum, retention,
//     version), never what the caller asked for.
//   - Nothing is ever deleted or shortened: the interface has no delete.
//   - Stat and Open of a missing key, of an unknown version id, of a delete
//     marker, or of a key whose current version is a delete marker return
//     ErrNotFound.
//   - Put with Retention or LegalHold on a backend without
//     Capabilities.Retention fails with ErrInvalid; it never stores an
//     unlocked copy silently.
//   - Errors wrap the sentinels below, so callers use errors.Is.
//   - Every method takes a context and returns promptly when it is done.
type Backend interface {
	// Type is the configured destination type: "s3", "azureblob", "file" or
	// "memory".
	Type() string

	// Location renders key as a human- and machine-readable address:
	// s3://bucket/key, https://account/container/blob, or a file path.
	Location(key string) string

	// Capabilities says which guarantees the backend's service can give.
	Capabilities() Capabilities

	// Preflight reads the destination's properties without writing anything.
	// A property that cannot be read is reported with State Unknown and a
	// Detail naming the missing permission; Preflight itself fails only when
	// the destination cannot be reached at all (ErrAuth, ErrUnavailable,
	// ErrNotFound for a missing bucket, container or folder).
	Preflight(ctx context.Context) (Properties, error)

	// Put stores data under key, create-only, with opts applied in the same
	// request. The returned Object carries what the service answered (at
	// least Key, Size and VersionID where the service versions objects).
	Put(ctx context.Context, key string, data []byte, opts PutOptions) (Object, error)

	// Stat returns the stored object's metadata as the service reports it.
	// versionID "" means the current version.
	Stat(ctx context.Context, key, versionID string) (Object, error)

	// Open returns the stored bytes of the version. versionID "" means the
	// current version. The caller closes the reader.
	Open(ctx context.Context, key, versionID string) (io.ReadCloser, error)

	// List calls fn for every stored version whose key starts with prefix, in
	// ascending byte order of the key and, within a key, newest version first.
	// Objects carry at least Key, VersionID, Size and LastModified. It
	// streams: it holds at most one page (or one folder) of versions in
	// memory, never the whole listing (the in-memory fake excepted). fn returning an error stops the
	// walk and List returns that error.
	List(ctx context.Context, prefix string, fn func(Object) error) error
}

// Capabilities are the properties a backend's service can enforce.
type Capabilities struct {
	// Versioning: every write gets a version id and versions are addressable.
	Versioning bool
	// Retention: the service enforces a retention (WORM) lock per version.
	Retention bool
	// RetentionModes lists the modes Put accepts (e.g. COMPLIANCE,
	// GOVERNANCE for S3; locked, unlocked for Azure).
	RetentionModes []string
	// ServiceChecksum: the service stores and reports a checksum it computed
	// or validated itself (S3 SHA-256, Azure Content-MD5). When false the
	// backend reports a checksum computed by re-reading the stored bytes.
	ServiceChecksum bool
}

// PutOptions travel with one Put.
type PutOptions struct {
	// SHA256 of data, computed by the caller; required (the pipeline always
	// sets it). Backends send it to the service where the service validates
	// it, and a service that finds it wrong refuses with ErrChecksum.
	SHA256 []byte
	// MD5 of data, computed by the caller for services that want it.
	MD5 []byte
	// Retention to apply to the new version in the same request; nil for none.
	Retention *Retention
	// LegalHold to set on the new version in the same request.
	LegalHold bool
	// ContentType of the object; "" means application/octet-stream.
	ContentType string
	// Metadata stored with the object (user metadata).
	Metadata map[string]string
}

// Retention is a WORM lock on one version.
type Retention struct {
	// Mode as the service names it: COMPLIANCE or GOVERNANCE (S3), locked or
	// unlocked (Azure).
	Mode string
	// Until is the end of the lock; the version cannot be deleted before.
	Until time.Time
}

// Object is one stored version as the service describes it.
type Object struct {
	Key       string
	VersionID string // "" where the service has no versions
	Size      int64
	// SHA256 is the checksum the service reports (or, without
	// ServiceChecksum, the checksum of the stored bytes re-read); nil when
	// the service reported none.
	SHA256 []byte
	// MD5 as stored by the service, where it keeps one.
	MD5          []byte
	Retention    *Retention
	LegalHold    bool
	LastModified time.Time
	// IsLatest is true for the current version of Key.
	IsLatest bool
	// DeleteMarker is true for a listed delete marker (no bytes).
	DeleteMarker bool
	Metadata     map[string]string
}

// State is how well a property is known.
type State int

const (
	// Unknown: the property could not be read (Detail says why, naming the
	// missing permission).
	Unknown State = iota
	// Proven: the service answered and the property holds.
	Proven
	// Absent: the service answered and the property does not hold.
	Absent
	// NotApplicable: the destination type has no such property.
	NotApplicable
)

func (s State) String() string {
	switch s {
	case Proven:
		return "proven"
	case Absent:
		return "absent"
	case NotApplicable:
		return "not-applicable"
	default:
		return "unknown"
	}
}

// Property is one fact Preflight established.
type Property struct {
	State  State
	Value  string // e.g. the region, "Enabled", "COMPLIANCE 30d"
	Detail string // how it was proven, or why it could not be
}

// Properties are the facts the policy needs about a destination.
type Properties struct {
	// Region where the stored data lives (not applicable to a folder).
	Region Property
	// Versioning: the service keeps every version.
	Versioning Property
	// Immutability: the service can lock versions (S3 Object Lock, Azure
	// version-level immutability). For a folder: not applicable.
	Immutability Property
	// DefaultRetention the service applies when a write names none.
	DefaultRetention *DefaultRetention
	// Writable: the destination exists and these credentials may write to
	// it, as far as can be told without writing.
	Writable Property
	// Notes are further facts worth reporting (replication status, SKU).
	Notes []string
}

// DefaultRetention is a bucket or container default lock.
type DefaultRetention struct {
	Mode string
	Days int
}

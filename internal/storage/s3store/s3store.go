// Package s3store is the storage.Backend for Amazon S3 and S3-compatible
// stores (versitygw, MinIO): create-only single-shot PutObject with an
// explicit SHA-256 checksum and Object Lock, proof by HeadObject (checksum
// mode) and GetObject of the version written, preflight of versioning,
// Object Lock, region and replication, and streaming version listings.
//
// It reports facts; package escrow judges them. Every SDK error passes
// through translate, which maps it to a storage sentinel and names the fix.
package s3store

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/keyescrow/keyescrow/internal/deadline"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// Options configure one S3 destination.
type Options struct {
	Bucket string
	// Region is the region the bucket is expected in; requests are signed
	// for it and Preflight reports the region the service says.
	Region string
	// Endpoint is an S3-compatible endpoint URL; "" means AWS.
	Endpoint string
	// PathStyle addresses the bucket in the path (most S3-compatible stores).
	PathStyle bool
	// Profile is an AWS shared config profile; "" means the default chain
	// (environment, shared config, SSO, web identity, IMDS).
	Profile string
	// CAFile is a PEM bundle trusted on top of the system roots.
	CAFile string
	// Credentials replaces the default chain when set (tests, embedding).
	Credentials aws.CredentialsProvider
	// MaxAttempts bounds each request's attempts (first try included);
	// 0 means DefaultMaxAttempts.
	MaxAttempts int
	// ListPageSize is the number of versions List asks per page (at most
	// 1000, S3's limit); 0 means 1000.
	ListPageSize int32
	// APIOptions are extra SDK middleware (tests count requests with it).
	APIOptions []func(*middleware.Stack) error
	// Limits bound each request (connect, idle, per attempt); the zero
	// value means deadline.Default(). Bound the operations themselves
	// with deadline.Bound.
	Limits deadline.Limits
	// Log receives debug lines; nil discards them.
	Log *slog.Logger
}

// DefaultMaxAttempts is the number of attempts of one request, with
// exponential backoff between them, before a transient error is reported.
const DefaultMaxAttempts = 4

// Store is an S3 bucket as a storage.Backend.
type Store struct {
	opts   Options
	client *s3.Client
	log    *slog.Logger
	// noLock is set when Preflight found the bucket without Object Lock:
	// Stat then skips the GetObjectRetention fallback.
	noLock atomic.Bool
}

var _ storage.Backend = (*Store)(nil)

// Type is "s3".
func (s *Store) Type() string { return "s3" }

// Location renders key as s3://bucket/key.
func (s *Store) Location(key string) string { return "s3://" + s.opts.Bucket + "/" + key }

// Capabilities: versions, Object Lock in both modes, and the service's own
// SHA-256.
func (s *Store) Capabilities() storage.Capabilities {
	return storage.Capabilities{
		Versioning:      true,
		Retention:       true,
		RetentionModes:  []string{"COMPLIANCE", "GOVERNANCE"},
		ServiceChecksum: true,
	}
}

// Client is the SDK client the store uses (tests reuse its configuration).
func (s *Store) Client() *s3.Client { return s.client }

// credentials resolves the credentials once (cached by the SDK) so that a
// host without any fails with a message naming every way to supply them.
func (s *Store) credentials(ctx context.Context) error {
	if _, err := s.client.Options().Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: no usable AWS credentials for bucket %s: %v; supply them with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a shared config profile (profile: in the destination, or AWS_PROFILE), SSO (aws sso login), web identity (AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE, e.g. CI OIDC) or an instance role (IMDS)",
			storage.ErrAuth, s.opts.Bucket, err)
	}
	return nil
}

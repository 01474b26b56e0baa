package s3store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// putIDKey is the user metadata that marks which Put call stored a version,
// so a retry that meets its own earlier attempt (412) can tell it apart
// from somebody else's object.
const putIDKey = "keyescrow-put-id"

// Put stores data under key with one PutObject: If-None-Match: *, the
// SHA-256 as x-amz-checksum-sha256 (sent as a header, so the service checks
// it against the whole body), Content-MD5 when given, and the Object Lock
// mode, retain-until date and legal hold. Transient failures are retried by
// the SDK; a retry refused with 412 is accepted only when the object stored
// is this call's own (same SHA-256 and put id), so one call never creates
// two objects and never overwrites.
func (s *Store) Put(ctx context.Context, key string, data []byte, opts storage.PutOptions) (storage.Object, error) {
	what := "PutObject " + s.Location(key)
	if len(opts.SHA256) != sha256.Size {
		return storage.Object{}, fmt.Errorf("%s: %w: a SHA-256 of the data is required", what, storage.ErrInvalid)
	}
	if err := s.credentials(ctx); err != nil {
		return storage.Object{}, err
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	putID := hex.EncodeToString(id)
	meta := maps.Clone(opts.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[putIDKey] = putID
	contentType := opts.ContentType
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	body := bytes.Clone(data) // the caller may reuse its buffer; a retry re-reads
	in := &s3.PutObjectInput{
		Bucket:            aws.String(s.opts.Bucket),
		Key:               aws.String(key),
		Body:              bytes.NewReader(body),
		ContentLength:     aws.Int64(int64(len(body))),
		ContentType:       aws.String(contentType),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(opts.SHA256)),
		IfNoneMatch:       aws.String("*"),
		Metadata:          meta,
	}
	if len(opts.MD5) > 0 {
		in.ContentMD5 = aws.String(base64.StdEncoding.EncodeToString(opts.MD5))
	}
	action := "s3:PutObject"
	if r := opts.Retention; r != nil {
		mode := types.ObjectLockMode(strings.ToUpper(r.Mode))
		if mode != types.ObjectLockModeCompliance && mode != types.ObjectLockModeGovernance {
			return storage.Object{}, fmt.Errorf("%s: %w: retention mode %q is not COMPLIANCE or GOVERNANCE", what, storage.ErrInvalid, r.Mode)
		}
		in.ObjectLockMode = mode
		in.ObjectLockRetainUntilDate = aws.Time(r.Until.UTC())
		action += " and s3:PutObjectRetention"
	}
	if opts.LegalHold {
		in.ObjectLockLegalHoldStatus = types.ObjectLockLegalHoldStatusOn
		action += " and s3:PutObjectLegalHold"
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		terr := translate(err, what, action)
		if errors.Is(terr, storage.ErrExists) {
			if o, ok := s.ownEarlierAttempt(ctx, key, opts.SHA256, putID); ok {
				s.log.DebugContext(ctx, "a retried PutObject met its own earlier attempt", "location", s.Location(key), "version_id", o.VersionID)
				return o, nil
			}
		}
		return storage.Object{}, terr
	}
	o := storage.Object{Key: key, VersionID: aws.ToString(out.VersionId), Size: int64(len(body))}
	if sum, err := base64.StdEncoding.DecodeString(aws.ToString(out.ChecksumSHA256)); err == nil && len(sum) == sha256.Size {
		o.SHA256 = sum
	}
	return o, nil
}

// ownEarlierAttempt reports whether the current object under key was stored
// by this very Put (its put id and SHA-256): then a lost response was
// retried and the 412 refused our own first attempt.
func (s *Store) ownEarlierAttempt(ctx context.Context, key string, sum []byte, putID string) (storage.Object, bool) {
	o, err := s.Stat(ctx, key, "")
	if err != nil || o.Metadata[putIDKey] != putID || !bytes.Equal(o.SHA256, sum) {
		return storage.Object{}, false
	}
	return o, true
}

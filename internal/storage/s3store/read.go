package s3store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Stat is one HeadObject with checksum mode: size, the service's SHA-256,
// the Object Lock mode, retain-until date and legal hold, version and user
// metadata. Only when the answer has no lock headers (and the bucket is not
// known to lack Object Lock) is GetObjectRetention asked as well.
func (s *Store) Stat(ctx context.Context, key, versionID string) (storage.Object, error) {
	in := &s3.HeadObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled}
	action := "s3:GetObject"
	if versionID != "" {
		in.VersionId = aws.String(versionID)
		action = "s3:GetObjectVersion"
	}
	out, err := s.client.HeadObject(ctx, in)
	if err != nil {
		return storage.Object{}, translate(err, "HeadObject "+s.describe(key, versionID), action)
	}
	o := storage.Object{
		Key:          key,
		VersionID:    aws.ToString(out.VersionId),
		Size:         aws.ToInt64(out.ContentLength),
		LastModified: aws.ToTime(out.LastModified),
		Metadata:     out.Metadata,
		LegalHold:    out.ObjectLockLegalHoldStatus == types.ObjectLockLegalHoldStatusOn,
	}
	if o.VersionID == "" {
		o.VersionID = versionID
	}
	// A composite checksum (multipart) is not the SHA-256 of the bytes.
	if out.ChecksumType != types.ChecksumTypeComposite {
		if sum, err := base64.StdEncoding.DecodeString(aws.ToString(out.ChecksumSHA256)); err == nil && len(sum) == sha256.Size {
			o.SHA256 = sum
		}
	}
	switch {
	case out.ObjectLockMode != "" && out.ObjectLockRetainUntilDate != nil:
		o.Retention = &storage.Retention{Mode: string(out.ObjectLockMode), Until: out.ObjectLockRetainUntilDate.UTC()}
	case !s.noLock.Load():
		r, err := s.retention(ctx, key, o.VersionID)
		if err != nil {
			return storage.Object{}, err
		}
		o.Retention = r
	}
	return o, nil
}

// retention asks GetObjectRetention; nil when the version has none.
func (s *Store) retention(ctx context.Context, key, versionID string) (*storage.Retention, error) {
	in := &s3.GetObjectRetentionInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := s.client.GetObjectRetention(ctx, in)
	if err != nil {
		code, status := codeOf(err)
		switch {
		case code == "NoSuchObjectLockConfiguration", code == "ObjectLockConfigurationNotFoundError",
			code == "InvalidRequest", code == "NotImplemented", status == 501:
			return nil, nil // no lock on this version or bucket
		}
		return nil, translate(err, "GetObjectRetention "+s.describe(key, versionID), "s3:GetObjectRetention")
	}
	if out.Retention == nil || out.Retention.Mode == "" || out.Retention.RetainUntilDate == nil {
		return nil, nil
	}
	return &storage.Retention{Mode: strings.ToUpper(string(out.Retention.Mode)), Until: out.Retention.RetainUntilDate.UTC()}, nil
}

// Open is one GetObject of the version. The SDK does not validate the
// response checksum: the caller re-hashes the bytes and must see any
// difference itself.
func (s *Store) Open(ctx context.Context, key, versionID string) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(key)}
	action := "s3:GetObject"
	if versionID != "" {
		in.VersionId = aws.String(versionID)
		action = "s3:GetObjectVersion"
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, translate(err, "GetObject "+s.describe(key, versionID), action)
	}
	return out.Body, nil
}

func (s *Store) describe(key, versionID string) string {
	if versionID == "" {
		return s.Location(key)
	}
	return s.Location(key) + " version " + versionID
}

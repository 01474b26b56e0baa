package azstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// MetaSHA256 is the metadata key holding the hex SHA-256 of the blob.
const MetaSHA256 = "sha256"

// Put stores data under key with one Put Blob: If-None-Match "*"
// (create-only; 409 BlobAlreadyExists → ErrExists), Content-MD5 validated
// by the service (400 Md5Mismatch → ErrChecksum) and stored as the blob's
// Content-MD5, the SHA-256 in metadata, and the immutability policy and
// legal hold when asked. It never uses Put Block / Put Block List.
func (s *Store) Put(ctx context.Context, key string, data []byte, opts storage.PutOptions) (storage.Object, error) {
	if err := ctx.Err(); err != nil {
		return storage.Object{}, fmt.Errorf("azureblob: put %s: %w", key, err)
	}
	if err := checkKey(key); err != nil {
		return storage.Object{}, err
	}
	sum := sha256.Sum256(data)
	if len(opts.SHA256) != sha256.Size {
		return storage.Object{}, fmt.Errorf("azureblob: put %s: a SHA-256 is required: %w", key, storage.ErrInvalid)
	}
	if !bytes.Equal(opts.SHA256, sum[:]) {
		return storage.Object{}, fmt.Errorf("azureblob: put %s: the data does not match the SHA-256 given; nothing was sent: %w", key, storage.ErrChecksum)
	}
	md := opts.MD5
	if len(md) == 0 {
		m := md5.Sum(data)
		md = m[:]
	}
	meta := map[string]*string{}
	for k, v := range opts.Metadata {
		meta[k] = to.Ptr(v)
	}
	meta[MetaSHA256] = to.Ptr(hex.EncodeToString(sum[:]))
	ct := opts.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	uo := &blockblob.UploadOptions{
		Metadata:                meta,
		HTTPHeaders:             &blob.HTTPHeaders{BlobContentType: &ct, BlobContentMD5: md},
		TransactionalValidation: blob.TransferValidationTypeMD5(md),
		AccessConditions:        &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	}
	if r := opts.Retention; r != nil || opts.LegalHold {
		if s.immutabilityDisproven() {
			return storage.Object{}, fmt.Errorf("azureblob: put %s: a lock was asked but the container has no version-level immutability (the service would store the copy unlocked): %w", key, storage.ErrInvalid)
		}
	}
	if r := opts.Retention; r != nil {
		var mode blob.ImmutabilityPolicySetting
		switch strings.ToLower(r.Mode) {
		case ModeLocked:
			mode = blob.ImmutabilityPolicySettingLocked
		case ModeUnlocked:
			mode = blob.ImmutabilityPolicySettingUnlocked
		default:
			return storage.Object{}, fmt.Errorf("azureblob: put %s: retention mode %q is not locked or unlocked: %w", key, r.Mode, storage.ErrInvalid)
		}
		until := r.Until.UTC()
		uo.ImmutabilityPolicyMode, uo.ImmutabilityPolicyExpiryTime = &mode, &until
	}
	if opts.LegalHold {
		uo.LegalHold = to.Ptr(true)
	}
	resp, err := s.container.NewBlockBlobClient(key).Upload(ctx, streaming.NopCloser(bytes.NewReader(bytes.Clone(data))), uo)
	if err != nil {
		return storage.Object{}, withHint(translate("put "+key, err), actionBlobWrite+" (and, for a policy or legal hold, "+actionRunAsSuper+")")
	}
	o := storage.Object{Key: key, Size: int64(len(data)), MD5: resp.ContentMD5, IsLatest: true}
	if resp.VersionID != nil {
		o.VersionID = *resp.VersionID
	}
	if resp.LastModified != nil {
		o.LastModified = *resp.LastModified
	}
	return o, nil
}

// checkKey refuses keys Azure would store under another name.
func checkKey(key string) error {
	switch {
	case key == "", strings.HasPrefix(key, "/"), strings.HasSuffix(key, "/"), strings.Contains(key, "//"),
		strings.Contains(key, "\\"), len(key) > 1024:
		return fmt.Errorf("azureblob: key %q is not a plain blob name: %w", key, storage.ErrInvalid)
	}
	for _, p := range strings.Split(key, "/") {
		if p == "." || p == ".." {
			return fmt.Errorf("azureblob: key %q has a . or .. segment: %w", key, storage.ErrInvalid)
		}
	}
	return nil
}

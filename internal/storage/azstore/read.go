package azstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// blobClient addresses key, or one version of it.
func (s *Store) blobClient(key, versionID string) (*blob.Client, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	c := s.container.NewBlobClient(key)
	if versionID == "" {
		return c, nil
	}
	vc, err := c.WithVersionID(versionID)
	if err != nil {
		return nil, fmt.Errorf("azureblob: version id %q: %v: %w", versionID, err, storage.ErrInvalid)
	}
	return vc, nil
}

// sameVersion checks that an answer for a version request is for that
// version: a service that returns another version id, or (on a container
// proven not to keep versions) none at all, did not find the one asked.
func (s *Store) sameVersion(key, asked string, got *string) (string, error) {
	switch {
	case asked == "":
		if got != nil {
			return *got, nil
		}
		return "", nil
	case got != nil && *got != asked:
		return "", fmt.Errorf("azureblob: %s version %q: the service answered for version %q: %w", key, asked, *got, storage.ErrNotFound)
	case got == nil && s.versioningDisproven():
		return "", fmt.Errorf("azureblob: %s version %q: the container keeps no versions: %w", key, asked, storage.ErrNotFound)
	}
	return asked, nil
}

func (s *Store) versioningDisproven() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proven != nil && s.proven.Versioning.State != storage.Proven
}

// Stat is one Get Blob Properties (with versionid when given). SHA256 is
// the hex SHA-256 from the blob's metadata (nil when absent or malformed);
// MD5 is the Content-MD5 the service validated and stored.
func (s *Store) Stat(ctx context.Context, key, versionID string) (storage.Object, error) {
	c, err := s.blobClient(key, versionID)
	if err != nil {
		return storage.Object{}, err
	}
	p, err := c.GetProperties(ctx, nil)
	if err != nil {
		return storage.Object{}, withHint(translate("read the properties of "+key, err), actionBlobRead)
	}
	vid, err := s.sameVersion(key, versionID, p.VersionID)
	if err != nil {
		return storage.Object{}, err
	}
	o := storage.Object{Key: key, VersionID: vid, MD5: p.ContentMD5, Metadata: map[string]string{}}
	if p.ContentLength != nil {
		o.Size = *p.ContentLength
	}
	if p.LastModified != nil {
		o.LastModified = *p.LastModified
	}
	o.IsLatest = versionID == "" || (p.IsCurrentVersion != nil && *p.IsCurrentVersion)
	for k, v := range p.Metadata {
		if v != nil {
			o.Metadata[strings.ToLower(k)] = *v
		}
	}
	o.SHA256 = metaSHA256(o.Metadata[MetaSHA256])
	o.Retention = retention(p.ImmutabilityPolicyMode, p.ImmutabilityPolicyExpiresOn)
	o.LegalHold = p.LegalHold != nil && *p.LegalHold
	return o, nil
}

func metaSHA256(v string) []byte {
	b, err := hex.DecodeString(v)
	if err != nil || len(b) != 32 {
		return nil
	}
	return b
}

// retention renders the policy read back; nil for none or "mutable".
func retention[M ~string](mode *M, until *time.Time) *storage.Retention {
	if mode == nil || until == nil {
		return nil
	}
	m := strings.ToLower(string(*mode))
	if m != ModeLocked && m != ModeUnlocked {
		return nil
	}
	return &storage.Retention{Mode: m, Until: until.UTC()}
}

// Open is one Get Blob (with versionid when given).
func (s *Store) Open(ctx context.Context, key, versionID string) (io.ReadCloser, error) {
	c, err := s.blobClient(key, versionID)
	if err != nil {
		return nil, err
	}
	r, err := c.DownloadStream(ctx, nil)
	if err != nil {
		return nil, withHint(translate("read "+key, err), actionBlobRead)
	}
	if _, err := s.sameVersion(key, versionID, r.VersionID); err != nil {
		r.Body.Close()
		return nil, err
	}
	return &errReader{rc: r.Body, what: "read " + key}, nil
}

// errReader translates errors met while streaming a body.
type errReader struct {
	rc   io.ReadCloser
	what string
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.rc.Read(p)
	if err != nil && err != io.EOF {
		err = translate(e.what, err)
	}
	return n, err
}

func (e *errReader) Close() error { return e.rc.Close() }

// List walks the container's blobs under prefix, one page at a time, with
// every version where the container keeps them; within a name, newest
// version first (Azure lists a name's versions oldest first, so one name's
// versions are held at once, never the whole listing).
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	include := container.ListBlobsInclude{Versions: !s.versioningDisproven(), Metadata: true, ImmutabilityPolicy: true, LegalHold: true}
	pager := s.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix, Include: include})
	var group []storage.Object
	flush := func() error {
		slices.SortStableFunc(group, func(a, b storage.Object) int { return strings.Compare(b.VersionID, a.VersionID) })
		for _, o := range group {
			if err := fn(o); err != nil {
				return err
			}
		}
		group = group[:0]
		return nil
	}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return translate("list "+prefix, err)
		}
		for _, it := range page.Segment.BlobItems {
			if it.Name == nil || (it.Deleted != nil && *it.Deleted) {
				continue
			}
			o := storage.Object{Key: *it.Name, IsLatest: it.VersionID == nil || (it.IsCurrentVersion != nil && *it.IsCurrentVersion), Metadata: map[string]string{}}
			if it.VersionID != nil {
				o.VersionID = *it.VersionID
			}
			if pr := it.Properties; pr != nil {
				if pr.ContentLength != nil {
					o.Size = *pr.ContentLength
				}
				if pr.LastModified != nil {
					o.LastModified = *pr.LastModified
				}
				o.MD5 = pr.ContentMD5
				o.Retention = retention(pr.ImmutabilityPolicyMode, pr.ImmutabilityPolicyExpiresOn)
				o.LegalHold = pr.LegalHold != nil && *pr.LegalHold
			}
			for k, v := range it.Metadata {
				if v != nil {
					o.Metadata[strings.ToLower(k)] = *v
				}
			}
			o.SHA256 = metaSHA256(o.Metadata[MetaSHA256])
			if len(group) > 0 && group[0].Key != o.Key {
				if err := flush(); err != nil {
					return err
				}
			}
			group = append(group, o)
		}
	}
	return flush()
}

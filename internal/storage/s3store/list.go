package s3store

import (
	"cmp"
	"context"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// List pages through ListObjectVersions (one page in memory at a time) and
// calls fn for every version and delete marker under prefix: keys in byte
// order, and within a key the current version first, then newest first.
//
// The SDK returns a page's versions and delete markers as two lists; they
// are merged by key and LastModified (a delete marker before a version of
// the same instant, the order in which S3 itself lists them). A server that
// repeats the marker entry at the top of the next page (versitygw v1.8.0
// does) is tolerated: a version already given is not given again.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	in := &s3.ListObjectVersionsInput{Bucket: aws.String(s.opts.Bucket), Prefix: aws.String(prefix)}
	if n := s.opts.ListPageSize; n > 0 && n < 1000 {
		in.MaxKeys = aws.Int32(n)
	}
	p := s3.NewListObjectVersionsPaginator(s.client, in)
	lastKey, seen := "", map[string]bool{} // versions given of lastKey
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return translate(err, "ListObjectVersions "+s.Location(prefix), "s3:ListBucketVersions")
		}
		objs := make([]storage.Object, 0, len(page.Versions)+len(page.DeleteMarkers))
		for _, v := range page.Versions {
			objs = append(objs, storage.Object{
				Key: aws.ToString(v.Key), VersionID: aws.ToString(v.VersionId), Size: aws.ToInt64(v.Size),
				LastModified: aws.ToTime(v.LastModified), IsLatest: aws.ToBool(v.IsLatest),
			})
		}
		for _, m := range page.DeleteMarkers {
			objs = append(objs, storage.Object{
				Key: aws.ToString(m.Key), VersionID: aws.ToString(m.VersionId),
				LastModified: aws.ToTime(m.LastModified), IsLatest: aws.ToBool(m.IsLatest), DeleteMarker: true,
			})
		}
		slices.SortStableFunc(objs, func(a, b storage.Object) int {
			if c := cmp.Compare(a.Key, b.Key); c != 0 {
				return c
			}
			if a.IsLatest != b.IsLatest {
				if a.IsLatest {
					return -1
				}
				return 1
			}
			if c := b.LastModified.Compare(a.LastModified); c != 0 {
				return c
			}
			if a.DeleteMarker != b.DeleteMarker {
				if a.DeleteMarker {
					return -1
				}
				return 1
			}
			return 0
		})
		for _, o := range objs {
			if o.Key != lastKey {
				lastKey, seen = o.Key, map[string]bool{}
			} else if seen[o.VersionID] {
				continue
			}
			seen[o.VersionID] = true
			if err := fn(o); err != nil {
				return err
			}
		}
	}
	return nil
}

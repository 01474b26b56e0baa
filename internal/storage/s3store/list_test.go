package s3store_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/s3store"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// Listing in pages of two gives what one page gives, in the same order:
// keys ascending, newest version first, each version once.
func TestListPagesThroughVersions(t *testing.T) {
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3srv.Start(t, kind, serverRegion)
			bucket := srv.NewBucket(t, s3srv.Bucket{ObjectLock: true})
			whole := open(t, srv, bucket, "")
			var log requestLog
			paged := open(t, srv, bucket, "", func(o *s3store.Options) { o.ListPageSize = 2 }, log.option)
			var want []string
			for i, k := range []string{"p/c", "p/a", "p/b", "p/d", "p/e"} {
				data := []byte(fmt.Sprint("v", i))
				o, err := whole.Put(t.Context(), k, data, storage.PutOptions{SHA256: sum(data)})
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, k+"@"+o.VersionID)
			}
			slices.Sort(want)
			collect := func(s *s3store.Store) []string {
				var got []string
				if err := s.List(t.Context(), "p/", func(o storage.Object) error {
					got = append(got, o.Key+"@"+o.VersionID)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				return got
			}
			if got := collect(whole); !slices.Equal(got, want) {
				t.Fatalf("one page: %q\nwant %q", got, want)
			}
			if got := collect(paged); !slices.Equal(got, want) {
				t.Fatalf("pages of two: %q\nwant %q", got, want)
			}
			if n := len(log.take()); n < 3 {
				t.Fatalf("pages of two over five versions took %d requests, want at least 3", n)
			}
		})
	}
}

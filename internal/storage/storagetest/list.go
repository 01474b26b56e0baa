package storagetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/keyescrow/keyescrow/internal/storage"
)

func listCases() []testCase {
	return []testCase{
		{name: "list returns keys under the prefix only, in ascending order", run: func(t *testing.T, h Harness, b storage.Backend) {
			base := uniqueKey(t, "")
			// '-' < '.' < '/' in byte order: a folder walk in name order would
			// put p/a/z before p/a-b, which is wrong.
			inside := []string{"p/a-b", "p/a.txt", "p/a/z", "p/b"}
			outside := []string{"p-x", "q/a", "pp"}
			for _, k := range slices.Concat([]string{inside[3], inside[1]}, outside, []string{inside[2], inside[0]}) {
				put(t, b, base+k, payload(k))
			}
			got := list(t, b, base+"p/")
			want := make([]string, len(inside))
			for i, k := range inside {
				want[i] = base + k
			}
			if !slices.Equal(keys(got), want) {
				t.Fatalf("List = %q\nwant   %q", keys(got), want)
			}
			for _, o := range got {
				if o.Size != int64(len(payload(o.Key[len(base):]))) || !o.IsLatest || o.DeleteMarker || o.LastModified.IsZero() {
					t.Errorf("List entry %q = size %d latest %v marker %v modified %v", o.Key, o.Size, o.IsLatest, o.DeleteMarker, o.LastModified)
				}
			}
		}},
		{name: "list of a prefix with nothing under it calls fn never", run: func(t *testing.T, h Harness, b storage.Backend) {
			if got := list(t, b, uniqueKey(t, "nothing/")); len(got) != 0 {
				t.Fatalf("List = %q, want nothing", keys(got))
			}
		}},
		{name: "list streams: stopping early returns fn's error", run: func(t *testing.T, h Harness, b storage.Backend) {
			base := uniqueKey(t, "")
			for _, k := range []string{"a", "b", "c"} {
				put(t, b, base+k, payload(k))
			}
			stop := errors.New("stop here")
			calls := 0
			err := b.List(ctxFor(t), base, func(o storage.Object) error {
				calls++
				return stop
			})
			if !errors.Is(err, stop) {
				t.Fatalf("List = %v, want fn's error", err)
			}
			if calls != 1 {
				t.Fatalf("fn called %d times after returning an error, want 1", calls)
			}
		}},
	}
}

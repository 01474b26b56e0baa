package storagetest

import (
	"bytes"
	"testing"

	"github.com/keyescrow/keyescrow/internal/storage"
)

func safetyCases() []testCase {
	return []testCase{
		{name: "put with a wrong sha256 is refused with ErrChecksum", applies: func(h Harness, c storage.Capabilities) (bool, string) {
			return c.ServiceChecksum, "the service keeps no checksum of its own"
		}, run: func(t *testing.T, h Harness, b storage.Backend) {
			key, data := uniqueKey(t, "a.key"), payload("checksum")
			wrong := sum(payload("something else"))
			_, err := b.Put(ctxFor(t), key, data, storage.PutOptions{SHA256: wrong})
			wantErr(t, "Put with a wrong sha256", err, storage.ErrChecksum)
			_, err = b.Stat(ctxFor(t), key, "")
			wantErr(t, "Stat after the refused put", err, storage.ErrNotFound)
		}},
		{name: "a corrupted copy re-hashes differently", applies: func(h Harness, c storage.Capabilities) (bool, string) {
			return h.Corrupt != nil, "the harness cannot corrupt stored bytes"
		}, run: func(t *testing.T, h Harness, b storage.Backend) {
			key, data := uniqueKey(t, "a.key"), payload("corrupt")
			o := put(t, b, key, data)
			h.Corrupt(t, b, key, o.VersionID)
			got := read(t, b, key, o.VersionID)
			if bytes.Equal(sum(got), sum(data)) {
				t.Fatal("the corrupted copy still hashes to the sha256 of what was put")
			}
			st, err := b.Stat(ctxFor(t), key, o.VersionID)
			if err != nil {
				t.Fatalf("Stat = %v", err)
			}
			if !b.Capabilities().ServiceChecksum && bytes.Equal(st.SHA256, sum(data)) {
				t.Fatal("Stat reports the original sha256 although it must re-read the stored bytes")
			}
		}},
	}
}

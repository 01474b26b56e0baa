package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/keyescrow/keyescrow/internal/storage"
)

func basicCases() []testCase {
	return []testCase{
		{name: "put then stat reports the stored size and the service's own sha256", run: func(t *testing.T, h Harness, b storage.Backend) {
			key, data := uniqueKey(t, "a.key"), payload("stat")
			o := put(t, b, key, data)
			if o.Key != key {
				t.Errorf("Put returned Key %q, want %q", o.Key, key)
			}
			if o.Size != int64(len(data)) {
				t.Errorf("Put returned Size %d, want %d", o.Size, len(data))
			}
			st, err := b.Stat(ctxFor(t), key, o.VersionID)
			if err != nil {
				t.Fatalf("Stat = %v", err)
			}
			if st.Size != int64(len(data)) || !bytes.Equal(st.SHA256, sum(data)) {
				t.Errorf("Stat = size %d sha256 %x, want %d %x", st.Size, st.SHA256, len(data), sum(data))
			}
			if st.LastModified.IsZero() {
				t.Error("Stat LastModified is zero")
			}
		}},
		{name: "put is create-only: a second put of the same key fails with ErrExists and the first bytes stay", run: func(t *testing.T, h Harness, b storage.Backend) {
			key, first := uniqueKey(t, "a.key"), payload("first")
			o := put(t, b, key, first)
			second := payload("second")
			_, err := b.Put(ctxFor(t), key, second, storage.PutOptions{SHA256: sum(second)})
			wantErr(t, "second Put", err, storage.ErrExists)
			if got := read(t, b, key, ""); !bytes.Equal(got, first) {
				t.Fatal("the current bytes changed after a refused second put")
			}
			if got := read(t, b, key, o.VersionID); !bytes.Equal(got, first) {
				t.Fatal("the first version's bytes changed after a refused second put")
			}
		}},
		{name: "concurrent puts of one key: exactly one succeeds", run: func(t *testing.T, h Harness, b storage.Backend) {
			key := uniqueKey(t, "a.key")
			const n = 8
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					data := payload(fmt.Sprint("writer ", i))
					<-start
					_, errs[i] = b.Put(ctxFor(t), key, data, storage.PutOptions{SHA256: sum(data)})
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Fatalf("writers %d and %d both succeeded", winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, storage.ErrExists):
					t.Errorf("writer %d: %v, want ErrExists", i, err)
				}
			}
			if winner < 0 {
				t.Fatal("no writer succeeded")
			}
			if got := read(t, b, key, ""); !bytes.Equal(got, payload(fmt.Sprint("writer ", winner))) {
				t.Fatal("stored bytes are not the winner's")
			}
		}},
		{name: "open of the returned version reads back the exact bytes", run: func(t *testing.T, h Harness, b storage.Backend) {
			key, data := uniqueKey(t, "a.key"), payload("open")
			o := put(t, b, key, data)
			want := bytes.Clone(data)
			data[0] ^= 0xff // the caller reusing its buffer must not change what was stored
			if got := read(t, b, key, o.VersionID); !bytes.Equal(got, want) {
				t.Fatalf("Open read %d bytes %x..., want %d bytes", len(got), got[:min(8, len(got))], len(want))
			}
		}},
		{name: "an empty object round-trips", run: func(t *testing.T, h Harness, b storage.Backend) {
			key := uniqueKey(t, "empty.key")
			o := put(t, b, key, []byte{})
			st, err := b.Stat(ctxFor(t), key, o.VersionID)
			if err != nil || st.Size != 0 {
				t.Fatalf("Stat = size %d, %v; want 0, nil", st.Size, err)
			}
			if got := read(t, b, key, o.VersionID); len(got) != 0 {
				t.Fatalf("Open read %d bytes, want 0", len(got))
			}
		}},
		{name: "stat and open of a missing key return ErrNotFound", run: func(t *testing.T, h Harness, b storage.Backend) {
			key := uniqueKey(t, "missing.key")
			_, err := b.Stat(ctxFor(t), key, "")
			wantErr(t, "Stat of a missing key", err, storage.ErrNotFound)
			r, err := b.Open(ctxFor(t), key, "")
			if err == nil {
				r.Close()
			}
			wantErr(t, "Open of a missing key", err, storage.ErrNotFound)
		}},
		{name: "keys with unicode and spaces round-trip", run: func(t *testing.T, h Harness, b storage.Backend) {
			prefix := uniqueKey(t, "")
			for _, name := range []string{"naïve café/日本語 キー.key", "spaces/a b  c.key", "symbols/plus+equals=amp&(1).key"} {
				key, data := prefix+name, payload(name)
				o := put(t, b, key, data)
				if st, err := b.Stat(ctxFor(t), key, o.VersionID); err != nil || st.Key != key {
					t.Errorf("Stat(%q) = key %q, %v", key, st.Key, err)
				}
				if got := read(t, b, key, o.VersionID); !bytes.Equal(got, data) {
					t.Errorf("Open(%q) read different bytes", key)
				}
				if got := keys(list(t, b, key)); len(got) != 1 || got[0] != key {
					t.Errorf("List(%q) = %q, want exactly the key", key, got)
				}
			}
		}},
		{name: "a cancelled context stops put", run: func(t *testing.T, h Harness, b storage.Backend) {
			key, data := uniqueKey(t, "a.key"), payload("cancel")
			ctx, cancel := context.WithCancel(ctxFor(t))
			cancel()
			_, err := b.Put(ctx, key, data, storage.PutOptions{SHA256: sum(data)})
			wantErr(t, "Put with a cancelled context", err, context.Canceled)
			_, err = b.Stat(ctxFor(t), key, "")
			wantErr(t, "Stat after a cancelled put", err, storage.ErrNotFound)
		}},
		{name: "preflight writes nothing", run: func(t *testing.T, h Harness, b storage.Backend) {
			put(t, b, uniqueKey(t, "seed.key"), payload("seed"))
			before := list(t, b, "")
			p, err := b.Preflight(ctxFor(t))
			if err != nil {
				t.Fatalf("Preflight = %v", err)
			}
			if p.Writable.State == storage.Absent {
				t.Errorf("Preflight says a destination just written to is not writable: %+v", p.Writable)
			}
			after := list(t, b, "")
			if fmt.Sprint(keys(before)) != fmt.Sprint(keys(after)) || len(before) != len(after) {
				t.Fatalf("listing changed across Preflight:\nbefore %q\nafter  %q", keys(before), keys(after))
			}
		}},
	}
}

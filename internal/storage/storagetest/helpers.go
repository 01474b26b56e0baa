package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// ctxFor returns a context that ends with the test or after testTimeout.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// uniqueKey returns a key no other case or run uses: storagetest/<random>/<name>.
func uniqueKey(t *testing.T, name string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	slug := strings.NewReplacer(" ", "-", "/", "-", ":", "", "'", "").Replace(t.Name())
	if len(slug) > 40 {
		slug = slug[len(slug)-40:]
	}
	return "storagetest/" + hex.EncodeToString(b) + "-" + strings.Trim(slug, "-") + "/" + name
}

// payload returns distinct bytes for seed, every byte value included.
func payload(seed string) []byte {
	var b bytes.Buffer
	b.WriteString("keyescrow storagetest " + seed + "\n")
	for i := range 256 {
		b.WriteByte(byte(i))
	}
	return b.Bytes()
}

func sum(data []byte) []byte {
	s := sha256.Sum256(data)
	return s[:]
}

// put stores data under key with its sha256 and fails the test on error.
func put(t *testing.T, b storage.Backend, key string, data []byte) storage.Object {
	t.Helper()
	o, err := b.Put(ctxFor(t), key, data, storage.PutOptions{SHA256: sum(data)})
	if err != nil {
		t.Fatalf("Put(%q) = %v, want success", key, err)
	}
	return o
}

// read returns the bytes Open gives for the version.
func read(t *testing.T, b storage.Backend, key, versionID string) []byte {
	t.Helper()
	r, err := b.Open(ctxFor(t), key, versionID)
	if err != nil {
		t.Fatalf("Open(%q, %q) = %v, want success", key, versionID, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return got
}

// list returns every object List gives under prefix.
func list(t *testing.T, b storage.Backend, prefix string) []storage.Object {
	t.Helper()
	var out []storage.Object
	if err := b.List(ctxFor(t), prefix, func(o storage.Object) error {
		out = append(out, o)
		return nil
	}); err != nil {
		t.Fatalf("List(%q) = %v", prefix, err)
	}
	return out
}

func wantErr(t *testing.T, what string, err, sentinel error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("%s = %v, want an error wrapping %v", what, err, sentinel)
	}
}

func keys(objs []storage.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key
	}
	return out
}

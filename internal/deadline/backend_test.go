package deadline

import (
	"context"
	"crypto/sha256"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/memstore"
)

// stuck is a backend blocked in a system call: it ignores its context
// and returns only when the test ends.
type stuck struct {
	storage.Backend
	release chan struct{}
}

func newStuck(t *testing.T) *stuck {
	m, err := memstore.New(memstore.Options{Versioning: true})
	if err != nil {
		t.Fatal(err)
	}
	s := &stuck{Backend: m, release: make(chan struct{})}
	t.Cleanup(func() { close(s.release) })
	return s
}

func (s *stuck) Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error) {
	<-s.release
	return storage.Object{}, nil
}

func (s *stuck) Open(ctx context.Context, key, v string) (io.ReadCloser, error) {
	return io.NopCloser(readerFunc(func([]byte) (int, error) { <-s.release; return 0, io.EOF })), nil
}

func (s *stuck) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	_ = fn(storage.Object{Key: "a"})
	<-s.release
	return fn(storage.Object{Key: "b"})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

var tiny = Limits{Connect: time.Second, Request: 300 * time.Millisecond, Idle: 100 * time.Millisecond, Run: time.Minute}

func TestAnOperationThatIgnoresItsContextIsLeftBehindAtItsLimit(t *testing.T) {
	b := Bound(newStuck(t), tiny)
	sum := sha256.Sum256([]byte("k"))
	err := within(t, 2*AbandonGrace+5*time.Second, func() error {
		_, err := b.Put(context.Background(), "k", []byte("k"), storage.PutOptions{SHA256: sum[:]})
		return err
	})
	wantLimit(t, err, KeyRequest)
	if !strings.Contains(err.Error(), "left behind") {
		t.Errorf("message %q does not say the operation was left behind", err)
	}
}

func TestAReadThatIgnoresItsContextIsLeftBehindAtTheRequestLimit(t *testing.T) {
	b := Bound(newStuck(t), tiny)
	rc, err := b.Open(context.Background(), "k", "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	err = within(t, 2*AbandonGrace+5*time.Second, func() error { _, err := io.ReadAll(rc); return err })
	wantLimit(t, err, KeyRequest)
}

// A listing is bounded by the run; once it is left behind the caller's
// function is never called again.
func TestAListingLeftBehindNeverCallsBackAgain(t *testing.T) {
	s := newStuck(t)
	b := Bound(s, tiny)
	ctx, cancel := WithRun(context.Background(), time.Now(), 300*time.Millisecond)
	defer cancel()
	var calls atomic.Int32
	err := within(t, 2*AbandonGrace+5*time.Second, func() error {
		return b.List(ctx, "", func(storage.Object) error { calls.Add(1); return nil })
	})
	wantLimit(t, err, KeyRun)
	if calls.Load() != 1 {
		t.Fatalf("fn called %d times, want 1", calls.Load())
	}
}

// Operations that finish in time pass through untouched.
func TestBoundPassesAHealthyBackendThrough(t *testing.T) {
	m, err := memstore.New(memstore.Options{Versioning: true})
	if err != nil {
		t.Fatal(err)
	}
	b := Bound(m, tiny)
	sum := sha256.Sum256([]byte("key bytes"))
	o, err := b.Put(context.Background(), "k", []byte("key bytes"), storage.PutOptions{SHA256: sum[:]})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := b.Open(context.Background(), "k", o.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "key bytes" {
		t.Fatalf("read %q, %v", got, err)
	}
	if b.Type() != m.Type() || b.Location("k") != m.Location("k") {
		t.Fatal("Type or Location differ from the backend's")
	}
}

package deadline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// AbandonGrace is how long an operation whose deadline passed may take to
// return on its own before Bound stops waiting for it. HTTP backends
// return within it; a folder on a hung network mount, blocked in a system
// call, does not, and is left behind.
const AbandonGrace = 2 * time.Second

// Bound returns b with every operation bounded: Put, Stat, Preflight and
// Open (reading the body included, until Close) each within l.Request,
// List within the run's own deadline (each page request is bounded by the
// HTTP guard), and all of them by ctx. An operation that overruns returns
// an error naming the limit (an *Error in its tree, wrapping
// storage.ErrUnavailable) within AbandonGrace of the deadline, even when b
// ignores its context.
func Bound(b storage.Backend, l Limits) storage.Backend {
	return &bounded{b: b, l: l.orDefault()}
}

type bounded struct {
	b storage.Backend
	l Limits
}

var _ storage.Backend = (*bounded)(nil)

func (x *bounded) Type() string                       { return x.b.Type() }
func (x *bounded) Location(key string) string         { return x.b.Location(key) }
func (x *bounded) Capabilities() storage.Capabilities { return x.b.Capabilities() }

// Unwrap returns the backend inside.
func (x *bounded) Unwrap() storage.Backend { return x.b }

func (x *bounded) Preflight(ctx context.Context) (storage.Properties, error) {
	return call(ctx, x.l.Request, func(ctx context.Context) (storage.Properties, error) { return x.b.Preflight(ctx) })
}

func (x *bounded) Put(ctx context.Context, key string, data []byte, opts storage.PutOptions) (storage.Object, error) {
	return call(ctx, x.l.Request, func(ctx context.Context) (storage.Object, error) { return x.b.Put(ctx, key, data, opts) })
}

func (x *bounded) Stat(ctx context.Context, key, versionID string) (storage.Object, error) {
	return call(ctx, x.l.Request, func(ctx context.Context) (storage.Object, error) { return x.b.Stat(ctx, key, versionID) })
}

func (x *bounded) Open(ctx context.Context, key, versionID string) (io.ReadCloser, error) {
	octx, cancel := context.WithTimeoutCause(ctx, x.l.Request, NewError(KeyRequest, x.l.Request))
	octx, p := withProbe(octx)
	rc, err := run(octx, p, func(ctx context.Context) (io.ReadCloser, error) { return x.b.Open(ctx, key, versionID) })
	if err != nil {
		cancel()
		return nil, err
	}
	return &boundedReader{rc: rc, ctx: octx, p: p, cancel: cancel}, nil
}

func (x *bounded) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	lctx, p := withProbe(ctx)
	var (
		mu        sync.Mutex
		abandoned bool
	)
	guarded := func(o storage.Object) error {
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			return context.Cause(lctx)
		}
		return fn(o)
	}
	_, err := run(lctx, p, func(ctx context.Context) (struct{}, error) { return struct{}{}, x.b.List(ctx, prefix, guarded) })
	mu.Lock()
	abandoned = true // a walk left behind never calls fn again
	mu.Unlock()
	return err
}

// call runs fn under its own deadline of limit within ctx.
func call[T any](ctx context.Context, limit time.Duration, fn func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, limit, NewError(KeyRequest, limit))
	defer cancel()
	ctx, p := withProbe(ctx)
	return run(ctx, p, fn)
}

// run calls fn in its own goroutine and waits for it, or for ctx to end
// plus AbandonGrace; the error then names the limit that was hit.
func run[T any](ctx context.Context, p *probe, fn func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fn(ctx)
		ch <- result{v, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		grace := time.NewTimer(AbandonGrace)
		defer grace.Stop()
		select {
		case r = <-ch:
		case <-grace.C:
			var zero T
			return zero, explain(ctx, p, ctx.Err(), true)
		}
	}
	if r.err != nil {
		r.err = explain(ctx, p, r.err, false)
	}
	return r.v, r.err
}

// explain turns err into an error naming the limit that caused it, when a
// limit did: one hit by an HTTP attempt (the probe), or the deadline of
// ctx (the operation's or the run's). Other errors pass unchanged, and so
// does an interruption.
func explain(ctx context.Context, p *probe, err error, abandoned bool) error {
	if err == nil {
		return nil
	}
	var e *Error
	switch {
	case errors.As(err, &e):
	case ctx.Err() != nil && errors.As(context.Cause(ctx), &e):
	case p.get() != nil && transient(err):
		e = p.get()
	default:
		return err
	}
	if abandoned {
		return &OpError{Limit: e, Note: "the destination did not return; it was left behind"}
	}
	return &OpError{Limit: e}
}

// transient reports an error a timed-out attempt could have become.
func transient(err error) bool {
	return errors.Is(err, storage.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// OpError is a storage operation ended by a limit. It wraps only the
// limit (so errors.Is finds context.DeadlineExceeded and
// storage.ErrUnavailable, never context.Canceled); the SDK's own words for
// the aborted request add nothing and may carry a URL.
type OpError struct {
	Limit *Error
	Note  string
}

func (e *OpError) Error() string {
	if e.Note != "" {
		return fmt.Sprintf("%v; %s", e.Limit, e.Note)
	}
	return e.Limit.Error()
}

func (e *OpError) Unwrap() error { return e.Limit }

// boundedReader is an Open body: each Read returns by the operation's
// deadline, and Close ends the operation.
type boundedReader struct {
	rc     io.ReadCloser
	ctx    context.Context
	p      *probe
	cancel context.CancelFunc

	mu   sync.Mutex
	done bool // a Read was left behind: the body is not used again
}

func (r *boundedReader) Read(buf []byte) (int, error) {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return 0, explain(r.ctx, r.p, r.ctx.Err(), true)
	}
	r.mu.Unlock()
	// The read fills its own buffer, so one left behind never writes into
	// the caller's.
	own := make([]byte, len(buf))
	type result struct {
		n   int
		err error
	}
	n, err := run(r.ctx, r.p, func(context.Context) (result, error) {
		n, err := r.rc.Read(own)
		return result{n, err}, nil
	})
	if err != nil {
		r.mu.Lock()
		r.done = true
		r.mu.Unlock()
		return 0, err
	}
	copy(buf, own[:n.n])
	if n.err != nil && n.err != io.EOF {
		return n.n, explain(r.ctx, r.p, n.err, false)
	}
	return n.n, n.err
}

func (r *boundedReader) Close() error {
	r.mu.Lock()
	left := r.done
	r.mu.Unlock()
	var err error
	if !left {
		err = r.rc.Close()
	} else {
		go func() { _ = r.rc.Close() }()
	}
	r.cancel()
	return err
}

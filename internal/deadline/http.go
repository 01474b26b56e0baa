package deadline

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"
)

// Doer is how the storage SDKs send a request: aws-sdk-go-v2's HTTPClient
// and azcore's Transporter both have this method, as *http.Client does.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// GuardDoer returns d with every request guarded by l (see guard).
func GuardDoer(d Doer, l Limits) Doer {
	return &guardedDoer{next: d, l: l.orDefault()}
}

// GuardTransport returns rt with every request guarded by l (see guard).
func GuardTransport(rt http.RoundTripper, l Limits) http.RoundTripper {
	return &guardedTransport{next: rt, l: l.orDefault()}
}

type guardedDoer struct {
	next Doer
	l    Limits
}

func (g *guardedDoer) Do(req *http.Request) (*http.Response, error) {
	return guard(g.l, g.next.Do, req)
}

type guardedTransport struct {
	next http.RoundTripper
	l    Limits
}

func (g *guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return guard(g.l, g.next.RoundTrip, req)
}

// guard sends one attempt of a request under two limits: the whole attempt,
// reading the response body included, must end within l.Request, and once
// a connection is had, no more than l.Idle may pass without a byte of the
// request body sent, the answer's first byte received, or a byte of the
// response body read. Connecting is bounded by the transport's own dial
// and TLS handshake timeouts (l.Connect). A limit that fires cancels the
// attempt (the connection is closed) and the attempt's error, or the
// body's next Read, is an *Error naming it. SDK retryers see it as a
// temporary timeout, so another attempt may follow within the operation's
// own deadline.
func guard(l Limits, next func(*http.Request) (*http.Response, error), req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	a := &attempt{cancel: cancel, idle: l.Idle, probe: probeFrom(req.Context())}
	a.request = time.AfterFunc(l.Request, func() { a.fire(NewError(KeyRequest, l.Request)) })
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn:              func(httptrace.GotConnInfo) { a.connected(); a.touch() },
		WroteRequest:         func(httptrace.WroteRequestInfo) { a.touch() },
		GotFirstResponseByte: a.touch,
	})
	out := req.Clone(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		out.Body = &sentBody{rc: req.Body, a: a}
	}
	resp, err := next(out)
	if err != nil {
		a.stop()
		cancel(nil)
		if e := a.fired(); e != nil {
			return nil, e
		}
		// The transport's own dial and TLS handshake timeouts are
		// timeouts.connect.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && !a.hadConn() {
			e := NewError(KeyConnect, l.Connect)
			a.probe.set(e)
			return nil, e
		}
		return nil, err
	}
	resp.Body = &watchedBody{rc: resp.Body, a: a}
	return resp, nil
}

// attempt is one guarded request attempt.
type attempt struct {
	cancel  context.CancelCauseFunc
	idle    time.Duration
	probe   *probe
	request *time.Timer

	mu      sync.Mutex
	idleT   *time.Timer // started by the first touch
	gotConn bool
	stopped bool
	err     *Error
}

// touch records progress: it (re)arms the idle watchdog.
func (a *attempt) touch() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped || a.err != nil {
		return
	}
	if a.idleT == nil {
		a.idleT = time.AfterFunc(a.idle, func() { a.fire(NewError(KeyIdle, a.idle)) })
		return
	}
	a.idleT.Reset(a.idle)
}

func (a *attempt) connected() { a.mu.Lock(); a.gotConn = true; a.mu.Unlock() }

func (a *attempt) hadConn() bool { a.mu.Lock(); defer a.mu.Unlock(); return a.gotConn }

// fire ends the attempt because of e, once.
func (a *attempt) fire(e *Error) {
	a.mu.Lock()
	if a.stopped || a.err != nil {
		a.mu.Unlock()
		return
	}
	a.err = e
	a.mu.Unlock()
	a.probe.set(e)
	a.cancel(e)
}

func (a *attempt) fired() *Error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// stop disarms both limits: the attempt ended.
func (a *attempt) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	a.request.Stop()
	if a.idleT != nil {
		a.idleT.Stop()
	}
}

// sentBody counts the request body's bytes as progress.
type sentBody struct {
	rc io.ReadCloser
	a  *attempt
}

func (b *sentBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.a.touch()
	}
	return n, err
}

func (b *sentBody) Close() error { return b.rc.Close() }

// watchedBody counts the response body's bytes as progress and reports a
// limit that ended the attempt as the error of the Read it interrupted.
type watchedBody struct {
	rc io.ReadCloser
	a  *attempt
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.a.touch()
	}
	if err != nil {
		if e := b.a.fired(); e != nil {
			return n, e
		}
		if err == io.EOF {
			b.a.stop()
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.a.stop()
	err := b.rc.Close()
	b.a.cancel(nil)
	return err
}

// probe collects the limit an attempt hit, for the operation that sent it:
// SDKs wrap or rephrase transport errors, and the operation's error must
// still name the key to raise.
type probe struct {
	mu  sync.Mutex
	err *Error
}

type probeKey struct{}

func withProbe(ctx context.Context) (context.Context, *probe) {
	p := &probe{}
	return context.WithValue(ctx, probeKey{}, p), p
}

func probeFrom(ctx context.Context) *probe {
	p, _ := ctx.Value(probeKey{}).(*probe)
	return p
}

func (p *probe) set(e *Error) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.err == nil {
		p.err = e
	}
	p.mu.Unlock()
}

func (p *probe) get() *Error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Limits returns the limits the transport applies (SDK pipelines read it
// to size their own per-try timeouts).
func (g *guardedTransport) Limits() Limits { return g.l }

// LimitsOf returns the limits of a transport made by GuardTransport.
func LimitsOf(rt http.RoundTripper) (Limits, bool) {
	g, ok := rt.(*guardedTransport)
	if !ok {
		return Limits{}, false
	}
	return g.l, true
}

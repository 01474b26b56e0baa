package faultproxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/testtls"
)

// Op is the kind of storage request a fault applies to.
type Op string

// The operations, for S3 and Azure Blob alike.
const (
	OpPut  Op = "PUT"  // PutObject, Put Blob
	OpHead Op = "HEAD" // HeadObject, Get Blob Properties
	OpGet  Op = "GET"  // GetObject, Get Blob (and the other object-level GETs)
	OpList Op = "LIST" // bucket- or container-level GETs: listings, preflight reads
	OpAny  Op = "ANY"
)

// Classify names the operation of a path-style S3 or Azure Blob request.
func Classify(r *http.Request) Op {
	switch r.Method {
	case http.MethodPut:
		return OpPut
	case http.MethodHead:
		return OpHead
	}
	q := r.URL.Query()
	if q.Has("comp") && q.Get("comp") != "tags" || q.Get("restype") == "container" || q.Get("restype") == "account" {
		return OpList
	}
	// S3 path style: /bucket/key; Azurite: /devstoreaccount1/container/blob.
	path := strings.TrimPrefix(r.URL.Path, "/")
	if rest, ok := strings.CutPrefix(path, "devstoreaccount1/"); ok {
		path = rest
	}
	bucket, key, _ := strings.Cut(path, "/")
	objectLevel := bucket != "" && key != ""
	if !objectLevel {
		return OpList
	}
	return OpGet
}

// Kind is what a fault does.
type Kind string

// The kinds of faults.
const (
	// Stall holds the request forever: the answer never comes.
	Stall Kind = "stall"
	// StallBody sends the answer's headers and half its body, then holds.
	StallBody Kind = "stall-body"
	// Trickle sends the answer's body one byte per Fault.Every.
	Trickle Kind = "trickle"
	// Delay waits Fault.Every, then forwards as usual.
	Delay Kind = "delay"
	// Drop closes the connection before the server sees the request.
	Drop Kind = "drop"
	// LostReply lets the server handle the request, then closes the
	// connection instead of answering.
	LostReply Kind = "lost-reply"
	// Reset answers with a TCP reset before the server sees the request.
	Reset Kind = "reset"
	// Status5xx answers 503 (or Fault.Status) without asking the server.
	Status5xx Kind = "5xx"
	// CorruptRequest flips a byte of the request body (no body: of a
	// header the signature covers).
	CorruptRequest Kind = "corrupt-request"
	// CorruptResponse flips a byte of the answer's body (no body: of a
	// header the client reads, the checksum or length).
	CorruptResponse Kind = "corrupt-response"
	// Hold holds the request, signals Held, and forwards it only when
	// Release is called (or drops it when the client is gone).
	Hold Kind = "hold"
)

// Fault fires on the Nth request matching Op (1-based, counted from Arm),
// and on the Times-1 matching requests after it (Times 0 means once).
type Fault struct {
	Kind   Kind
	Op     Op
	Nth    int
	Times  int
	Every  time.Duration // Delay's wait, Trickle's interval
	Status int           // Status5xx's status; 0 means 503
	// Paths, when set, narrows the matching requests to those whose path
	// or (unescaped) query contains one of these strings, e.g.
	// "/certificate/": the requests about one part of the archive (a
	// listing names its folder in the query's prefix).
	Paths []string
	// After, when set, starts the count only once a request of that
	// operation (matching Paths) has been seen since Arm, e.g. OpPut: the
	// reads that prove what was written, not those that came before.
	After Op
}

// matches reports whether a request of op on target (path?query) counts
// for f.
func (f *Fault) matches(op Op, target string) bool {
	if f.Op != OpAny && f.Op != op {
		return false
	}
	return f.onPath(target)
}

func (f *Fault) onPath(target string) bool {
	return len(f.Paths) == 0 || slices.ContainsFunc(f.Paths, func(p string) bool { return strings.Contains(target, p) })
}

// HTTP is a TLS-terminating reverse proxy on 127.0.0.1 in front of a real
// server (versitygw, MinIO, Azurite), injecting one armed Fault at a time.
// It keeps the client's Host header, so signatures stay valid.
type HTTP struct {
	// Endpoint is https://127.0.0.1:PORT (the served certificate is the
	// one given to NewHTTP, so the server's ca_file still applies).
	Endpoint string
	// Held receives the operation of a request the Hold fault holds.
	Held chan Op

	target  string
	client  *http.Client
	closing chan struct{}

	mu      sync.Mutex
	fault   *Fault
	seen    int  // matching requests since Arm
	after   bool // a request of the fault's After was seen since Arm
	fired   int
	paths   []string // of the requests the fault fired on
	release chan struct{}
	log     []Op
}

// NewHTTP starts a proxy to target (https://… trusted with targetCA, or
// http://…), serving cert; it stops when t ends.
func NewHTTP(t testing.TB, target, targetCA string, cert testtls.Files) *HTTP {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if targetCA != "" {
		pem, err := os.ReadFile(targetCA)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	p := &HTTP{
		target: strings.TrimRight(target, "/"), client: &http.Client{Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		closing: make(chan struct{}), Held: make(chan Op, 16), release: make(chan struct{}),
	}
	p.Endpoint = testtls.Serve(t, cert, p).URL
	t.Cleanup(func() { close(p.closing) }) // runs first: frees held handlers
	return p
}

// Arm replaces the armed fault (nil disarms) and restarts the count.
func (p *HTTP) Arm(f *Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault, p.seen, p.fired, p.paths, p.after = f, 0, 0, nil, false
	p.release = make(chan struct{})
	p.log = nil
}

// Fired reports how often the armed fault fired.
func (p *HTTP) Fired() int { p.mu.Lock(); defer p.mu.Unlock(); return p.fired }

// FiredPaths returns the URL paths of the requests the fault fired on.
func (p *HTTP) FiredPaths() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.paths...)
}

// Ops returns the operations seen since Arm.
func (p *HTTP) Ops() []Op { p.mu.Lock(); defer p.mu.Unlock(); return append([]Op(nil), p.log...) }

// Release lets held requests go on.
func (p *HTTP) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

// take returns the fault that fires for this request, if any.
func (p *HTTP) take(op Op, path, query string) (*Fault, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, op)
	f := p.fault
	if q, err := url.QueryUnescape(query); err == nil {
		query = q
	}
	if f == nil {
		return nil, nil
	}
	counting := f.After == "" || p.after
	if f.After == op && f.onPath(path+"?"+query) {
		p.after = true
	}
	if !counting || !f.matches(op, path+"?"+query) {
		return nil, nil
	}
	p.seen++
	times := max(f.Times, 1)
	if p.seen < f.Nth || p.seen >= f.Nth+times {
		return nil, nil
	}
	p.fired++
	p.paths = append(p.paths, path)
	return f, p.release
}

// wait blocks until the client is gone, the proxy closes or d passes
// (d 0: forever); it reports whether d passed.
func (p *HTTP) wait(r *http.Request, d time.Duration) bool {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
		return true
	case <-r.Context().Done():
	case <-p.closing:
	}
	return false
}

func (p *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := Classify(r)
	f, release := p.take(op, r.URL.Path, r.URL.RawQuery)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if f != nil {
		switch f.Kind {
		case Stall:
			p.wait(r, 0)
			return
		case Delay:
			if !p.wait(r, f.Every) {
				return
			}
		case Drop:
			abort(w, false)
			return
		case Reset:
			abort(w, true)
			return
		case Status5xx:
			status := f.Status
			if status == 0 {
				status = http.StatusServiceUnavailable
			}
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(status)
			fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>ServiceUnavailable</Code><Message>injected %d</Message></Error>", status)
			return
		case CorruptRequest:
			if len(body) > 0 {
				body[len(body)/2] ^= 0x01
			}
		case Hold:
			select {
			case p.Held <- op:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			case <-p.closing:
				return
			}
		}
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host
	out.ContentLength = int64(len(body))
	if f != nil && f.Kind == CorruptRequest && len(body) == 0 {
		out.Header.Set("X-Amz-Date", "20000101T000000Z") // the signature no longer holds
	}
	resp, err := p.client.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		abort(w, false)
		return
	}
	if f != nil && f.Kind == LostReply {
		abort(w, false)
		return
	}
	if f != nil && f.Kind == CorruptResponse {
		if len(respBody) > 0 {
			respBody[len(respBody)/2] ^= 0x01
		} else {
			for _, h := range []string{"X-Amz-Checksum-Sha256", "Content-Md5", "X-Ms-Meta-Sha256", "Etag"} {
				if v := resp.Header.Get(h); v != "" {
					b := []byte(v)
					b[len(b)/2] ^= 0x01
					resp.Header.Set(h, string(b))
					break
				}
			}
		}
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if f == nil || (f.Kind != StallBody && f.Kind != Trickle) || len(respBody) == 0 {
		_, _ = w.Write(respBody)
		return
	}
	fl, _ := w.(http.Flusher)
	if f.Kind == StallBody {
		_, _ = w.Write(respBody[:len(respBody)/2])
		if fl != nil {
			fl.Flush()
		}
		p.wait(r, 0)
		return
	}
	for i := range respBody {
		if _, err := w.Write(respBody[i : i+1]); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
		if !p.wait(r, f.Every) {
			return
		}
	}
}

// abort ends the connection without an answer: a close, or with reset a
// TCP reset (linger 0).
func abort(w http.ResponseWriter, reset bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	c, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if reset {
		if tc, ok := c.(*tls.Conn); ok {
			if raw, ok := tc.NetConn().(*net.TCPConn); ok {
				_ = raw.SetLinger(0)
				_ = raw.Close()
				return
			}
		}
		if raw, ok := c.(*net.TCPConn); ok {
			_ = raw.SetLinger(0)
		}
	}
	_ = c.Close()
}

package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Proxy terminates TLS from the client, opens exactly one upstream
// connection (TLS when Upstream.TLS is set) for each client connection and
// copies bytes both ways unchanged. The client→server stream is also parsed
// as HTTP/1.1 to count requests; nothing is rewritten, so a server that
// closes after each response closes the client's connection too, and a
// server that keeps it alive is seen reused.
type Proxy struct {
	// Dial opens the upstream connection for one client connection.
	Dial func() (net.Conn, error)
	// TLS is the certificate offered to clients (ALPN http/1.1 only); nil
	// means plain TCP.
	TLS *tls.Config

	conns    atomic.Int64
	mu       sync.Mutex
	open     int      // connections open now
	peak     int      // most open at once since the last Take
	requests []string // "METHOD /path?query" in arrival order
}

// Counts is one run's figures.
type Counts struct {
	Connections int64 `json:"connections"`
	// Peak is the most connections open at the same time: the requests
	// a client sends at once.
	Peak     int      `json:"peak"`
	Requests int      `json:"requests"`
	Lines    []string `json:"lines"`
	// ByKind counts requests by S3 operation, e.g. "PUT object", "HEAD bucket".
	ByKind map[string]int `json:"by_kind"`
}

// Serve accepts client connections until l is closed.
func (p *Proxy) Serve(l net.Listener) error {
	if p.TLS != nil {
		l = tls.NewListener(l, p.TLS)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go p.handle(c)
	}
}

func (p *Proxy) handle(client net.Conn) {
	defer client.Close()
	if tc, ok := client.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			return // a probe or a client that gave up: not a connection it used
		}
	}
	p.conns.Add(1)
	p.mu.Lock()
	p.open++
	p.peak = max(p.peak, p.open)
	p.mu.Unlock()
	defer func() { p.mu.Lock(); p.open--; p.mu.Unlock() }()
	up, err := p.Dial()
	if err != nil {
		return
	}
	defer up.Close()
	pr, pw := io.Pipe()
	parsed := make(chan struct{})
	go func() {
		defer close(parsed)
		p.parse(pr)
	}()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(up, io.TeeReader(client, pw))
		_ = pw.Close()
		closeWrite(up)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(client, up)
		closeWrite(client)
		done <- struct{}{}
	}()
	<-done
	// One side finished: an HTTP exchange is over when either closes.
	_ = client.Close()
	_ = up.Close()
	<-done
	_ = pw.Close()
	<-parsed
}

func closeWrite(c net.Conn) {
	switch c := c.(type) {
	case *net.TCPConn:
		_ = c.CloseWrite()
	case *tls.Conn:
		_ = c.CloseWrite()
	}
}

// parse reads HTTP/1.1 requests from r and records each; on anything it
// cannot parse it drains r so the copy never blocks.
func (p *Proxy) parse(r io.Reader) {
	defer io.Copy(io.Discard, r) //nolint:errcheck
	br := bufio.NewReader(r)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		p.record(req.Method + " " + req.URL.RequestURI())
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		_ = req.Body.Close()
	}
}

func (p *Proxy) record(line string) {
	p.mu.Lock()
	p.requests = append(p.requests, line)
	p.mu.Unlock()
}

// Take returns the figures since the last Take and starts counting anew.
func (p *Proxy) Take() Counts {
	p.mu.Lock()
	lines, peak := p.requests, p.peak
	p.requests, p.peak = nil, p.open
	p.mu.Unlock()
	c := Counts{Connections: p.conns.Swap(0), Peak: peak, Requests: len(lines), Lines: lines, ByKind: map[string]int{}}
	if c.Lines == nil {
		c.Lines = []string{}
	}
	for _, l := range lines {
		c.ByKind[Kind(l)]++
	}
	return c
}

// Kind names an S3 request line by method and what it addresses, e.g.
// "PUT object", "GET bucket?versioning", "PUT receipt" (a key ending in
// .receipt.json). Path-style addressing is assumed: /bucket[/key][?query].
func Kind(line string) string {
	method, uri, _ := strings.Cut(line, " ")
	path, query, _ := strings.Cut(uri, "?")
	var sub []string
	for _, kv := range strings.Split(query, "&") {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "versioning", "object-lock", "replication", "location", "retention", "legal-hold", "versions", "list-type", "attributes", "uploads", "tagging":
			sub = append(sub, k)
		}
	}
	sort.Strings(sub)
	target := "bucket"
	if _, key, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/"); ok && key != "" {
		target = "object"
		if strings.HasSuffix(key, ".receipt.json") {
			target = "receipt"
		}
	}
	if len(sub) > 0 {
		target += "?" + strings.Join(sub, "&")
	}
	return method + " " + target
}

// ServeHTTP is the control endpoint: GET /take returns Counts as JSON and
// resets them.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/take" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p.Take())
}

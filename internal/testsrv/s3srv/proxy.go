package s3srv

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/keyescrow/keyescrow/internal/testtls"
)

// Proxy is a TLS-terminating reverse proxy in front of a real server, for
// what no server can do on its own: it records every request (method, path,
// query, S3 action) and, when told, flips one byte of a PutObject body on
// its way in, flips one byte of a GetObject body on its way out, or drops
// the response to a PutObject after the server has handled it (a lost
// response). It keeps the client's Host header, so SigV4 signatures stay
// valid and the server enforces every rule it would without the proxy.
type Proxy struct {
	// Endpoint is https://127.0.0.1:PORT, with the server's certificate.
	Endpoint string

	srv    *Server
	client *http.Client

	mu                                 sync.Mutex
	requests                           []Request
	tamperPut, tamperGet, dropPutReply int
	tamperKey                          string
	light                              bool
}

// Request is one request the proxy saw.
type Request struct {
	Method, Path, Query string
	Header              http.Header
	// Action is the IAM action the request needs (see Action).
	Action string
	// Status is the server's answer (0 when dropped before one).
	Status int
}

// NewProxy starts a proxy in front of srv; it stops when t ends.
func NewProxy(t testing.TB, srv *Server) *Proxy {
	t.Helper()
	p := &Proxy{srv: srv}
	p.client = srv.HTTPClient()
	p.client.Timeout = 0
	p.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p.Endpoint = testtls.Serve(t, srv.TLS, p).URL
	return p
}

// TamperPut flips one byte of the body of the next n PutObject requests.
func (p *Proxy) TamperPut(n int) { p.mu.Lock(); p.tamperPut = n; p.mu.Unlock() }

// TamperGet flips one byte of the body of the next n GetObject responses.
func (p *Proxy) TamperGet(n int) { p.mu.Lock(); p.tamperGet = n; p.mu.Unlock() }

// Light makes the proxy record only each request's method, action and
// status (no headers, path or query): a benchmark in the same process then
// measures its own heap, not the proxy's records.
func (p *Proxy) Light() { p.mu.Lock(); p.light = true; p.mu.Unlock() }

// TamperKey flips a byte of every GetObject response body for the object
// key (path-style: /bucket/key) from now on: a stored copy that the service
// returns altered, while the checksums it reports stay.
func (p *Proxy) TamperKey(bucket, key string) {
	p.mu.Lock()
	p.tamperKey = "/" + bucket + "/" + key
	p.mu.Unlock()
}

func (p *Proxy) tampersKey(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tamperKey != "" && path == p.tamperKey
}

// DropPutReply drops the connection instead of answering the next n
// PutObject requests, after the server has stored the object.
func (p *Proxy) DropPutReply(n int) { p.mu.Lock(); p.dropPutReply = n; p.mu.Unlock() }

// Requests returns what the proxy has seen so far.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

// Reset forgets the requests seen so far.
func (p *Proxy) Reset() { p.mu.Lock(); p.requests = nil; p.mu.Unlock() }

func (p *Proxy) take(n *int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if *n > 0 {
		*n--
		return true
	}
	return false
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	action := Action(r.Method, r.URL.Path, r.URL.Query(), r.Header)
	isPut := action == "s3:PutObject"
	isGet := r.Method == http.MethodGet && (action == "s3:GetObject" || action == "s3:GetObjectVersion")
	if isPut && len(body) > 0 && p.take(&p.tamperPut) {
		body[len(body)/2] ^= 0x01
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.srv.Endpoint+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host // the signature covers it
	out.ContentLength = int64(len(body))
	if r.TransferEncoding != nil {
		out.TransferEncoding = r.TransferEncoding
	}
	resp, err := p.client.Do(out)
	rec := Request{Method: r.Method, Action: action}
	if p.mu.Lock(); !p.light {
		rec.Path, rec.Query, rec.Header = r.URL.Path, r.URL.RawQuery, r.Header.Clone()
	}
	p.mu.Unlock()
	if err != nil {
		p.record(rec)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(resp.Body)
	if isPut && p.take(&p.dropPutReply) {
		p.record(rec)
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	rec.Status = resp.StatusCode
	p.record(rec)
	if isGet && resp.StatusCode == http.StatusOK && len(respBody) > 0 && (p.take(&p.tamperGet) || p.tampersKey(r.URL.Path)) {
		respBody[len(respBody)/2] ^= 0x01
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

func (p *Proxy) record(r Request) { p.mu.Lock(); p.requests = append(p.requests, r); p.mu.Unlock() }

// Action names the IAM action a path-style S3 request needs (the one the
// agent's policy must allow), "" for requests S3 authorizes otherwise.
func Action(method, path string, q url.Values, h http.Header) string {
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 2)
	objectLevel := len(parts) == 2 && parts[1] != ""
	versioned := q.Has("versionId")
	if !objectLevel {
		switch {
		case method == http.MethodHead:
			return "s3:ListBucket"
		case q.Has("versioning") && method == http.MethodGet:
			return "s3:GetBucketVersioning"
		case q.Has("versioning"):
			return "s3:PutBucketVersioning"
		case q.Has("object-lock") && method == http.MethodGet:
			return "s3:GetBucketObjectLockConfiguration"
		case q.Has("object-lock"):
			return "s3:PutBucketObjectLockConfiguration"
		case q.Has("replication"):
			return "s3:GetReplicationConfiguration"
		case q.Has("location"):
			return "s3:GetBucketLocation"
		case q.Has("versions"):
			return "s3:ListBucketVersions"
		case method == http.MethodDelete:
			return "s3:DeleteBucket"
		case method == http.MethodPut:
			return "s3:CreateBucket"
		case method == http.MethodGet:
			return "s3:ListBucket"
		}
		return "unknown:" + method + " bucket?" + q.Encode()
	}
	switch {
	case q.Has("retention") && method == http.MethodGet:
		return "s3:GetObjectRetention"
	case q.Has("retention"):
		return "s3:PutObjectRetention"
	case q.Has("legal-hold") && method == http.MethodGet:
		return "s3:GetObjectLegalHold"
	case q.Has("legal-hold"):
		return "s3:PutObjectLegalHold"
	case q.Has("attributes"):
		if versioned {
			return "s3:GetObjectVersionAttributes"
		}
		return "s3:GetObjectAttributes"
	case method == http.MethodPut:
		return "s3:PutObject"
	case method == http.MethodDelete && versioned:
		return "s3:DeleteObjectVersion"
	case method == http.MethodDelete:
		return "s3:DeleteObject"
	case method == http.MethodGet || method == http.MethodHead:
		if versioned {
			return "s3:GetObjectVersion"
		}
		return "s3:GetObject"
	}
	return "unknown:" + method + " object?" + q.Encode()
}

// ExtraActions are the actions a request needs besides Action: a PutObject
// with lock headers also needs s3:PutObjectRetention / s3:PutObjectLegalHold,
// and a HeadObject shows the lock and legal-hold headers only to a caller
// with s3:GetObjectRetention and s3:GetObjectLegalHold.
func ExtraActions(r Request) []string {
	var out []string
	if r.Method == http.MethodHead && (r.Action == "s3:GetObject" || r.Action == "s3:GetObjectVersion") {
		out = append(out, "s3:GetObjectRetention", "s3:GetObjectLegalHold")
	}
	if r.Action == "s3:PutObject" {
		if r.Header.Get("X-Amz-Object-Lock-Mode") != "" || r.Header.Get("X-Amz-Object-Lock-Retain-Until-Date") != "" {
			out = append(out, "s3:PutObjectRetention")
		}
		if r.Header.Get("X-Amz-Object-Lock-Legal-Hold") != "" {
			out = append(out, "s3:PutObjectLegalHold")
		}
	}
	return out
}

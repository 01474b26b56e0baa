package faultproxy

import (
	"io"
	"net"
	"sync"
	"testing"
)

// TCP is a byte-level proxy on 127.0.0.1 in front of one address, for
// protocols the HTTP proxy cannot see into (TDS). Freeze makes it stop
// moving bytes in both directions while keeping every connection open: a
// network that swallows everything, including a client's cancel request.
type TCP struct {
	// Addr is 127.0.0.1:PORT.
	Addr string

	target string
	ln     net.Listener

	mu     sync.Mutex
	frozen bool
	conns  []net.Conn
}

// NewTCP starts a proxy to target; it stops when t ends.
func NewTCP(t testing.TB, target string) *TCP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &TCP{Addr: ln.Addr().String(), target: target, ln: ln}
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// Freeze stops every byte from now on, in both directions.
func (p *TCP) Freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *TCP) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *TCP) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

// pipe copies src to dst until either fails, holding each chunk read
// while the proxy is frozen (it is never sent).
func (p *TCP) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			frozen := p.frozen
			p.mu.Unlock()
			if frozen {
				// Swallow it and everything after: keep reading so the
				// sender never sees back-pressure, send nothing.
				_, _ = io.Copy(io.Discard, src)
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = dst.Close()
			return
		}
	}
}

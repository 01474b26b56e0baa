package mssqltest

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/keyescrow/keyescrow/internal/testtls"
)

// selfSignedCert makes a throw-away ECDSA certificate for 127.0.0.1 and
// localhost. It is its own CA, so the PEM works for DSN `certificate=`.
func selfSignedCert(now time.Time) (tls.Certificate, error) { return testtls.New(now) }

// certPEM encodes the certificate chain as PEM.
func certPEM(c *tls.Certificate) []byte {
	var b bytes.Buffer
	for _, der := range c.Certificate {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	return b.Bytes()
}

// handshakeTransport carries TLS records inside PRELOGIN packets, the way
// TDS 7.x wraps the TLS handshake. Writes are collected and sent as one TDS
// message when the TLS engine next reads (or on flush), like the driver.
type handshakeTransport struct {
	raw     io.ReadWriter
	spid    uint16
	pending []byte
	rbuf    []byte
}

func (h *handshakeTransport) Read(b []byte) (int, error) {
	if err := h.flush(); err != nil {
		return 0, err
	}
	for len(h.rbuf) == 0 {
		typ, _, payload, err := readPacket(h.raw)
		if err != nil {
			return 0, err
		}
		if typ != pktPrelogin {
			return 0, fmt.Errorf("mssqltest: packet type %#x during TLS handshake", typ)
		}
		h.rbuf = payload
	}
	n := copy(b, h.rbuf)
	h.rbuf = h.rbuf[n:]
	return n, nil
}

func (h *handshakeTransport) Write(b []byte) (int, error) {
	h.pending = append(h.pending, b...)
	return len(b), nil
}

func (h *handshakeTransport) flush() error {
	if len(h.pending) == 0 {
		return nil
	}
	data := h.pending
	h.pending = nil
	return writeMessage(h.raw, pktPrelogin, h.spid, preLoginPacketSize, data)
}

// recordReader never reads past the end of the current TLS record, so the
// plain TDS bytes that follow an encrypted LOGIN7 (encryption OFF) stay on
// the socket.
type recordReader struct {
	r     io.Reader
	stage []byte
	left  int
}

func (rr *recordReader) Read(b []byte) (int, error) {
	if len(rr.stage) == 0 && rr.left == 0 {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(rr.r, hdr); err != nil {
			return 0, err
		}
		rr.stage = hdr
		rr.left = int(binary.BigEndian.Uint16(hdr[3:5]))
	}
	if len(rr.stage) > 0 {
		n := copy(b, rr.stage)
		rr.stage = rr.stage[n:]
		return n, nil
	}
	if len(b) > rr.left {
		b = b[:rr.left]
	}
	n, err := rr.r.Read(b)
	rr.left -= n
	return n, err
}

// switchConn is the net.Conn handed to tls.Server: its byte stream comes
// first from the PRELOGIN wrapper and then straight from the socket.
type switchConn struct {
	net.Conn
	mu sync.Mutex
	r  io.Reader
	w  io.Writer
}

func (c *switchConn) set(r io.Reader, w io.Writer) {
	c.mu.Lock()
	c.r, c.w = r, w
	c.mu.Unlock()
}

func (c *switchConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	r := c.r
	c.mu.Unlock()
	return r.Read(b)
}

func (c *switchConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	w := c.w
	c.mu.Unlock()
	return w.Write(b)
}

// prefixConn replays bytes already read from the socket.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (s *Server) serverTLSConfig(alpn bool) *tls.Config {
	cfg := &tls.Config{
		Certificates:           []tls.Certificate{s.cert},
		MinVersion:             tls.VersionTLS12,
		SessionTicketsDisabled: true, // tickets after the handshake would break the PRELOGIN framing
	}
	if alpn {
		cfg.NextProtos = []string{"tds/8.0"}
	} else {
		// TDS 7.x wraps the handshake in PRELOGIN packets, and SQL Server
		// offers only TLS 1.2 there; FreeTDS hangs with TLS 1.3 in this mode.
		cfg.MaxVersion = tls.VersionTLS12
	}
	return cfg
}

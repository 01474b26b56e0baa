package mssqltest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// conn is one client connection.
type conn struct {
	s       *Server
	raw     net.Conn
	spid    uint16
	r       io.Reader // session reader (after login)
	w       io.Writer // session writer
	fullTLS bool
	pktSize int
	login   Login
	// shortRead is the ShortRead of the fault firing for this batch.
	shortRead int
	// db is the session's current database (USE); open holds the database
	// master keys opened with OPEN MASTER KEY in this session, by database.
	db      string
	loginDB string
	open    map[*dbState]*mkState
}

const handshakeTimeout = 30 * time.Second

func (s *Server) serveConn(raw net.Conn, spid uint16) {
	c := &conn{s: s, raw: raw, spid: spid, pktSize: preLoginPacketSize}
	_ = raw.SetDeadline(time.Now().Add(handshakeTimeout))
	loginR, err := c.handshake()
	if err != nil {
		s.logf("mssqltest: spid %d: handshake: %v", spid, err)
		return
	}
	m, err := readMessage(loginR, c.r)
	if err != nil {
		s.logf("mssqltest: spid %d: reading LOGIN7: %v", spid, err)
		return
	}
	if m.typ != pktLogin7 {
		s.logf("mssqltest: spid %d: expected LOGIN7, got packet type %#x", spid, m.typ)
		return
	}
	_ = raw.SetDeadline(time.Time{})
	if !c.doLogin(m.data) {
		return
	}
	c.session()
}

// handshake runs PRELOGIN and TLS. It returns the reader for the first
// LOGIN7 packet and sets c.r / c.w for everything after it.
func (c *conn) handshake() (io.Reader, error) {
	s := c.s
	var first [1]byte
	if _, err := io.ReadFull(c.raw, first[:]); err != nil {
		return nil, err
	}
	pre := &prefixConn{Conn: c.raw, r: io.MultiReader(bytes.NewReader(first[:]), c.raw)}
	if first[0] == 0x16 { // a TLS ClientHello: TDS 8.0 strict
		if s.cfg.Encryption != EncryptStrict {
			return nil, errors.New("TLS ClientHello (TDS 8.0) but server is not in strict mode")
		}
		tc := tls.Server(pre, s.serverTLSConfig(true))
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TDS 8 TLS handshake: %w", err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "tds/8.0" {
			return nil, fmt.Errorf("TDS 8 client did not offer ALPN tds/8.0 (got %q)", p)
		}
		m, err := readMessage(tc, tc)
		if err != nil {
			return nil, err
		}
		if m.typ != pktPrelogin {
			return nil, fmt.Errorf("expected PRELOGIN, got packet type %#x", m.typ)
		}
		if _, err := parsePrelogin(m.data); err != nil {
			return nil, err
		}
		if err := writeMessage(tc, pktReply, c.spid, preLoginPacketSize, s.preloginReply(encOn)); err != nil {
			return nil, err
		}
		c.r, c.w, c.fullTLS = tc, tc, true
		return tc, nil
	}
	if s.cfg.Encryption == EncryptStrict {
		return nil, errors.New("plain PRELOGIN refused: server requires TDS 8.0 strict encryption")
	}
	m, err := readMessage(pre, pre)
	if err != nil {
		return nil, err
	}
	if m.typ != pktPrelogin {
		return nil, fmt.Errorf("expected PRELOGIN, got packet type %#x", m.typ)
	}
	opts, err := parsePrelogin(m.data)
	if err != nil {
		return nil, err
	}
	client := encOff
	if v := opts[plEncryption]; len(v) > 0 {
		client = v[0]
	}
	answer, ok := negotiate(s.cfg.Encryption, client)
	if err := writeMessage(c.raw, pktReply, c.spid, preLoginPacketSize, s.preloginReply(answer)); err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("client encryption %d refused (encryption required)", client)
	}
	c.r, c.w = pre, c.raw
	if answer == encNotSup {
		return pre, nil
	}
	hs := &handshakeTransport{raw: pre, spid: c.spid}
	sc := &switchConn{Conn: c.raw, r: hs, w: hs}
	tc := tls.Server(sc, s.serverTLSConfig(false))
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS handshake inside PRELOGIN: %w", err)
	}
	if err := hs.flush(); err != nil {
		return nil, err
	}
	sc.set(&recordReader{r: pre}, c.raw)
	if answer == encOff {
		return tc, nil // only the first LOGIN7 packet is encrypted
	}
	c.r, c.w, c.fullTLS = tc, tc, true
	return tc, nil
}

// doLogin authenticates and answers LOGIN7. false: close the connection.
func (c *conn) doLogin(data []byte) bool {
	s := c.s
	l, err := parseLogin7(data)
	if err != nil {
		s.logf("mssqltest: spid %d: %v", c.spid, err)
		return false
	}
	if f, ok := s.takeFault(KindLogin); ok {
		if f.Delay > 0 && !c.sleep(f.Delay) {
			return false
		}
		if f.Drop {
			s.logf("mssqltest: spid %d: injected drop at login", c.spid)
			return false
		}
		if f.Error != nil {
			_ = c.sendError(*f.Error, tokDone)
			return false
		}
	}
	login, ok := s.findLogin(l.user, l.password)
	if !ok {
		s.logf("mssqltest: spid %d: login failed for user %q", c.spid, l.user)
		_ = c.sendError(loginFailed(l.user), tokDone)
		return false
	}
	c.login = login
	size := int(l.packetSize)
	switch {
	case size == 0:
		size = defaultPacketSize
	case size < 512:
		size = 512
	case size > 32767:
		size = 32767
	}
	if c.fullTLS && size > 16383 {
		size = 16383
	}
	t := c.loginReply(l.database, size)
	if err := c.send(t); err != nil {
		return false
	}
	c.pktSize = size
	s.logf("mssqltest: spid %d: login ok for user %q", c.spid, l.user)
	return true
}

// sleep waits d or until the server closes; false means closed.
func (c *conn) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.s.closed:
		return false
	}
}

func (c *conn) send(t tokens) error {
	return writeMessage(c.w, pktReply, c.spid, c.pktSize, t)
}

func (c *conn) sendError(e Error, doneTok byte) error {
	var t tokens
	t.message(tokError, e, c.s.cfg.ServerName)
	t.done(doneTok, doneError, 0, 0)
	return c.send(t)
}

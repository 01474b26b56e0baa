package mssqltest

import (
	"encoding/binary"
	"time"
)

// session serves batches after a successful login until the client leaves,
// the connection breaks or the server closes.
func (c *conn) session() {
	s := c.s
	msgs := make(chan message)
	done := make(chan struct{})
	defer close(done)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(msgs)
		for {
			m, err := readMessage(c.r, c.r)
			if err != nil {
				return
			}
			select {
			case msgs <- m:
			case <-done:
				return
			}
		}
	}()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				return
			}
			var err error
			switch m.typ {
			case pktSQLBatch:
				var keep bool
				keep, err = c.batch(m, msgs)
				if !keep {
					return
				}
			case pktRPC:
				// go-mssqldb sends parameterised queries as sp_executesql. The
				// statements the stand-in knows take literals only, and SQL
				// Server rejects a parameter there with Msg 102.
				s.record(KindOther)
				err = c.sendError(Error{Number: 102, State: 1, Class: 15, Message: "Incorrect syntax near '@p1'."}, tokDoneProc)
			case pktAttention:
				err = c.sendAttnAck()
			default:
				s.logf("mssqltest: spid %d: unexpected packet type %#x", c.spid, m.typ)
				return
			}
			if err != nil {
				return
			}
		case <-s.closed:
			return
		}
	}
}

func (c *conn) sendAttnAck() error {
	var t tokens
	t.done(tokDone, doneAttn, 0, 0)
	return c.send(t)
}

// batchText strips ALL_HEADERS and decodes the UTF-16LE text.
func batchText(b []byte) string {
	if len(b) >= 4 {
		if n := int(binary.LittleEndian.Uint32(b)); n >= 4 && n <= len(b) {
			// ALL_HEADERS starts with its total length, which covers at
			// least one header; plain text would give an absurd value.
			if n >= 4+6 || n == 4 {
				b = b[n:]
			}
		}
	}
	return fromUCS2(b)
}

// batch runs one SQL batch. keep=false closes the connection.
func (c *conn) batch(m message, msgs <-chan message) (keep bool, err error) {
	s := c.s
	sql := batchText(m.data)
	kind := classify(sql)
	s.record(kind)
	s.logf("mssqltest: spid %d: batch kind=%s", c.spid, kind)
	var t tokens
	if m.status&statusResetConnection != 0 {
		// RESETCONNECTION (MS-TDS 2.2.3.1.3, the work of
		// sp_reset_connection): the session's state goes back to that of
		// the login, its database and no opened master key (the keys:
		// unconfirmed).
		t.envBytes(envResetAck, nil, nil)
		c.db, c.open = c.loginDB, nil
	}
	c.shortRead = 0
	if f, ok := s.takeFault(kind); ok {
		c.shortRead = f.ShortRead
		if f.Delay > 0 {
			switch c.wait(f.Delay, msgs) {
			case waitAttention:
				t.done(tokDone, doneAttn, 0, 0)
				return true, c.send(t)
			case waitClosed:
				return false, nil
			}
		}
		if f.Drop {
			s.logf("mssqltest: spid %d: injected drop", c.spid)
			return false, nil
		}
		if f.Error != nil {
			t.message(tokError, *f.Error, s.cfg.ServerName)
			t.done(tokDone, doneError, 0, 0)
			return true, c.send(t)
		}
	}
	c.exec(kind, sql, &t)
	return true, c.send(t)
}

type waitResult int

const (
	waitElapsed waitResult = iota
	waitAttention
	waitClosed
)

// wait sleeps d, ending early on Attention, a broken connection or Close.
func (c *conn) wait(d time.Duration, msgs <-chan message) waitResult {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return waitElapsed
		case m, ok := <-msgs:
			if !ok {
				return waitClosed
			}
			if m.typ == pktAttention {
				return waitAttention
			}
		case <-c.s.closed:
			return waitClosed
		}
	}
}

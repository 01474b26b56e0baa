package mssqltest

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// login7 holds the LOGIN7 fields the stand-in uses.
type login7 struct {
	tdsVersion uint32
	packetSize uint32
	user       string
	password   string
	database   string
	appName    string
}

var errBadLogin7 = errors.New("mssqltest: malformed LOGIN7")

// parseLogin7 decodes the fixed part and the variable strings of LOGIN7.
func parseLogin7(b []byte) (login7, error) {
	var l login7
	if len(b) < 94 {
		return l, errBadLogin7
	}
	l.tdsVersion = binary.LittleEndian.Uint32(b[4:])
	l.packetSize = binary.LittleEndian.Uint32(b[8:])
	field := func(at int) ([]byte, error) {
		off := int(binary.LittleEndian.Uint16(b[at:]))
		n := 2 * int(binary.LittleEndian.Uint16(b[at+2:]))
		if off+n > len(b) {
			return nil, errBadLogin7
		}
		return b[off : off+n], nil
	}
	var err error
	var f []byte
	if f, err = field(40); err != nil {
		return l, err
	}
	l.user = fromUCS2(f)
	if f, err = field(44); err != nil {
		return l, err
	}
	pw := make([]byte, len(f))
	for i, c := range f {
		c ^= 0xA5
		pw[i] = c<<4 | c>>4
	}
	l.password = fromUCS2(pw)
	if f, err = field(48); err != nil {
		return l, err
	}
	l.appName = fromUCS2(f)
	if f, err = field(68); err != nil {
		return l, err
	}
	l.database = fromUCS2(f)
	return l, nil
}

// loginFailed is error 18456 as SQL Server reports it to the client.
func loginFailed(user string) Error {
	return Error{Number: 18456, State: 1, Class: 14, Message: fmt.Sprintf("Login failed for user '%s'.", user)}
}

// loginReply is what SQL Server sends after a successful login.
func (c *conn) loginReply(database string, packetSize int) tokens {
	s := c.s
	var t tokens
	if database == "" {
		database = "master"
	}
	c.db, c.loginDB = database, database
	t.envString(envDatabase, database, "master")
	t.message(tokInfo, Error{Number: 5701, State: 2, Class: 0,
		Message: fmt.Sprintf("Changed database context to '%s'.", database)}, s.cfg.ServerName)
	t.envString(envLanguage, "us_english", "")
	t.message(tokInfo, Error{Number: 5703, State: 1, Class: 0,
		Message: "Changed language setting to us_english."}, s.cfg.ServerName)
	t.envBytes(envCollation, collationLatin1, nil)
	maj, mnr, build := s.versionParts()
	t.loginAck("Microsoft SQL Server", maj, mnr, build)
	t.envString(envPacket, itoa(packetSize), itoa(defaultPacketSize))
	t.done(tokDone, doneFinal, 0, 0)
	return t
}

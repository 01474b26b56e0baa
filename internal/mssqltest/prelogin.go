package mssqltest

import (
	"encoding/binary"
	"errors"
	"sort"
)

// PRELOGIN option tokens.
const (
	plVersion    byte = 0x00
	plEncryption byte = 0x01
	plInstOpt    byte = 0x02
	plThreadID   byte = 0x03
	plMARS       byte = 0x04
	plTraceID    byte = 0x05
	plFedAuth    byte = 0x06
	plTerminator byte = 0xFF
)

// PRELOGIN ENCRYPTION values.
const (
	encOff    byte = 0
	encOn     byte = 1
	encNotSup byte = 2
	encReq    byte = 3
	encStrict byte = 4
)

var errBadPrelogin = errors.New("mssqltest: malformed PRELOGIN")

// parsePrelogin decodes the option table of a PRELOGIN message.
func parsePrelogin(b []byte) (map[byte][]byte, error) {
	opts := map[byte][]byte{}
	for off := 0; ; off += 5 {
		if off >= len(b) {
			return nil, errBadPrelogin
		}
		tok := b[off]
		if tok == plTerminator {
			return opts, nil
		}
		if off+5 > len(b) {
			return nil, errBadPrelogin
		}
		o := int(binary.BigEndian.Uint16(b[off+1:]))
		l := int(binary.BigEndian.Uint16(b[off+3:]))
		if o+l > len(b) {
			return nil, errBadPrelogin
		}
		opts[tok] = b[o : o+l]
	}
}

// buildPrelogin encodes a PRELOGIN option table.
func buildPrelogin(opts map[byte][]byte) []byte {
	keys := make([]int, 0, len(opts))
	for k := range opts {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	off := 5*len(keys) + 1
	var head, body []byte
	for _, k := range keys {
		v := opts[byte(k)]
		head = append(head, byte(k), byte(off>>8), byte(off), byte(len(v)>>8), byte(len(v)))
		body = append(body, v...)
		off += len(v)
	}
	head = append(head, plTerminator)
	return append(head, body...)
}

// preloginReply builds the server's PRELOGIN response.
func (s *Server) preloginReply(encryption byte) []byte {
	maj, mnr, build := s.versionParts()
	return buildPrelogin(map[byte][]byte{
		plVersion:    {byte(maj), byte(mnr), byte(build >> 8), byte(build), 0, 0},
		plEncryption: {encryption},
		plInstOpt:    {0},
		plThreadID:   {},
		plMARS:       {0},
	})
}

// negotiate picks the ENCRYPTION answer for a client's request. ok=false
// means the server refuses the client (after sending the answer).
func negotiate(mode EncryptionMode, client byte) (answer byte, ok bool) {
	switch mode {
	case EncryptNotSupported:
		return encNotSup, true
	case EncryptRequired:
		switch client {
		case encNotSup:
			return encReq, false
		case encOff:
			return encReq, true
		default:
			return encOn, true
		}
	default: // EncryptOff
		switch client {
		case encOff:
			return encOff, true
		case encNotSup:
			return encNotSup, true
		default:
			return encOn, true
		}
	}
}

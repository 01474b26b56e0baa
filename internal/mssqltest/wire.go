package mssqltest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// TDS packet types.
const (
	pktSQLBatch  byte = 0x01
	pktRPC       byte = 0x03
	pktReply     byte = 0x04
	pktAttention byte = 0x06
	pktLogin7    byte = 0x10
	pktPrelogin  byte = 0x12
)

// Packet status bits.
const (
	statusEOM             byte = 0x01
	statusResetConnection byte = 0x08
)

const (
	headerLen = 8
	// preLoginPacketSize is the packet size used before LOGIN7 negotiates
	// one: the smallest a client may ask for (go-mssqldb rejects packets
	// larger than its own size, which a DSN can lower to 512).
	preLoginPacketSize = 512
	// defaultPacketSize is used when LOGIN7 asks for 0.
	defaultPacketSize = 4096
	// maxMessage bounds a client message so a broken client cannot exhaust memory.
	maxMessage = 16 << 20
)

// message is one TDS message: the payloads of its packets concatenated.
type message struct {
	typ    byte
	status byte // status of the first packet (RESETCONNECTION lives here)
	data   []byte
}

// readPacket reads one packet and returns its header fields and payload.
func readPacket(r io.Reader) (typ, status byte, payload []byte, err error) {
	var hdr [headerLen]byte
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, nil, err
	}
	size := int(binary.BigEndian.Uint16(hdr[2:4]))
	if size < headerLen {
		return 0, 0, nil, fmt.Errorf("mssqltest: packet length %d shorter than header", size)
	}
	payload = make([]byte, size-headerLen)
	if _, err = io.ReadFull(r, payload); err != nil {
		return 0, 0, nil, err
	}
	return hdr[0], hdr[1], payload, nil
}

// readMessage reads packets until end-of-message. first supplies the first
// packet, rest the following ones: with encryption OFF only the first LOGIN7
// packet travels inside TLS.
func readMessage(first, rest io.Reader) (message, error) {
	var m message
	r := first
	for n := 0; ; n++ {
		typ, status, payload, err := readPacket(r)
		if err != nil {
			return m, err
		}
		if n == 0 {
			m.typ, m.status = typ, status
		} else if typ != m.typ {
			return m, fmt.Errorf("mssqltest: packet type changed from %#x to %#x inside a message", m.typ, typ)
		}
		if len(m.data)+len(payload) > maxMessage {
			return m, errors.New("mssqltest: client message too large")
		}
		m.data = append(m.data, payload...)
		if status&statusEOM != 0 {
			return m, nil
		}
		r = rest
	}
}

// writeMessage splits data into packets of at most packetSize bytes and
// writes each packet with one Write call.
func writeMessage(w io.Writer, typ byte, spid uint16, packetSize int, data []byte) error {
	maxPayload := packetSize - headerLen
	seq := byte(1)
	for {
		n := min(len(data), maxPayload)
		pkt := make([]byte, headerLen+n)
		pkt[0] = typ
		if n == len(data) {
			pkt[1] = statusEOM
		}
		binary.BigEndian.PutUint16(pkt[2:4], uint16(headerLen+n))
		binary.BigEndian.PutUint16(pkt[4:6], spid)
		pkt[6] = seq
		copy(pkt[headerLen:], data[:n])
		if _, err := w.Write(pkt); err != nil {
			return err
		}
		data = data[n:]
		seq++
		if len(data) == 0 {
			return nil
		}
	}
}

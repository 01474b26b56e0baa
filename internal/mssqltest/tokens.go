package mssqltest

import (
	"encoding/binary"
	"strconv"
	"time"
	"unicode/utf16"
)

// Token types.
const (
	tokColMetadata  byte = 0x81
	tokError        byte = 0xAA
	tokInfo         byte = 0xAB
	tokLoginAck     byte = 0xAD
	tokReturnStatus byte = 0x79
	tokRow          byte = 0xD1
	tokEnvChange    byte = 0xE3
	tokDone         byte = 0xFD
	tokDoneProc     byte = 0xFE
)

// DONE status bits.
const (
	doneFinal uint16 = 0x00
	doneMore  uint16 = 0x01
	doneError uint16 = 0x02
	doneCount uint16 = 0x10
	doneAttn  uint16 = 0x20
)

// ENVCHANGE types.
const (
	envDatabase  byte = 1
	envLanguage  byte = 2
	envPacket    byte = 4
	envCollation byte = 7
	envResetAck  byte = 18
)

// Column types.
const (
	typeIntN      byte = 0x26
	typeGUID      byte = 0x24 // uniqueidentifier (GUIDTYPE)
	typeBitN      byte = 0x68
	typeDateTimeN byte = 0x6F
	typeBigVarBin byte = 0xA5
	typeNVarChar  byte = 0xE7
)

// Current commands in DONE tokens.
const (
	curCmdSelect  uint16 = 0xC1
	curCmdExecute uint16 = 0xE0
)

// PLP (partially length-prefixed) values: varbinary(max) and the other
// (max) types. MS-TDS 2.2.5.2.3: an 8-byte total length (or PLP_NULL), then
// chunks, each a 4-byte length and its bytes, then a zero-length terminator.
const (
	plpNull      uint64 = 0xFFFFFFFFFFFFFFFF
	plpMaxLen    uint16 = 0xFFFF // USHORTMAXLEN in TYPE_INFO: the column is (max)
	plpChunkSize        = 8000   // the stand-in's chunk size; any size is legal
)

// collationLatin1 is SQL_Latin1_General_CP1_CI_AS (LCID 0x0409, flags 0xD0, sort id 52).
var collationLatin1 = []byte{0x09, 0x04, 0xD0, 0x00, 0x34}

// ucs2 encodes s as UTF-16LE.
func ucs2(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// fromUCS2 decodes UTF-16LE (a trailing odd byte is dropped).
func fromUCS2(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// tokens accumulates a token stream.
type tokens []byte

func (t *tokens) u8(v byte)     { *t = append(*t, v) }
func (t *tokens) u16(v uint16)  { *t = binary.LittleEndian.AppendUint16(*t, v) }
func (t *tokens) u32(v uint32)  { *t = binary.LittleEndian.AppendUint32(*t, v) }
func (t *tokens) u64(v uint64)  { *t = binary.LittleEndian.AppendUint64(*t, v) }
func (t *tokens) raw(b []byte)  { *t = append(*t, b...) }
func (t *tokens) bvar(s string) { u := ucs2(s); t.u8(byte(len(u) / 2)); t.raw(u) }
func (t *tokens) usvar(s string) {
	u := ucs2(s)
	t.u16(uint16(len(u) / 2))
	t.raw(u)
}

// withLen writes a token whose body is prefixed by a 16-bit length.
func (t *tokens) withLen(tok byte, body func(b *tokens)) {
	var b tokens
	body(&b)
	t.u8(tok)
	t.u16(uint16(len(b)))
	t.raw(b)
}

func (t *tokens) done(tok byte, status uint16, curCmd uint16, rows uint64) {
	t.u8(tok)
	t.u16(status)
	t.u16(curCmd)
	t.u64(rows)
}

// message writes an ERROR or INFO token.
func (t *tokens) message(tok byte, e Error, server string) {
	t.withLen(tok, func(b *tokens) {
		b.u32(uint32(e.Number))
		b.u8(e.State)
		b.u8(e.Class)
		b.usvar(e.Message)
		b.bvar(server)
		b.bvar("")
		b.u32(1)
	})
}

func (t *tokens) envString(typ byte, newV, oldV string) {
	t.withLen(tokEnvChange, func(b *tokens) {
		b.u8(typ)
		b.bvar(newV)
		b.bvar(oldV)
	})
}

func (t *tokens) envBytes(typ byte, newV, oldV []byte) {
	t.withLen(tokEnvChange, func(b *tokens) {
		b.u8(typ)
		b.u8(byte(len(newV)))
		b.raw(newV)
		b.u8(byte(len(oldV)))
		b.raw(oldV)
	})
}

func (t *tokens) loginAck(progName string, maj, mnr, build int) {
	t.withLen(tokLoginAck, func(b *tokens) {
		b.u8(1)                      // SQL_TSQL
		b.raw([]byte{0x74, 0, 0, 4}) // TDS 7.4
		b.bvar(progName)
		b.raw([]byte{byte(maj), byte(mnr), byte(build >> 8), byte(build)})
	})
}

// column describes one result column.
type column struct {
	name   string
	isInt  bool
	bigint bool // with isInt: bigint (INTN of 8 bytes), else int
	blob   bool // varbinary(max), sent as PLP
	maxLen int  // characters, for NVARCHAR
	// kind, when set, is one of the catalog types below and overrides
	// the flags above.
	kind colKind
	// varbinLen is the maximum length of a varbinary(n) column (colVarBinary).
	varbinLen int
}

// colKind is a column type of the catalog views beyond int and nvarchar.
type colKind int

const (
	colDefault   colKind = iota
	colBit               // bit: value int64 0/1
	colDateTime          // datetime: value time.Time
	colGUID              // uniqueidentifier: value [16]byte in RFC 4122 order
	colVarBinary         // varbinary(n): value []byte
)

// value is one cell: nil, int64, string or []byte (blob columns).
type value any

func (t *tokens) colMetadata(cols []column) {
	t.u8(tokColMetadata)
	t.u16(uint16(len(cols)))
	for _, c := range cols {
		t.u32(0)      // user type
		t.u16(0x0001) // nullable
		switch {
		case c.kind == colBit:
			t.u8(typeBitN)
			t.u8(1)
		case c.kind == colDateTime:
			t.u8(typeDateTimeN)
			t.u8(8)
		case c.kind == colGUID:
			t.u8(typeGUID)
			t.u8(16)
		case c.kind == colVarBinary:
			t.u8(typeBigVarBin)
			t.u16(uint16(c.varbinLen))
		case c.blob:
			// TYPE_INFO of varbinary(max): BIGVARBINARYTYPE with
			// USHORTMAXLEN 0xFFFF, no collation (binary types have none).
			t.u8(typeBigVarBin)
			t.u16(plpMaxLen)
		case c.isInt:
			t.u8(typeIntN)
			t.u8(c.intLen())
		default:
			t.u8(typeNVarChar)
			t.u16(uint16(2 * c.maxLen))
			t.raw(collationLatin1)
		}
		t.bvar(c.name)
	}
}

func (t *tokens) row(cols []column, vals []value) {
	t.u8(tokRow)
	for i, c := range cols {
		v := vals[i]
		switch {
		case c.kind != colDefault:
			t.typed(c, v)
		case c.blob:
			t.plp(v)
		case v == nil && c.isInt:
			t.u8(0)
		case v == nil:
			t.u16(0xFFFF)
		case c.isInt && c.bigint:
			t.u8(8)
			t.u64(uint64(v.(int64)))
		case c.isInt:
			t.u8(4)
			t.u32(uint32(int32(v.(int64))))
		default:
			u := ucs2(v.(string))
			t.u16(uint16(len(u)))
			t.raw(u)
		}
	}
}

// intLen is the INTN length of an integer column.
func (c column) intLen() byte {
	if c.bigint {
		return 8
	}
	return 4
}

// plp writes a PLP value: nil as PLP_NULL; otherwise the known total
// length, the bytes in chunks, and the terminator (an empty value is the
// length 0 and the terminator alone).
func (t *tokens) plp(v value) {
	if v == nil {
		t.u64(plpNull)
		return
	}
	b := v.([]byte)
	t.u64(uint64(len(b)))
	for len(b) > 0 {
		n := min(len(b), plpChunkSize)
		t.u32(uint32(n))
		t.raw(b[:n])
		b = b[n:]
	}
	t.u32(0)
}

// returnStatus writes RETURNSTATUS, the return value of a procedure.
func (t *tokens) returnStatus(v int32) {
	t.u8(tokReturnStatus)
	t.u32(uint32(v))
}

func itoa(n int) string { return strconv.Itoa(n) }

// typed writes a value of a catalog column type (MS-TDS 2.2.5.5.1):
// BITN, DATETIMN (days since 1900-01-01, then 1/300 s since midnight),
// GUIDTYPE (the first three fields little-endian) and BIGVARBINARY.
func (t *tokens) typed(c column, v value) {
	if c.kind == colVarBinary {
		if v == nil {
			t.u16(0xFFFF)
			return
		}
		b := v.([]byte)
		t.u16(uint16(len(b)))
		t.raw(b)
		return
	}
	if v == nil {
		t.u8(0)
		return
	}
	switch c.kind {
	case colBit:
		t.u8(1)
		t.u8(byte(v.(int64)))
	case colDateTime:
		tm := v.(time.Time).UTC()
		day := time.Date(tm.Year(), tm.Month(), tm.Day(), 0, 0, 0, 0, time.UTC)
		days := int32(day.Sub(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)).Hours() / 24)
		ticks := uint32(tm.Sub(day) * 300 / time.Second)
		t.u8(8)
		t.u32(uint32(days))
		t.u32(ticks)
	case colGUID:
		g := v.([16]byte)
		t.u8(16)
		t.raw([]byte{g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6]})
		t.raw(g[8:])
	}
}

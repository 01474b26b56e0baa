package mssqltest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// What the stand-in does here is what SQL Server does, from its documentation
// and its observed messages:
//
//   - OPENROWSET(BULK 'file', SINGLE_BLOB) "reads the contents of data_file
//     as a single-row, single-column rowset of type varbinary(max)" named
//     BulkColumn (Microsoft Learn, "Bulk Importing Large-Object Data",
//     "OPENROWSET (Transact-SQL)"). The file is read by the server, with the
//     service account for a SQL login. The path must be a string literal; the
//     correlation name is required (Msg 491).
//   - It needs ADMINISTER BULK OPERATIONS (granted, through bulkadmin, or
//     implied by CONTROL SERVER; a DENY wins over CONTROL SERVER, not over
//     sysadmin), else Msg 4834 "You do not have permission to use the bulk
//     load statement." On Linux before SQL Server 2022 CU24 / 2025 CU3 only
//     sysadmin may (Config.BulkRequiresSysadmin).
//   - A missing file is Msg 4860; one the server may not open is Msg 4861
//     with the operating system's error.
//   - DATALENGTH of a varbinary(max) is bigint; SUBSTRING of it is
//     varbinary(max) (Msg 537 for a negative length).
//   - master.sys.xp_delete_files 'path' (undocumented; SQL Server 2019, back-
//     ported to 2017 CU18) deletes any file, wildcards allowed in the file
//     name. Older servers: Msg 2812 "Could not find stored procedure".
//     Without sysadmin: Msg 229, EXECUTE permission denied on the object in
//     mssqlsystemresource. A missing file: Msg 22049 "xp_delete_files()
//     returned error 2, 'The system cannot find the file specified.'" (as
//     reported in erikdarlingdata/PerformanceMonitor#972).

// The (max) size of the key file the stand-in will send, like SQL Server's
// 2 GB limit for SINGLE_BLOB but smaller, so a mistake cannot exhaust memory.
const maxBulkFile = 64 << 20

// bulkItem is one SELECT-list item over the bulk rowset.
type bulkItem struct {
	fn            string // "" (the column itself), "DATALENGTH" or "SUBSTRING"
	qual, col     string // the column reference as written
	star          bool
	start, length int64 // SUBSTRING arguments
	alias         string
}

// bulkSelect is SELECT items FROM OPENROWSET(BULK 'path', SINGLE_BLOB) AS alias.
type bulkSelect struct {
	items []bulkItem
	path  string
	alias string
}

// ParseBulkRead parses the statement keyescrow uses to read a file back,
// SELECT … FROM OPENROWSET(BULK N'path', SINGLE_BLOB) AS x, and returns the
// path as the server reads it (quotes undoubled).
func ParseBulkRead(sql string) (path string, err error) {
	b, err := parseBulkSelect(sql)
	if err != nil {
		return "", err
	}
	return b.path, nil
}

func parseBulkSelect(sql string) (*bulkSelect, error) {
	toks, err := lex(sql)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	if err := p.words("SELECT"); err != nil {
		return nil, err
	}
	b := &bulkSelect{}
	for {
		it, err := p.bulkItem()
		if err != nil {
			return nil, err
		}
		b.items = append(b.items, it)
		if !p.isPunct(",") {
			break
		}
		p.next()
	}
	if err := p.words("FROM", "OPENROWSET"); err != nil {
		return nil, err
	}
	if err := p.punct("("); err != nil {
		return nil, err
	}
	if err := p.words("BULK"); err != nil {
		return nil, err
	}
	// Only a literal: a variable here is a syntax error on SQL Server too.
	if b.path, err = p.str(); err != nil {
		return nil, err
	}
	if err := p.punct(","); err != nil {
		return nil, err
	}
	// SINGLE_CLOB, SINGLE_NCLOB and format files exist on SQL Server; the
	// stand-in knows SINGLE_BLOB only and refuses the rest as it refuses
	// any statement it does not know.
	if err := p.words("SINGLE_BLOB"); err != nil {
		return nil, err
	}
	if err := p.punct(")"); err != nil {
		return nil, err
	}
	if p.isWord("AS") {
		p.next()
	}
	if t := p.peek(); t.kind != tWord || isReserved(t.val) {
		if t.kind == tEOF || (t.kind == tPunct && t.val == ";") {
			return nil, &sqlError{err: Error{Number: 491, State: 1, Class: 16,
				Message: "A correlation name must be specified for the bulk rowset in the from clause."}}
		}
		return nil, p.errHere()
	}
	b.alias = p.next().val
	if err := p.end(); err != nil {
		return nil, err
	}
	return b, b.bind()
}

func (p *parser) bulkItem() (bulkItem, error) {
	var it bulkItem
	t := p.peek()
	switch {
	case t.kind == tPunct && t.val == "*":
		p.next()
		it.star = true
		return it, nil
	case t.kind == tWord && (strings.EqualFold(t.val, "DATALENGTH") || strings.EqualFold(t.val, "SUBSTRING")) && p.toks[p.pos+1].kind == tPunct && p.toks[p.pos+1].val == "(":
		it.fn = strings.ToUpper(p.next().val)
		p.next() // (
		if err := p.colRef(&it); err != nil {
			return it, err
		}
		if it.fn == "SUBSTRING" {
			for _, n := range []*int64{&it.start, &it.length} {
				if err := p.punct(","); err != nil {
					return it, err
				}
				v, err := p.intLiteral()
				if err != nil {
					return it, err
				}
				*n = v
			}
		}
		if err := p.punct(")"); err != nil {
			return it, err
		}
	default:
		if err := p.colRef(&it); err != nil {
			return it, err
		}
	}
	if p.isWord("AS") {
		p.next()
		if t := p.peek(); t.kind != tWord && t.kind != tString {
			return it, p.errHere()
		}
		it.alias = p.next().val
	} else if t := p.peek(); t.kind == tWord && !isReserved(t.val) {
		it.alias = p.next().val
	}
	return it, nil
}

// colRef parses column or qualifier.column.
func (p *parser) colRef(it *bulkItem) error {
	if p.peek().kind != tWord || isReserved(p.peek().val) {
		return p.errHere()
	}
	it.col = p.next().val
	if p.isPunct(".") {
		p.next()
		if p.peek().kind != tWord {
			return p.errHere()
		}
		it.qual, it.col = it.col, p.next().val
	}
	return nil
}

func (p *parser) intLiteral() (int64, error) {
	neg := false
	if p.isPunct("-") {
		p.next()
		neg = true
	}
	t := p.peek()
	if t.kind != tNumber {
		return 0, p.errHere()
	}
	p.next()
	var n int64
	for _, c := range t.val {
		n = n*10 + int64(c-'0')
		if n > 1<<31 {
			return 0, syntaxError(t.text)
		}
	}
	if neg {
		n = -n
	}
	return n, nil
}

// bind checks every column reference against the rowset, as SQL Server
// does before running anything (names compare case-insensitively under the
// default collation).
func (b *bulkSelect) bind() error {
	for _, it := range b.items {
		if it.star {
			continue
		}
		if it.qual != "" && !strings.EqualFold(it.qual, b.alias) {
			return &sqlError{err: Error{Number: 4104, State: 1, Class: 16,
				Message: fmt.Sprintf("The multi-part identifier \"%s.%s\" could not be bound.", it.qual, it.col)}}
		}
		if !strings.EqualFold(it.col, "BulkColumn") {
			return &sqlError{err: Error{Number: 207, State: 1, Class: 16,
				Message: fmt.Sprintf("Invalid column name '%s'.", it.col)}}
		}
		if it.fn == "SUBSTRING" && it.length < 0 {
			return &sqlError{err: Error{Number: 537, State: 3, Class: 16,
				Message: "Invalid length parameter passed to the LEFT or SUBSTRING function."}}
		}
	}
	return nil
}

// errBulkPermission is Msg 4834.
var errBulkPermission = Error{Number: 4834, State: 1, Class: 16, Message: "You do not have permission to use the bulk load statement."}

// mayBulkLoad applies SQL Server's rule for OPENROWSET(BULK …).
func (c *conn) mayBulkLoad() bool {
	if c.s.cfg.BulkRequiresSysadmin {
		return c.login.Sysadmin
	}
	return c.login.administerBulk()
}

// readFile answers SELECT … FROM OPENROWSET(BULK …, SINGLE_BLOB).
func (c *conn) readFile(sql string, t *tokens) {
	b, err := parseBulkSelect(sql)
	if err != nil {
		c.failParse(t, sql, err)
		return
	}
	if !c.mayBulkLoad() {
		c.fail(t, errBulkPermission)
		return
	}
	data, e := c.readServerFile(b.path)
	if e != nil {
		c.fail(t, *e)
		return
	}
	sent := data
	if c.shortRead > 0 {
		sent = data[:max(0, len(data)-c.shortRead)]
	}
	cols := make([]column, len(b.items))
	vals := make([]value, len(b.items))
	for i, it := range b.items {
		switch it.fn {
		case "DATALENGTH":
			cols[i] = column{name: it.alias, isInt: true, bigint: true}
			vals[i] = int64(len(data))
		case "SUBSTRING":
			cols[i] = column{name: it.alias, blob: true}
			vals[i] = substring(sent, it.start, it.length)
		default:
			name := it.alias
			if name == "" {
				name = "BulkColumn"
			}
			cols[i] = column{name: name, blob: true}
			vals[i] = sent
		}
	}
	t.colMetadata(cols)
	t.row(cols, vals)
	t.done(tokDone, doneCount, curCmdSelect, 1)
}

// readServerFile reads a file as the server sees path, with SQL Server's
// error for each way it can fail.
func (c *conn) readServerFile(path string) ([]byte, *Error) {
	s := c.s
	missing := &Error{Number: 4860, State: 1, Class: 16, Message: fmt.Sprintf(
		"Cannot bulk load. The file \"%s\" does not exist or you don't have file access rights.", path)}
	denied := &Error{Number: 4861, State: 1, Class: 16, Message: fmt.Sprintf(
		"Cannot bulk load because the file \"%s\" could not be opened. Operating system error code 5(Access is denied.).", path)}
	local, err := s.mapPath(path)
	if err != nil {
		return nil, missing
	}
	fi, err := os.Stat(local)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, missing
	case err != nil, fi.IsDir():
		return nil, denied
	case fi.Size() > maxBulkFile:
		// SQL Server's limit is 2 GB; the stand-in's own is lower.
		return nil, &Error{Number: 4862, State: 1, Class: 16, Message: fmt.Sprintf(
			"Cannot bulk load because the file \"%s\" could not be read. Operating system error code (the stand-in reads at most %d bytes).", path, maxBulkFile)}
	}
	data, err := os.ReadFile(local)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, missing
		}
		return nil, denied
	}
	return data, nil
}

// substring is T-SQL SUBSTRING over bytes: start is 1-based; characters
// before 1 count against length.
func substring(b []byte, start, length int64) []byte {
	end := start + length // exclusive, 1-based
	if start < 1 {
		start = 1
	}
	if end > int64(len(b))+1 {
		end = int64(len(b)) + 1
	}
	if end <= start {
		return []byte{}
	}
	return b[start-1 : end-1]
}

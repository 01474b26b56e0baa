package mssqltest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The catalog views the client reads, with SQL Server's column types
// (Microsoft Learn: sys.databases, sys.symmetric_keys, sys.certificates,
// sys.dm_database_encryption_keys). The stand-in answers
//
//	SELECT col [[AS] alias], … FROM [db.]sys.view [[AS] t]
//	    [WHERE col = literal [AND …]] [ORDER BY col [ASC|DESC], …]
//
// and nothing richer. Metadata visibility ("Metadata Visibility
// Configuration"): sys.databases shows every database (VIEW ANY DATABASE
// is granted to public); sys.symmetric_keys and sys.certificates show rows
// to a login with CONTROL on the database, and none to others (a
// simplification: a real server also shows securables the user owns or
// has some permission on); sys.dm_database_encryption_keys needs VIEW
// SERVER STATE, else Msg 300 then Msg 297.

// CatalogQuery is a parsed catalog SELECT.
type CatalogQuery struct {
	Database string // "" = the session's database
	View     string // e.g. "certificates", lower case
	cols     []catCol
	where    []catCond
	order    []catOrder
}

type catCol struct{ name, alias string }
type catCond struct {
	col string
	val value
}
type catOrder struct {
	col  string
	desc bool
}

// ParseCatalogQuery parses a catalog SELECT and returns its database (as
// the three-part name gives it) and view.
func ParseCatalogQuery(sql string) (CatalogQuery, error) {
	var q CatalogQuery
	p, err := newParser(sql)
	if err != nil {
		return q, err
	}
	if err := p.words("SELECT"); err != nil {
		return q, err
	}
	for {
		name, err := p.colRefName()
		if err != nil {
			return q, err
		}
		c := catCol{name: name, alias: name}
		if p.isWord("AS") {
			p.next()
		}
		if t := p.peek(); t.kind == tWord && (t.quoted || !isReserved(t.val)) {
			c.alias = p.next().val
		}
		q.cols = append(q.cols, c)
		if !p.isPunct(",") {
			break
		}
		p.next()
	}
	if err := p.words("FROM"); err != nil {
		return q, err
	}
	var parts []string
	for {
		if p.isPunct(".") { // db..view
			parts = append(parts, "")
			p.next()
			continue
		}
		t := p.peek()
		if t.kind != tWord {
			return q, p.errHere()
		}
		parts = append(parts, p.next().val)
		if !p.isPunct(".") {
			break
		}
		p.next()
	}
	switch len(parts) {
	case 2:
		q.View = parts[1]
		if !strings.EqualFold(parts[0], "sys") {
			return q, invalidObject(strings.Join(parts, "."))
		}
	case 3:
		q.Database, q.View = parts[0], parts[2]
		if !strings.EqualFold(parts[1], "sys") {
			return q, invalidObject(strings.Join(parts, "."))
		}
	default:
		return q, invalidObject(strings.Join(parts, "."))
	}
	q.View = strings.ToLower(q.View)
	if p.isWord("AS") {
		p.next()
	}
	if t := p.peek(); t.kind == tWord && (t.quoted || !isReserved(t.val)) && !strings.EqualFold(t.val, "WHERE") {
		p.next() // a table alias; column references may carry it
	}
	if p.isWord("WHERE") {
		p.next()
		for {
			col, err := p.colRefName()
			if err != nil {
				return q, err
			}
			if err := p.punct("="); err != nil {
				return q, err
			}
			var v value
			switch t := p.next(); t.kind {
			case tString:
				v = t.val
			case tNumber:
				n, err := strconv.ParseInt(t.val, 10, 64)
				if err != nil {
					return q, syntaxError(t.text)
				}
				v = n
			default:
				return q, syntaxError(t.text)
			}
			q.where = append(q.where, catCond{col: col, val: v})
			if !p.isWord("AND") {
				break
			}
			p.next()
		}
	}
	if p.isWord("ORDER") {
		p.next()
		if err := p.words("BY"); err != nil {
			return q, err
		}
		for {
			col, err := p.colRefName()
			if err != nil {
				return q, err
			}
			o := catOrder{col: col}
			if p.isWord("DESC") {
				p.next()
				o.desc = true
			} else if p.isWord("ASC") {
				p.next()
			}
			q.order = append(q.order, o)
			if !p.isPunct(",") {
				break
			}
			p.next()
		}
	}
	return q, p.end()
}

// colRefName reads col or alias.col and returns col.
func (p *parser) colRefName() (string, error) {
	t := p.peek()
	if t.kind != tWord || (!t.quoted && isReserved(t.val)) {
		return "", p.errHere()
	}
	name := p.next().val
	if p.isPunct(".") {
		p.next()
		t = p.peek()
		if t.kind != tWord {
			return "", p.errHere()
		}
		name = p.next().val
	}
	return name, nil
}

func invalidObject(name string) error {
	return &sqlError{err: Error{Number: 208, State: 1, Class: 16, Message: fmt.Sprintf("Invalid object name '%s'.", name)}}
}

// catTable is a view's rows with its columns.
type catTable struct {
	cols []column
	rows [][]value
}

func (t catTable) colIndex(name string) int {
	for i, c := range t.cols {
		if strings.EqualFold(c.name, name) {
			return i
		}
	}
	return -1
}

var (
	colName     = column{name: "name", maxLen: 128}
	colDate     = func(n string) column { return column{name: n, kind: colDateTime} }
	colInt      = func(n string) column { return column{name: n, isInt: true} }
	colBitC     = func(n string) column { return column{name: n, kind: colBit} }
	colNVarChar = func(n string, l int) column { return column{name: n, maxLen: l} }
	colVarBin   = func(n string, l int) column { return column{name: n, kind: colVarBinary, varbinLen: l} }
)

// Errors of reaching a database, with their sys.messages texts (Microsoft
// Learn, "Database engine events and errors 0 to 999"): 911 a database
// that does not exist (USE), 916 a login the database does not admit
// (severity 14), 942 an offline database (14). A three-part name of a
// missing database is Msg 208 "Invalid object name" (unconfirmed), an
// unknown column 207.
func dbMissing(name string) Error {
	return Error{Number: 911, State: 1, Class: 16, Message: fmt.Sprintf("Database '%s' does not exist. Make sure that the name is entered correctly.", name)}
}

func dbOffline(name string) Error {
	return Error{Number: 942, State: 4, Class: 14, Message: fmt.Sprintf("Database '%s' cannot be opened because it is offline.", name)}
}

func dbNoAccess(login, db string) Error {
	return Error{Number: 916, State: 2, Class: 14, Message: fmt.Sprintf(
		"The server principal \"%s\" is not able to access the database \"%s\" under the current security context.", login, db)}
}

// catalog runs a parsed query against the server's state.
func (c *conn) catalog(q CatalogQuery) (catTable, []Error) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	dbName := q.Database
	if dbName == "" {
		dbName = c.db
	}
	var t catTable
	switch q.View {
	case "databases":
		t.cols = []column{colName, colInt("database_id"), colNVarChar("state_desc", 60), colBitC("is_encrypted"), colBitC("is_master_key_encrypted_by_server")}
		for _, d := range s.dbs {
			state := "ONLINE"
			if d.offline {
				state = "OFFLINE"
			}
			t.rows = append(t.rows, []value{d.name, int64(d.id), state, boolInt(d.tde != ""), boolInt(d.mk != nil && d.mk.bySMK)})
		}
	case "dm_database_encryption_keys":
		if !c.login.controlServer() && !c.login.ViewServerState {
			return t, []Error{
				{Number: 300, State: 1, Class: 14, Message: "VIEW SERVER STATE permission was denied on object 'server', database 'master'."},
				{Number: 297, State: 1, Class: 16, Message: "The user does not have permission to perform this action."},
			}
		}
		t.cols = []column{colInt("database_id"), colInt("encryption_state"), colVarBin("encryptor_thumbprint", 32), colNVarChar("encryptor_type", 32), colNVarChar("key_algorithm", 32), colInt("key_length")}
		anyTDE := false
		for _, d := range s.dbs {
			if d.tde == "" {
				continue
			}
			anyTDE = true
			var thumb []byte
			if cert := s.dbs[0].findCert(d.tde); cert != nil {
				thumb = cert.thumbprint()
			}
			t.rows = append(t.rows, []value{int64(d.id), int64(3), thumb, "CERTIFICATE", "AES", int64(256)})
		}
		if anyTDE {
			// tempdb is encrypted as soon as any database uses TDE, with a
			// key of its own that no certificate protects (its
			// encryptor_thumbprint is empty: unconfirmed detail).
			t.rows = append(t.rows, []value{int64(2), int64(3), []byte{}, nil, "AES", int64(256)})
		}
	case "symmetric_keys", "certificates":
		d := s.findDB(dbName)
		switch {
		case d == nil && q.Database != "":
			return t, []Error{invalidObject(q.Database + ".sys." + q.View).(*sqlError).err}
		case d == nil:
			return t, []Error{dbMissing(dbName)}
		case d.offline:
			return t, []Error{dbOffline(d.name)}
		case !c.login.canAccess(d.name):
			return t, []Error{dbNoAccess(c.login.User, d.name)}
		}
		visible := c.login.canControl(d.name)
		if q.View == "symmetric_keys" {
			t.cols = []column{colName, colInt("symmetric_key_id"), {name: "key_guid", kind: colGUID}, colDate("create_date"), colDate("modify_date"), colInt("key_length"), colNVarChar("algorithm_desc", 60)}
			if visible && d.mk != nil {
				t.rows = append(t.rows, []value{"##MS_DatabaseMasterKey##", int64(101), d.mk.guid, d.mk.created, d.mk.modified, int64(256), "AES_256"})
			}
			if visible && d.id == 1 {
				t.rows = append(t.rows, []value{"##MS_ServiceMasterKey##", int64(102), [16]byte{0x8B, 0x5C, 0x10, 0x5E, 0x20, 0x6A, 0x4B, 0x7A, 0x9C, 0x1D, 0x13, 0x53, 0x73, 0x54, 0x4E, 0x31}, time.Time{}, time.Time{}, int64(256), "AES_256"})
			}
			break
		}
		t.cols = []column{colName, colInt("certificate_id"), colNVarChar("pvt_key_encryption_type", 2), colNVarChar("pvt_key_encryption_type_desc", 60),
			colNVarChar("issuer_name", 442), colNVarChar("subject", 4000), colDate("start_date"), colDate("expiry_date"),
			colVarBin("thumbprint", 32), colDate("pvt_key_last_backup_date")}
		if !visible {
			break
		}
		for _, cs := range d.certs {
			desc := map[PrivateKeyProtection]string{ByMasterKey: "ENCRYPTED_BY_MASTER_KEY", ByPassword: "ENCRYPTED_BY_PASSWORD", NoPrivateKey: "NO_PRIVATE_KEY"}[cs.prot]
			var last value
			if !cs.lastBackup.IsZero() {
				last = cs.lastBackup
			}
			t.rows = append(t.rows, []value{cs.name, int64(cs.id), string(cs.prot), desc, cs.cert.Issuer.CommonName, cs.cert.Subject.CommonName,
				cs.cert.NotBefore, cs.cert.NotAfter, cs.thumbprint(), last})
		}
	default:
		name := "sys." + q.View
		if q.Database != "" {
			name = q.Database + "." + name
		}
		return t, []Error{invalidObject(name).(*sqlError).err}
	}
	return t, nil
}

// project applies WHERE, ORDER BY and the select list.
func (t catTable) project(q CatalogQuery) ([]column, [][]value, *Error) {
	invalidCol := func(n string) *Error {
		return &Error{Number: 207, State: 1, Class: 16, Message: fmt.Sprintf("Invalid column name '%s'.", n)}
	}
	var rows [][]value
	for _, r := range t.rows {
		keep := true
		for _, w := range q.where {
			i := t.colIndex(w.col)
			if i < 0 {
				return nil, nil, invalidCol(w.col)
			}
			if !valueEqual(r[i], w.val) {
				keep = false
			}
		}
		if keep {
			rows = append(rows, r)
		}
	}
	for k := len(q.order) - 1; k >= 0; k-- {
		o := q.order[k]
		i := t.colIndex(o.col)
		if i < 0 {
			return nil, nil, invalidCol(o.col)
		}
		sortRows(rows, i, o.desc)
	}
	cols := make([]column, len(q.cols))
	idx := make([]int, len(q.cols))
	for j, c := range q.cols {
		i := t.colIndex(c.name)
		if i < 0 {
			return nil, nil, invalidCol(c.name)
		}
		idx[j] = i
		cols[j] = t.cols[i]
		cols[j].name = c.alias
	}
	out := make([][]value, len(rows))
	for r, row := range rows {
		out[r] = make([]value, len(idx))
		for j, i := range idx {
			out[r][j] = row[i]
		}
	}
	return cols, out, nil
}

// valueEqual compares as the case-insensitive server collation does.
func valueEqual(a, b value) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && strings.EqualFold(x, y)
	case int64:
		y, ok := b.(int64)
		return ok && x == y
	}
	return false
}

// sortRows is a stable sort on one column (NULLs first, as in SQL Server).
func sortRows(rows [][]value, i int, desc bool) {
	less := func(a, b value) bool {
		switch x := a.(type) {
		case nil:
			return b != nil
		case string:
			y, _ := b.(string)
			return strings.ToLower(x) < strings.ToLower(y)
		case int64:
			y, _ := b.(int64)
			return x < y
		case time.Time:
			y, _ := b.(time.Time)
			return x.Before(y)
		}
		return false
	}
	for a := 1; a < len(rows); a++ {
		for b := a; b > 0; b-- {
			x, y := rows[b-1][i], rows[b][i]
			if (!desc && less(y, x)) || (desc && less(x, y)) {
				rows[b-1], rows[b] = rows[b], rows[b-1]
				continue
			}
			break
		}
	}
}

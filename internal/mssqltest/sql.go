package mssqltest

import (
	"fmt"
	"strconv"
	"strings"
)

// StatementKind classifies a batch for Statements and Inject.
type StatementKind string

// Statement kinds.
const (
	KindLogin      StatementKind = "login"
	KindSelect     StatementKind = "select"
	KindBackupSMK  StatementKind = "backup-service-master-key"
	KindRestoreSMK StatementKind = "restore-service-master-key"
	// KindReadFile is SELECT … FROM OPENROWSET(BULK 'path', SINGLE_BLOB) AS x.
	KindReadFile StatementKind = "openrowset-bulk"
	// KindDeleteFiles is EXEC [master.][sys.]xp_delete_files 'path'.
	KindDeleteFiles StatementKind = "xp-delete-files"
	KindOther       StatementKind = "other"
)

// classify looks at the leading keywords only, so a malformed BACKUP
// SERVICE MASTER KEY still counts as one.
func classify(sql string) StatementKind {
	toks, err := lex(sql)
	if err != nil {
		return KindOther
	}
	p := &parser{toks: toks}
	switch {
	case p.isWord("SELECT") && hasWord(toks, "OPENROWSET"):
		return KindReadFile
	case p.isWord("SELECT") && hasWord(toks, "FROM"):
		return KindCatalog
	case p.isWord("SELECT"):
		return KindSelect
	case (p.isWord("EXEC") || p.isWord("EXECUTE")) && hasWord(toks, "XP_DELETE_FILES"):
		return KindDeleteFiles
	case p.words("BACKUP", "SERVICE", "MASTER", "KEY") == nil:
		return KindBackupSMK
	}
	if k, ok := classifyHierarchy(toks); ok {
		return k
	}
	p = &parser{toks: toks}
	if p.words("RESTORE", "SERVICE", "MASTER", "KEY") == nil {
		return KindRestoreSMK
	}
	return KindOther
}

// hasWord reports whether a word token (not a string) is w, in any case.
func hasWord(toks []token, w string) bool {
	for _, t := range toks {
		if t.kind == tWord && !t.quoted && strings.EqualFold(t.val, w) {
			return true
		}
	}
	return false
}

// ParseBackupServiceMasterKey parses
// BACKUP SERVICE MASTER KEY TO FILE = 'path' ENCRYPTION BY PASSWORD = 'pw' [;]
// (N” or ” literals with doubled quotes, keywords in any case).
func ParseBackupServiceMasterKey(sql string) (path, password string, err error) {
	toks, err := lex(sql)
	if err != nil {
		return "", "", err
	}
	p := &parser{toks: toks}
	if err = p.words("BACKUP", "SERVICE", "MASTER", "KEY", "TO", "FILE"); err != nil {
		return "", "", err
	}
	if err = p.punct("="); err != nil {
		return "", "", err
	}
	if path, err = p.str(); err != nil {
		return "", "", err
	}
	if err = p.words("ENCRYPTION", "BY", "PASSWORD"); err != nil {
		return "", "", err
	}
	if err = p.punct("="); err != nil {
		return "", "", err
	}
	if password, err = p.str(); err != nil {
		return "", "", err
	}
	if err = p.end(); err != nil {
		return "", "", err
	}
	return path, password, nil
}

// ParseRestoreServiceMasterKey parses
// RESTORE SERVICE MASTER KEY FROM FILE = 'path' DECRYPTION BY PASSWORD = 'pw' [FORCE] [;].
func ParseRestoreServiceMasterKey(sql string) (path, password string, force bool, err error) {
	toks, err := lex(sql)
	if err != nil {
		return "", "", false, err
	}
	p := &parser{toks: toks}
	if err = p.words("RESTORE", "SERVICE", "MASTER", "KEY", "FROM", "FILE"); err != nil {
		return "", "", false, err
	}
	if err = p.punct("="); err != nil {
		return "", "", false, err
	}
	if path, err = p.str(); err != nil {
		return "", "", false, err
	}
	if err = p.words("DECRYPTION", "BY", "PASSWORD"); err != nil {
		return "", "", false, err
	}
	if err = p.punct("="); err != nil {
		return "", "", false, err
	}
	if password, err = p.str(); err != nil {
		return "", "", false, err
	}
	if p.isWord("FORCE") {
		p.next()
		force = true
	}
	if err = p.end(); err != nil {
		return "", "", false, err
	}
	return path, password, force, nil
}

// expr is a SELECT-list expression.
type expr struct {
	op      string // "null", "int", "str", "global", "prop", "perms", "cast"
	s       string
	n       int64
	arg     *expr
	castInt bool
	castLen int
	// securable and class are HAS_PERMS_BY_NAME's first two arguments
	// when they are literals.
	securable, class string
}

type selectItem struct {
	e     *expr
	alias string
}

// parseSelect parses SELECT item [[AS] alias], ... [;]
func parseSelect(sql string) ([]selectItem, error) {
	toks, err := lex(sql)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	if err := p.words("SELECT"); err != nil {
		return nil, err
	}
	var items []selectItem
	for {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		it := selectItem{e: e}
		if p.isWord("AS") {
			p.next()
			t := p.peek()
			if t.kind != tWord && t.kind != tString {
				return nil, p.errHere()
			}
			it.alias = p.next().val
		} else if t := p.peek(); t.kind == tWord && !isReserved(t.val) {
			it.alias = p.next().val
		}
		items = append(items, it)
		if !p.isPunct(",") {
			break
		}
		p.next()
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return items, nil
}

func isReserved(w string) bool {
	switch strings.ToUpper(w) {
	case "FROM", "WHERE", "AS", "SELECT", "ORDER", "GROUP", "UNION":
		return true
	}
	return false
}

func (p *parser) expr() (*expr, error) {
	t := p.peek()
	switch {
	case t.kind == tNumber:
		p.next()
		n, err := strconv.ParseInt(t.val, 10, 32)
		if err != nil {
			return nil, syntaxError(t.text)
		}
		return &expr{op: "int", n: n}, nil
	case t.kind == tPunct && t.val == "-":
		p.next()
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if e.op != "int" {
			return nil, syntaxError("-")
		}
		e.n = -e.n
		return e, nil
	case t.kind == tString:
		p.next()
		return &expr{op: "str", s: t.val}, nil
	case t.kind != tWord:
		return nil, p.errHere()
	}
	w := strings.ToUpper(t.val)
	switch w {
	case "NULL":
		p.next()
		return &expr{op: "null"}, nil
	case "@@SERVERNAME", "@@VERSION", "@@SPID":
		p.next()
		return &expr{op: "global", s: w}, nil
	case "SERVERPROPERTY":
		p.next()
		if err := p.punct("("); err != nil {
			return nil, err
		}
		name, err := p.str()
		if err != nil {
			return nil, err
		}
		return &expr{op: "prop", s: name}, p.punct(")")
	case "HAS_PERMS_BY_NAME":
		p.next()
		if err := p.punct("("); err != nil {
			return nil, err
		}
		var args []*expr
		for {
			a, err := p.expr()
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if !p.isPunct(",") {
				break
			}
			p.next()
		}
		if err := p.punct(")"); err != nil {
			return nil, err
		}
		if len(args) < 3 || args[2].op != "str" {
			return nil, &sqlError{err: Error{Number: 174, State: 1, Class: 15,
				Message: "The has_perms_by_name function requires 3 to 5 arguments."}}
		}
		e := &expr{op: "perms", s: args[2].s}
		if args[0].op == "str" && args[1].op == "str" {
			// HAS_PERMS_BY_NAME(N'db', 'DATABASE', 'CONTROL'): a securable.
			e.securable, e.class = args[0].s, args[1].s
		}
		return e, nil
	case "IS_SRVROLEMEMBER":
		p.next()
		if err := p.punct("("); err != nil {
			return nil, err
		}
		role, err := p.str()
		if err != nil {
			return nil, err
		}
		return &expr{op: "role", s: role}, p.punct(")")
	case "CAST":
		p.next()
		if err := p.punct("("); err != nil {
			return nil, err
		}
		a, err := p.expr()
		if err != nil {
			return nil, err
		}
		if err := p.words("AS"); err != nil {
			return nil, err
		}
		e := &expr{op: "cast", arg: a}
		if err := p.castType(e); err != nil {
			return nil, err
		}
		return e, p.punct(")")
	}
	return nil, syntaxError(t.text)
}

func (p *parser) castType(e *expr) error {
	t := p.peek()
	if t.kind != tWord {
		return p.errHere()
	}
	switch strings.ToUpper(t.val) {
	case "INT":
		p.next()
		e.castInt = true
		return nil
	case "NVARCHAR", "VARCHAR", "SYSNAME":
		p.next()
		e.castLen = 30 // T-SQL default length for CAST without (n)
		if strings.EqualFold(t.val, "SYSNAME") {
			e.castLen = 128
			return nil
		}
		if !p.isPunct("(") {
			return nil
		}
		p.next()
		switch n := p.peek(); {
		case n.kind == tWord && strings.EqualFold(n.val, "MAX"):
			e.castLen = 4000
		case n.kind == tNumber:
			v, err := strconv.Atoi(n.val)
			if err != nil || v < 1 || v > 4000 {
				return &sqlError{err: Error{Number: 2717, State: 2, Class: 16,
					Message: fmt.Sprintf("The size (%s) given to the type 'nvarchar' exceeds the maximum allowed (4000).", n.val)}}
			}
			e.castLen = v
		default:
			return p.errHere()
		}
		p.next()
		return p.punct(")")
	}
	return &sqlError{err: Error{Number: 243, State: 2, Class: 16,
		Message: fmt.Sprintf("Type %s is not a defined system type.", t.val)}}
}

package mssqltest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// execStmt is EXEC[UTE] name ['arg' [, 'arg']…] [;].
type execStmt struct {
	name               string // as written, for Msg 2812
	db, schema, object string
	args               []string
}

// ParseDeleteFiles parses EXEC master.sys.xp_delete_files N'path' and
// returns the paths as the server reads them (quotes undoubled).
func ParseDeleteFiles(sql string) (paths []string, err error) {
	e, err := parseExec(sql)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(e.object, "xp_delete_files") {
		return nil, fmt.Errorf("mssqltest: %s is not xp_delete_files", e.name)
	}
	return e.args, nil
}

func parseExec(sql string) (execStmt, error) {
	var e execStmt
	toks, err := lex(sql)
	if err != nil {
		return e, err
	}
	p := &parser{toks: toks}
	if !p.isWord("EXEC") && !p.isWord("EXECUTE") {
		return e, p.errHere()
	}
	p.next()
	// A name of up to three parts; "master..proc" leaves the schema empty.
	if p.peek().kind != tWord {
		return e, p.errHere()
	}
	first := p.next()
	parts := []string{first.val}
	text := first.text
	for p.isPunct(".") {
		p.next()
		text += "."
		if p.isPunct(".") {
			parts = append(parts, "")
			continue
		}
		if p.peek().kind != tWord {
			return e, p.errHere()
		}
		t := p.next()
		parts = append(parts, t.val)
		text += t.text
	}
	if len(parts) > 3 {
		return e, syntaxError(".")
	}
	e.name = text
	e.object = parts[len(parts)-1]
	if len(parts) >= 2 {
		e.schema = parts[len(parts)-2]
	}
	if len(parts) == 3 {
		e.db = parts[0]
	}
	for p.peek().kind == tString {
		e.args = append(e.args, p.next().val)
		if !p.isPunct(",") {
			break
		}
		p.next()
		if p.peek().kind != tString {
			return e, p.errHere()
		}
	}
	return e, p.end()
}

// hasDeleteFiles tells whether the server's version has xp_delete_files:
// SQL Server 2019 (15.x) and later, and 2017 from CU18 (14.0.3257).
func (s *Server) hasDeleteFiles() bool {
	maj, _, build := s.versionParts()
	return maj >= 15 || (maj == 14 && build >= 3257)
}

// execProcedure runs EXEC of a system procedure. The stand-in knows
// xp_delete_files; anything else is Msg 2812, as for a missing procedure.
func (c *conn) execProcedure(sql string, t *tokens) {
	s := c.s
	e, err := parseExec(sql)
	if err != nil {
		c.failParse(t, sql, err)
		return
	}
	known := strings.EqualFold(e.object, "xp_delete_files") &&
		(e.db == "" || strings.EqualFold(e.db, "master")) &&
		(e.schema == "" || strings.EqualFold(e.schema, "sys") || strings.EqualFold(e.schema, "dbo"))
	if !known || !s.hasDeleteFiles() {
		c.fail(t, Error{Number: 2812, State: 62, Class: 16, Message: fmt.Sprintf("Could not find stored procedure '%s'.", e.name)})
		return
	}
	if !c.login.Sysadmin {
		c.fail(t, Error{Number: 229, State: 5, Class: 14, Message: "The EXECUTE permission was denied on the object 'xp_delete_files', database 'mssqlsystemresource', schema 'sys'."})
		return
	}
	if xe := c.deleteFiles(e.args); xe != nil {
		t.message(tokError, *xe, s.cfg.ServerName)
		t.returnStatus(1)
		t.done(tokDoneProc, doneError, curCmdExecute, 0)
		return
	}
	t.returnStatus(0)
	t.done(tokDoneProc, doneFinal, curCmdExecute, 0)
}

// deleteFiles deletes every file each path names (* and ? in the last
// element match several), stopping at the first failure with the Windows
// error SQL Server reports.
func (c *conn) deleteFiles(paths []string) *Error {
	osErr := func(code int, text string) *Error {
		return &Error{Number: 22049, State: 1, Class: 16, Message: fmt.Sprintf("xp_delete_files() returned error %d, '%s'", code, text)}
	}
	notFound := osErr(2, "The system cannot find the file specified.")
	if len(paths) == 0 {
		return osErr(87, "The parameter is incorrect.")
	}
	for _, p := range paths {
		local, err := c.s.mapPath(p)
		if err != nil {
			return notFound
		}
		matches := []string{local}
		if strings.ContainsAny(filepath.Base(local), "*?") {
			if matches, err = filepath.Glob(local); err != nil {
				return osErr(123, "The filename, directory name, or volume label syntax is incorrect.")
			}
		}
		if len(matches) == 0 {
			return notFound
		}
		for _, m := range matches {
			fi, err := os.Lstat(m)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return notFound
			case err != nil, fi.IsDir():
				return osErr(5, "Access is denied.")
			}
			if err := os.Remove(m); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return notFound
				}
				return osErr(5, "Access is denied.")
			}
			c.s.logf("mssqltest: spid %d: xp_delete_files removed a file", c.spid)
		}
	}
	return nil
}

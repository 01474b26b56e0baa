package mssqltest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf16"
)

// exec runs a classified statement and appends its response tokens.
func (c *conn) exec(kind StatementKind, sql string, t *tokens) {
	fail := func(e Error) { c.fail(t, e) }
	failErr := func(err error) { c.failParse(t, sql, err) }
	switch kind {
	case KindSelect:
		items, err := parseSelect(sql)
		if err != nil {
			failErr(err)
			return
		}
		cols, vals, err := evalSelect(items, c.facts())
		if err != nil {
			failErr(err)
			return
		}
		t.colMetadata(cols)
		t.row(cols, vals)
		t.done(tokDone, doneCount, curCmdSelect, 1)
	case KindReadFile:
		c.readFile(sql, t)
	case KindCatalog, KindUse, KindOpenMasterKey, KindCloseMasterKey, KindBackupMasterKey,
		KindRestoreMasterKey, KindBackupCertificate, KindCreateCertificate:
		c.execHierarchy(kind, sql, t)
	case KindDeleteFiles:
		c.execProcedure(sql, t)
	case KindBackupSMK:
		path, pw, err := ParseBackupServiceMasterKey(sql)
		if err != nil {
			failErr(err)
			return
		}
		if e := c.backupSMK(path, pw); e != nil {
			fail(*e)
			return
		}
		t.done(tokDone, doneFinal, 0, 0)
	case KindRestoreSMK:
		path, pw, force, err := ParseRestoreServiceMasterKey(sql)
		if err != nil {
			failErr(err)
			return
		}
		infos, e := c.restoreSMK(path, pw, force)
		if e != nil {
			fail(*e)
			return
		}
		for _, m := range infos {
			t.message(tokInfo, m, c.s.cfg.ServerName)
		}
		t.done(tokDone, doneFinal, 0, 0)
	default:
		toks, err := lex(sql)
		if err != nil {
			failErr(err)
			return
		}
		if toks[0].kind == tEOF {
			t.done(tokDone, doneFinal, 0, 0)
			return
		}
		if toks[0].kind == tWord && (strings.EqualFold(toks[0].val, "EXEC") || strings.EqualFold(toks[0].val, "EXECUTE")) {
			c.execProcedure(sql, t)
			return
		}
		fail(Error{Number: 102, State: 1, Class: 15, Message: fmt.Sprintf("Incorrect syntax near '%s'.", toks[0].text)})
	}
}

// fail answers a batch with one error.
func (c *conn) fail(t *tokens, e Error) {
	t.message(tokError, e, c.s.cfg.ServerName)
	t.done(tokDone, doneError, 0, 0)
}

// failParse answers a batch that did not parse: with SQL Server's error
// when the parser has one, else a syntax error at the first word.
func (c *conn) failParse(t *tokens, sql string, err error) {
	var se *sqlError
	if errors.As(err, &se) {
		c.fail(t, se.err)
		return
	}
	c.fail(t, Error{Number: 102, State: 1, Class: 15, Message: "Incorrect syntax near '" + firstWord(sql) + "'."})
}

func firstWord(sql string) string {
	f := strings.Fields(sql)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func (c *conn) facts() facts {
	s := c.s
	var inst value
	if s.cfg.InstanceName != "" {
		inst = s.cfg.InstanceName
	}
	maj, mnr, _ := s.versionParts()
	engine := int64(3) // Enterprise / Developer
	switch {
	case strings.Contains(s.cfg.Edition, "Standard"):
		engine = 2
	case strings.Contains(s.cfg.Edition, "Express"):
		engine = 4
	}
	return facts{
		props: map[string]value{
			"MACHINENAME":    s.cfg.MachineName,
			"SERVERNAME":     s.cfg.ServerName,
			"INSTANCENAME":   inst,
			"PRODUCTVERSION": s.cfg.ProductVersion,
			// SQL Server 2012 and later.
			"PRODUCTMAJORVERSION": itoa(maj),
			"PRODUCTMINORVERSION": itoa(mnr),
			"EDITION":             s.cfg.Edition,
			"PRODUCTLEVEL":        "RTM",
			"ENGINEEDITION":       engine,
		},
		globals: map[string]value{
			"@@SERVERNAME": s.cfg.ServerName,
			"@@VERSION":    s.versionString(),
			"@@SPID":       int64(c.spid),
		},
		login: c.login,
		hasDB: func(name string) bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.findDB(name) != nil
		},
	}
}

var errNoPermission = Error{Number: 15247, State: 1, Class: 16, Message: "User does not have permission to perform this action."}

// checkPasswordPolicy applies the Windows-style policy SQL Server uses.
func checkPasswordPolicy(pw string) *Error {
	const prefix = "Password validation failed. The password does not meet the operating system policy requirements because it is "
	n := len(utf16.Encode([]rune(pw)))
	switch {
	case n < 8:
		return &Error{Number: 15116, State: 1, Class: 16, Message: prefix + "too short."}
	case n > 128:
		return &Error{Number: 15117, State: 1, Class: 16, Message: prefix + "too long."}
	}
	var up, low, dig, sym int
	for _, r := range pw {
		switch {
		case unicode.IsUpper(r):
			up = 1
		case unicode.IsLower(r):
			low = 1
		case unicode.IsDigit(r):
			dig = 1
		default:
			sym = 1
		}
	}
	if up+low+dig+sym < 3 {
		return &Error{Number: 15118, State: 1, Class: 16, Message: prefix + "not complex enough."}
	}
	return nil
}

func (s *Server) mapPath(p string) (string, error) {
	if s.cfg.MapPath == nil {
		return p, nil
	}
	return s.cfg.MapPath(p)
}

func (c *conn) backupSMK(path, pw string) *Error {
	s := c.s
	if !c.login.controlServer() {
		return &errNoPermission
	}
	if e := checkPasswordPolicy(pw); e != nil {
		return e
	}
	cannotWrite := &Error{Number: 15240, State: 1, Class: 16, Message: fmt.Sprintf(
		"Cannot write into file '%s'. Verify that you have write permissions, that the file path is valid, and that the file does not already exist.", path)}
	local, err := s.mapPath(path)
	if err != nil {
		s.logf("mssqltest: spid %d: MapPath: %v", c.spid, err)
		return cannotWrite
	}
	data, err := sealKeyFile(s.ServiceMasterKey(), pw)
	if err != nil {
		return &Error{Number: 15320, State: 1, Class: 16, Message: "An error occurred while encrypting the service master key."}
	}
	f, err := os.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		s.logf("mssqltest: spid %d: BACKUP SERVICE MASTER KEY: %v", c.spid, err)
		return cannotWrite
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(local)
		return cannotWrite
	}
	return nil
}

// restoreSMK checks, in SQL Server's order, the permission, the file, the
// password, and then whether everything under the current key decrypts;
// FORCE skips what does not (it is lost) with a warning for each.
func (c *conn) restoreSMK(path, pw string, force bool) (infos []Error, fail *Error) {
	s := c.s
	if !c.login.controlServer() {
		return nil, &errNoPermission
	}
	badFile := &Error{Number: 15317, State: 2, Class: 16, Message: "The master key file does not exist or has invalid format."}
	local, err := s.mapPath(path)
	if err != nil {
		return nil, badFile
	}
	data, err := os.ReadFile(local)
	if err != nil {
		s.logf("mssqltest: spid %d: RESTORE SERVICE MASTER KEY: %v", c.spid, err)
		return nil, badFile
	}
	smk, err := OpenKeyFile(data, pw)
	switch {
	case errors.Is(err, ErrWrongPassword):
		return nil, &Error{Number: 15466, State: 1, Class: 16, Message: "An error occurred during decryption."}
	case err != nil:
		return nil, badFile
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Equal(smk, s.smk) {
		return []Error{{Number: 15588, State: 1, Class: 10, Message: "The old and new master keys are identical. No data re-encryption is required."}}, nil
	}
	for _, u := range s.broken {
		e, warn := undecryptableError(u)
		if !force {
			return nil, &e
		}
		infos = append(infos, warn)
	}
	s.broken = nil
	s.smk = smk
	return infos, nil
}

// undecryptableError is SQL Server's error for u without FORCE and its
// warning with FORCE (texts of sys.messages).
func undecryptableError(u Undecryptable) (fail, warn Error) {
	const lost = " The FORCE option can be used to ignore this error and continue the operation but the data encrypted by the old master key will be lost."
	switch u.Kind {
	case SecretServiceMasterKey:
		return Error{Number: 15329, State: 1, Class: 16, Message: "The current master key cannot be decrypted. If this is a database master key, you should attempt to open it in the session before performing this operation." + lost},
			Error{Number: 15585, State: 1, Class: 10, Message: "The current master key cannot be decrypted. The error was ignored because the FORCE option was specified."}
	case SecretLinkedLogin:
		return Error{Number: 15393, State: 1, Class: 16, Message: fmt.Sprintf("An error occurred while decrypting the password for linked login '%s' that was encrypted by the old master key.", u.Name) + lost},
			Error{Number: 15593, State: 1, Class: 10, Message: fmt.Sprintf("An error occurred while decrypting the password for linked login '%s' that was encrypted by the old master key. The error was ignored because the FORCE option was specified.", u.Name)}
	default:
		kind := string(u.Kind)
		if kind == "" {
			kind = string(SecretCredential)
		}
		return Error{Number: 15320, State: 1, Class: 16, Message: fmt.Sprintf("An error occurred while decrypting %s '%s' that was encrypted by the old master key. The FORCE option can be used to ignore this error and continue the operation, but data that cannot be decrypted by the old master key will become unavailable.", kind, u.Name)},
			Error{Number: 15584, State: 1, Class: 10, Message: fmt.Sprintf("An error occurred while decrypting %s '%s' that was encrypted by the old master key. The error was ignored because the FORCE option was specified.", kind, u.Name)}
	}
}

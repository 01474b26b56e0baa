package mssqltest

import (
	"fmt"
	"strings"
	"unicode/utf16"
)

// The statements of the hierarchy, parsed as SQL Server documents them
// (Microsoft Learn, Transact-SQL reference): literals only for paths and
// passwords, keywords in any case, identifiers plain or delimited ([x] with
// ]] for ], "x" with "" for "), an optional trailing semicolon.
//
//	USE database
//	OPEN MASTER KEY DECRYPTION BY PASSWORD = 'password'
//	CLOSE MASTER KEY
//	BACKUP MASTER KEY TO FILE = 'path' ENCRYPTION BY PASSWORD = 'password'
//	RESTORE MASTER KEY FROM FILE = 'path' DECRYPTION BY PASSWORD = 'password'
//	    ENCRYPTION BY PASSWORD = 'password' [FORCE]
//	BACKUP CERTIFICATE name TO FILE = 'path'
//	    [WITH [FORMAT = 'PFX',] PRIVATE KEY (FILE = 'path',
//	     ENCRYPTION BY PASSWORD = 'password' [, DECRYPTION BY PASSWORD = 'password'])]
//	CREATE CERTIFICATE name FROM FILE = 'path'
//	    [WITH [FORMAT = 'PFX',] PRIVATE KEY (FILE = 'path',
//	     DECRYPTION BY PASSWORD = 'password' [, ENCRYPTION BY PASSWORD = 'password'])]
//
// The PRIVATE KEY options may come in any order (the documentation's
// example C of BACKUP CERTIFICATE puts DECRYPTION first). With FORMAT =
// 'PFX' (SQL Server 2022) the certificate and key travel in the one TO/FROM
// FILE and PRIVATE KEY has no FILE; BACKUP also takes ALGORITHM = 'AES_256'
// there.

// maxIdentifier is sysname's length in UTF-16 units (Msg 103 beyond it).
const maxIdentifier = 128

// ident reads a one-part identifier.
func (p *parser) ident() (string, error) {
	t := p.peek()
	if t.kind != tWord || (!t.quoted && strings.HasPrefix(t.val, "@")) {
		return "", p.errHere()
	}
	p.next()
	if len(utf16.Encode([]rune(t.val))) > maxIdentifier {
		start := []rune(t.text)
		if len(start) > maxIdentifier {
			start = start[:maxIdentifier]
		}
		return "", &sqlError{err: Error{Number: 103, State: 4, Class: 15, Message: fmt.Sprintf(
			"The identifier that starts with '%s' is too long. Maximum length is %d.", string(start), maxIdentifier)}}
	}
	if t.val == "" {
		return "", &sqlError{err: Error{Number: 1038, State: 1, Class: 15, Message: "An object or column name is missing or empty."}}
	}
	return t.val, nil
}

// assign reads = 'literal'.
func (p *parser) assign() (string, error) {
	if err := p.punct("="); err != nil {
		return "", err
	}
	return p.str()
}

// ParseUse parses USE database and returns the name.
func ParseUse(sql string) (string, error) {
	p, err := newParser(sql)
	if err != nil {
		return "", err
	}
	if err := p.words("USE"); err != nil {
		return "", err
	}
	db, err := p.ident()
	if err != nil {
		return "", err
	}
	return db, p.end()
}

// ParseOpenMasterKey parses OPEN MASTER KEY DECRYPTION BY PASSWORD = 'pw'.
func ParseOpenMasterKey(sql string) (password string, err error) {
	p, err := newParser(sql)
	if err != nil {
		return "", err
	}
	if err := p.words("OPEN", "MASTER", "KEY", "DECRYPTION", "BY", "PASSWORD"); err != nil {
		return "", err
	}
	if password, err = p.assign(); err != nil {
		return "", err
	}
	return password, p.end()
}

func parseCloseMasterKey(sql string) error {
	p, err := newParser(sql)
	if err != nil {
		return err
	}
	if err := p.words("CLOSE", "MASTER", "KEY"); err != nil {
		return err
	}
	return p.end()
}

// ParseBackupMasterKey parses BACKUP MASTER KEY TO FILE = 'path'
// ENCRYPTION BY PASSWORD = 'pw'.
func ParseBackupMasterKey(sql string) (path, password string, err error) {
	p, err := newParser(sql)
	if err != nil {
		return "", "", err
	}
	if err = p.words("BACKUP", "MASTER", "KEY", "TO", "FILE"); err != nil {
		return "", "", err
	}
	if path, err = p.assign(); err != nil {
		return "", "", err
	}
	if err = p.words("ENCRYPTION", "BY", "PASSWORD"); err != nil {
		return "", "", err
	}
	if password, err = p.assign(); err != nil {
		return "", "", err
	}
	return path, password, p.end()
}

// ParseRestoreMasterKey parses RESTORE MASTER KEY FROM FILE = 'path'
// DECRYPTION BY PASSWORD = 'pw' ENCRYPTION BY PASSWORD = 'pw' [FORCE].
func ParseRestoreMasterKey(sql string) (path, decryption, encryption string, force bool, err error) {
	p, err := newParser(sql)
	if err != nil {
		return "", "", "", false, err
	}
	steps := []func() error{
		func() error { return p.words("RESTORE", "MASTER", "KEY", "FROM", "FILE") },
		func() (e error) { path, e = p.assign(); return e },
		func() error { return p.words("DECRYPTION", "BY", "PASSWORD") },
		func() (e error) { decryption, e = p.assign(); return e },
		func() error { return p.words("ENCRYPTION", "BY", "PASSWORD") },
		func() (e error) { encryption, e = p.assign(); return e },
	}
	for _, f := range steps {
		if err = f(); err != nil {
			return "", "", "", false, err
		}
	}
	if p.isWord("FORCE") {
		p.next()
		force = true
	}
	if err = p.end(); err != nil {
		return "", "", "", false, err
	}
	return path, decryption, encryption, force, nil
}

// CertificateStatement is a parsed BACKUP CERTIFICATE or CREATE
// CERTIFICATE … FROM FILE.
type CertificateStatement struct {
	Name string
	File string // TO FILE / FROM FILE: the .cer, or the .pfx with PFX
	PFX  bool   // WITH FORMAT = 'PFX'
	// PrivateKey: a WITH PRIVATE KEY clause is present.
	PrivateKey         bool
	KeyFile            string // PRIVATE KEY (FILE = …): the .pvk
	EncryptionPassword string
	DecryptionPassword string
	Algorithm          string // ALGORITHM = … (BACKUP with PFX only)
	// hasEncryption and hasDecryption tell an empty password from none.
	hasEncryption, hasDecryption, hasKeyFile bool
}

// HasEncryptionPassword reports whether ENCRYPTION BY PASSWORD was given.
func (c CertificateStatement) HasEncryptionPassword() bool { return c.hasEncryption }

// HasDecryptionPassword reports whether DECRYPTION BY PASSWORD was given.
func (c CertificateStatement) HasDecryptionPassword() bool { return c.hasDecryption }

// ParseBackupCertificate parses BACKUP CERTIFICATE.
func ParseBackupCertificate(sql string) (CertificateStatement, error) {
	return parseCertificateStatement(sql, true)
}

// ParseCreateCertificate parses CREATE CERTIFICATE name FROM FILE.
func ParseCreateCertificate(sql string) (CertificateStatement, error) {
	return parseCertificateStatement(sql, false)
}

func parseCertificateStatement(sql string, backup bool) (CertificateStatement, error) {
	var c CertificateStatement
	p, err := newParser(sql)
	if err != nil {
		return c, err
	}
	first, dir := "CREATE", "FROM"
	if backup {
		first, dir = "BACKUP", "TO"
	}
	if err := p.words(first, "CERTIFICATE"); err != nil {
		return c, err
	}
	if c.Name, err = p.ident(); err != nil {
		return c, err
	}
	if err := p.words(dir, "FILE"); err != nil {
		return c, err
	}
	if c.File, err = p.assign(); err != nil {
		return c, err
	}
	if !p.isWord("WITH") {
		return c, p.end()
	}
	p.next()
	if p.isWord("FORMAT") {
		p.next()
		f, err := p.assign()
		if err != nil {
			return c, err
		}
		if !strings.EqualFold(f, "PFX") {
			return c, &sqlError{err: Error{Number: 102, State: 1, Class: 15, Message: fmt.Sprintf("Incorrect syntax near '%s'.", f)}}
		}
		c.PFX = true
		if err := p.punct(","); err != nil {
			return c, err
		}
	}
	if err := p.words("PRIVATE", "KEY"); err != nil {
		return c, err
	}
	c.PrivateKey = true
	if err := p.punct("("); err != nil {
		return c, err
	}
	seen := map[string]bool{}
	for {
		t := p.peek()
		var opt string
		switch {
		case p.isWord("FILE"):
			opt = "FILE"
			p.next()
			if c.KeyFile, err = p.assign(); err != nil {
				return c, err
			}
			c.hasKeyFile = true
		case p.isWord("ENCRYPTION"), p.isWord("DECRYPTION"):
			opt = strings.ToUpper(p.next().val)
			if err := p.words("BY", "PASSWORD"); err != nil {
				return c, err
			}
			v, err := p.assign()
			if err != nil {
				return c, err
			}
			if opt == "ENCRYPTION" {
				c.EncryptionPassword, c.hasEncryption = v, true
			} else {
				c.DecryptionPassword, c.hasDecryption = v, true
			}
		case backup && c.PFX && p.isWord("ALGORITHM"):
			opt = "ALGORITHM"
			p.next()
			if c.Algorithm, err = p.assign(); err != nil {
				return c, err
			}
		default:
			return c, p.errHere()
		}
		if seen[opt] {
			return c, syntaxError(t.text)
		}
		seen[opt] = true
		if !p.isPunct(",") {
			break
		}
		p.next()
	}
	closeTok := p.peek()
	if err := p.punct(")"); err != nil {
		return c, err
	}
	// What each form requires: a key file unless PFX (which has none), an
	// encryption password to back a private key up, a decryption password
	// to load one.
	missing := (c.PFX == c.hasKeyFile) || (backup && !c.hasEncryption) || (!backup && !c.hasDecryption)
	if missing {
		return c, syntaxError(closeTok.text)
	}
	return c, p.end()
}

func newParser(sql string) (*parser, error) {
	toks, err := lex(sql)
	if err != nil {
		return nil, err
	}
	return &parser{toks: toks}, nil
}

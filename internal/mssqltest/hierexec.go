package mssqltest

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
)

// Statement kinds of the hierarchy.
const (
	KindUse               StatementKind = "use"
	KindCatalog           StatementKind = "catalog" // SELECT … FROM sys.…
	KindOpenMasterKey     StatementKind = "open-master-key"
	KindCloseMasterKey    StatementKind = "close-master-key"
	KindBackupMasterKey   StatementKind = "backup-master-key"
	KindRestoreMasterKey  StatementKind = "restore-master-key"
	KindBackupCertificate StatementKind = "backup-certificate"
	KindCreateCertificate StatementKind = "create-certificate"
)

// classifyHierarchy recognises the hierarchy's statements by their
// leading keywords.
func classifyHierarchy(toks []token) (StatementKind, bool) {
	lead := func(ws ...string) bool {
		p := &parser{toks: toks}
		return p.words(ws...) == nil
	}
	switch {
	case lead("USE"):
		return KindUse, true
	case lead("OPEN", "MASTER", "KEY"):
		return KindOpenMasterKey, true
	case lead("CLOSE", "MASTER", "KEY"):
		return KindCloseMasterKey, true
	case lead("BACKUP", "MASTER", "KEY"):
		return KindBackupMasterKey, true
	case lead("RESTORE", "MASTER", "KEY"):
		return KindRestoreMasterKey, true
	case lead("BACKUP", "CERTIFICATE"):
		return KindBackupCertificate, true
	case lead("CREATE", "CERTIFICATE"):
		return KindCreateCertificate, true
	}
	return "", false
}

// Errors of the hierarchy's statements, with sys.messages texts (Microsoft
// Learn, "Database engine events and errors 15000 to 15999"). sys.messages
// lists 15313 and 15334 at severity 10; the stand-in raises them at 16 so
// that the statement fails, as servers are reported to do (unconfirmed).
var (
	// 15581: a DMK that the SMK does not protect and that is not open
	// (BACKUP MASTER KEY remarks: "if the master key is encrypted only
	// with a password, it must be explicitly opened"), or a database
	// without one where a key must be protected by it.
	errMasterKeyNotOpen = Error{Number: 15581, State: 3, Class: 16, Message: "Please create a master key in the database or open the master key in the session before performing this operation."}
	// 15151 when the database has no master key to open or back up: the
	// message with "find" and "symmetric key 'master key'" (the exact
	// substitution is unconfirmed).
	errNoMasterKey = Error{Number: 15151, State: 1, Class: 16, Message: "Cannot find the symmetric key 'master key', because it does not exist or you do not have permission."}
	// 15313: OPEN MASTER KEY with a password that is not one of the key's.
	errWrongDecryptor = Error{Number: 15313, State: 1, Class: 16, Message: "The key is not encrypted using the specified decryptor."}
)

func noCertificate(name string) Error {
	return Error{Number: 15151, State: 1, Class: 16, Message: fmt.Sprintf("Cannot find the certificate '%s', because it does not exist or you do not have permission.", name)}
}

func cannotWrite(path string) *Error {
	return &Error{Number: 15240, State: 1, Class: 16, Message: fmt.Sprintf(
		"Cannot write into file '%s'. Verify that you have write permissions, that the file path is valid, and that the file does not already exist.", path)}
}

// execHierarchy runs one of the hierarchy's statements.
func (c *conn) execHierarchy(kind StatementKind, sql string, t *tokens) {
	var infos []Error
	var e *Error
	switch kind {
	case KindCatalog:
		c.execCatalog(sql, t)
		return
	case KindUse:
		db, err := ParseUse(sql)
		if err != nil {
			c.failParse(t, sql, err)
			return
		}
		name, e := c.use(db)
		if e != nil {
			c.fail(t, *e)
			return
		}
		// ENVCHANGE (database) and Msg 5701, as after LOGIN7.
		t.envString(envDatabase, name, c.db)
		c.db = name
		t.message(tokInfo, Error{Number: 5701, State: 1, Class: 0, Message: fmt.Sprintf("Changed database context to '%s'.", name)}, c.s.cfg.ServerName)
	case KindOpenMasterKey:
		pw, err := ParseOpenMasterKey(sql)
		if err != nil {
			c.failParse(t, sql, err)
			return
		}
		e = c.openMasterKey(pw)
	case KindCloseMasterKey:
		if err := parseCloseMasterKey(sql); err != nil {
			c.failParse(t, sql, err)
			return
		}
		// CLOSE MASTER KEY closes a key opened in this session and does
		// nothing otherwise ("CLOSE MASTER KEY (Transact-SQL)").
		if d := c.currentDB(); d != nil {
			delete(c.open, d)
		}
	case KindBackupMasterKey:
		path, pw, err := ParseBackupMasterKey(sql)
		if err != nil {
			c.failParse(t, sql, err)
			return
		}
		e = c.backupMasterKey(path, pw)
	case KindRestoreMasterKey:
		path, dec, enc, force, err := ParseRestoreMasterKey(sql)
		if err != nil {
			c.failParse(t, sql, err)
			return
		}
		infos, e = c.restoreMasterKey(path, dec, enc, force)
	case KindBackupCertificate:
		st, err := ParseBackupCertificate(sql)
		if err != nil {
			c.failParse(t, sql, err)
			return
		}
		e = c.backupCertificate(st)
	case KindCreateCertificate:
		st, err := ParseCreateCertificate(sql)
		if err != nil {
			c.failParse(t, sql, err)
			return
		}
		e = c.createCertificate(st)
	}
	if e != nil {
		c.fail(t, *e)
		return
	}
	for _, m := range infos {
		t.message(tokInfo, m, c.s.cfg.ServerName)
	}
	t.done(tokDone, doneFinal, 0, 0)
}

func (c *conn) execCatalog(sql string, t *tokens) {
	q, err := ParseCatalogQuery(sql)
	if err != nil {
		c.failParse(t, sql, err)
		return
	}
	tab, errs := c.catalog(q)
	if errs != nil {
		for _, e := range errs {
			t.message(tokError, e, c.s.cfg.ServerName)
		}
		t.done(tokDone, doneError, 0, 0)
		return
	}
	cols, rows, e := tab.project(q)
	if e != nil {
		c.fail(t, *e)
		return
	}
	t.colMetadata(cols)
	for _, r := range rows {
		t.row(cols, r)
	}
	t.done(tokDone, doneCount, curCmdSelect, uint64(len(rows)))
}

// use checks USE db: it exists (Msg 911), is online (942) and the login
// may enter it (916).
func (c *conn) use(db string) (string, *Error) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findDB(db)
	switch {
	case d == nil:
		e := dbMissing(db)
		return "", &e
	case d.offline:
		e := dbOffline(d.name)
		return "", &e
	case !c.login.canAccess(d.name):
		e := dbNoAccess(c.login.User, d.name)
		return "", &e
	}
	return d.name, nil
}

// currentDB is the session's database (nil if it went away). Callers hold s.mu
// or only compare the pointer.
func (c *conn) currentDB() *dbState { return c.s.findDB(c.db) }

// keyOpen reports whether d's master key is usable in this session: the
// SMK protects it (it opens automatically, "OPEN MASTER KEY" remarks) or
// OPEN MASTER KEY opened this very key.
func (c *conn) keyOpen(d *dbState) bool {
	return d.mk != nil && (d.mk.bySMK || c.open[d] == d.mk)
}

// openMasterKey: CONTROL on the database ("OPEN MASTER KEY", Permissions;
// Msg 15247 without it, unconfirmed), a key to open (15151) and one of its
// passwords (15313).
func (c *conn) openMasterKey(pw string) *Error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	d := c.currentDB()
	switch {
	case d == nil || !c.login.canControl(d.name):
		return &errNoPermission
	case d.mk == nil:
		return &errNoMasterKey
	case !slices.Contains(d.mk.passwords, pw):
		return &errWrongDecryptor
	}
	if c.open == nil {
		c.open = map[*dbState]*mkState{}
	}
	c.open[d] = d.mk
	return nil
}

// writeNew creates path (as the server sees it) with data, never over an
// existing file; any failure is Msg 15240 naming the path.
func (c *conn) writeNew(path string, data []byte) *Error {
	s := c.s
	local, err := s.mapPath(path)
	if err != nil {
		return cannotWrite(path)
	}
	f, err := os.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		s.logf("mssqltest: spid %d: writing a key file: %v", c.spid, err)
		return cannotWrite(path)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(local)
		return cannotWrite(path)
	}
	return nil
}

func (c *conn) readKeyFile(path string) ([]byte, error) {
	local, err := c.s.mapPath(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(local)
	if err != nil {
		return nil, err
	}
	if fi.Size() > sealedMaxLen {
		return nil, errors.New("too large")
	}
	return os.ReadFile(local)
}

// backupMasterKey checks, in this order, CONTROL on the database ("BACKUP
// MASTER KEY", Permissions; 15247 unconfirmed), that there is a key
// (15151), that it is open (15581), the password policy ("This password
// is subject to complexity checks": 15116-15118), and writes a new file
// (15240).
func (c *conn) backupMasterKey(path, pw string) *Error {
	s := c.s
	s.mu.Lock()
	d := c.currentDB()
	var guid [16]byte
	var key []byte
	switch {
	case d == nil || !c.login.canControl(d.name):
		s.mu.Unlock()
		return &errNoPermission
	case d.mk == nil:
		s.mu.Unlock()
		return &errNoMasterKey
	case !c.keyOpen(d):
		s.mu.Unlock()
		return &errMasterKeyNotOpen
	}
	guid, key = d.mk.guid, append([]byte(nil), d.mk.key...)
	s.mu.Unlock()
	if e := checkPasswordPolicy(pw); e != nil {
		return e
	}
	data, err := seal(magicMasterKey, append(guid[:], key...), pw)
	if err != nil {
		return &Error{Number: 15209, State: 1, Class: 16, Message: "An error occurred during encryption."}
	}
	return c.writeNew(path, data)
}

// restoreMasterKey follows "RESTORE MASTER KEY (Transact-SQL)": CONTROL on
// the database; the file (15317 missing or not a master key backup) and
// its password (15466, as for the service master key: unconfirmed); the
// new password's policy; then the current key must be open or openable,
// else 15329 unless FORCE, which loses what only the old key protected
// (the certificates whose private keys it encrypted; warning 15585). "If
// the master key was encrypted by the service master key, the restored
// master key will also be encrypted by the service master key. If there is
// no master key in the current database, RESTORE MASTER KEY creates a
// master key. The new master key will not be automatically encrypted with
// the service master key."
func (c *conn) restoreMasterKey(path, dec, enc string, force bool) ([]Error, *Error) {
	s := c.s
	s.mu.Lock()
	d := c.currentDB()
	if d == nil || !c.login.canControl(d.name) {
		s.mu.Unlock()
		return nil, &errNoPermission
	}
	s.mu.Unlock()
	badFile := &Error{Number: 15317, State: 2, Class: 16, Message: "The master key file does not exist or has invalid format."}
	data, err := c.readKeyFile(path)
	if err != nil {
		return nil, badFile
	}
	guid, key, err := OpenMasterKeyFile(data, dec)
	switch {
	case errors.Is(err, ErrWrongPassword):
		return nil, &Error{Number: 15466, State: 1, Class: 16, Message: "An error occurred during decryption."}
	case err != nil:
		return nil, badFile
	}
	if e := checkPasswordPolicy(enc); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.mk != nil && bytes.Equal(d.mk.key, key) {
		return []Error{{Number: 15588, State: 1, Class: 10, Message: "The old and new master keys are identical. No data re-encryption is required."}}, nil
	}
	var infos []Error
	bySMK := false
	if d.mk != nil {
		bySMK = d.mk.bySMK
		if !c.keyOpen(d) {
			fail, warn := undecryptableError(Undecryptable{Kind: SecretServiceMasterKey})
			if !force {
				return nil, &fail
			}
			infos = append(infos, warn)
			for _, cs := range d.certs {
				if cs.prot == ByMasterKey {
					cs.key, cs.prot = nil, NoPrivateKey
				}
			}
		}
	}
	now := s.cfg.Clock()
	created := now
	if d.mk != nil {
		created = d.mk.created
	}
	d.mk = &mkState{key: key, guid: guid, passwords: []string{enc}, bySMK: bySMK, created: created, modified: now}
	if c.open == nil {
		c.open = map[*dbState]*mkState{}
	}
	c.open[d] = d.mk
	return infos, nil
}

// backupCertificate follows "BACKUP CERTIFICATE (Transact-SQL)": a
// certificate the login may see (15151 "does not exist or you do not have
// permission"); WITH FORMAT = 'PFX' only from SQL Server 2022 (a syntax
// error before); with PRIVATE KEY: a private key (15246), decrypted by the
// DMK, which must be open (15581; a DECRYPTION BY PASSWORD then is 15147),
// or by its own password, which must be given (15334) and right (15465,
// "The private key password is invalid."; unconfirmed for this statement);
// the encryption password's policy; new files (15240). A backup with the
// private key sets pvt_key_last_backup_date ("the date and time the
// certificate's private key was last exported").
func (c *conn) backupCertificate(st CertificateStatement) *Error {
	s := c.s
	if st.PFX && !s.hasPFX() {
		return &Error{Number: 102, State: 1, Class: 15, Message: "Incorrect syntax near 'FORMAT'."}
	}
	s.mu.Lock()
	d := c.currentDB()
	var cs *certState
	if d != nil {
		cs = d.findCert(st.Name)
	}
	if cs == nil || !c.login.canControl(d.name) {
		s.mu.Unlock()
		e := noCertificate(st.Name)
		return &e
	}
	der := cs.cert.Raw
	key := cs.key
	if st.PrivateKey {
		var e *Error
		switch {
		case cs.key == nil:
			e = &Error{Number: 15246, State: 1, Class: 16, Message: fmt.Sprintf("Cannot dump the private key of certificate '%s' because the private key cannot be found.", cs.name)}
		case cs.prot == ByMasterKey && st.HasDecryptionPassword():
			e = &Error{Number: 15147, State: 1, Class: 16, Message: "No decryption password should be provided because the private key of this certificate is encrypted by a master key."}
		case cs.prot == ByMasterKey && !c.keyOpen(d):
			e = &errMasterKeyNotOpen
		case cs.prot == ByPassword && !st.HasDecryptionPassword():
			e = &Error{Number: 15334, State: 1, Class: 16, Message: "The certificate has a private key that is protected by a user defined password. That password needs to be provided to enable the use of the private key."}
		case cs.prot == ByPassword && st.DecryptionPassword != cs.password:
			e = &Error{Number: 15465, State: 1, Class: 16, Message: "The private key password is invalid."}
		}
		if e != nil {
			s.mu.Unlock()
			return e
		}
	}
	s.mu.Unlock()
	if !st.PrivateKey {
		return c.writeNew(st.File, der)
	}
	if e := checkPasswordPolicy(st.EncryptionPassword); e != nil {
		return e
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return &Error{Number: 15209, State: 1, Class: 16, Message: "An error occurred during encryption."}
	}
	if st.PFX {
		data, err := sealPFX(der, pkcs8, st.EncryptionPassword)
		if err != nil {
			return &Error{Number: 15209, State: 1, Class: 16, Message: "An error occurred during encryption."}
		}
		if e := c.writeNew(st.File, data); e != nil {
			return e
		}
	} else {
		data, err := seal(magicPrivateKey, pkcs8, st.EncryptionPassword)
		if err != nil {
			return &Error{Number: 15209, State: 1, Class: 16, Message: "An error occurred during encryption."}
		}
		// Both files are new or neither is left behind.
		if local, err := s.mapPath(st.KeyFile); err == nil {
			if _, err := os.Lstat(local); err == nil {
				return cannotWrite(st.KeyFile)
			}
		}
		if e := c.writeNew(st.File, der); e != nil {
			return e
		}
		if e := c.writeNew(st.KeyFile, data); e != nil {
			if local, err := s.mapPath(st.File); err == nil {
				os.Remove(local)
			}
			return e
		}
	}
	s.mu.Lock()
	cs.lastBackup = s.cfg.Clock()
	s.mu.Unlock()
	return nil
}

// createCertificate follows "CREATE CERTIFICATE (Transact-SQL)" for FROM
// FILE: CONTROL on the database (the documented permission is CREATE
// CERTIFICATE; 15247 unconfirmed); FORMAT = 'PFX' from SQL Server 2022; a
// readable certificate file (15208); the private key's password (15465)
// and that the key matches the certificate (15474); a name and a
// certificate new to the database (15232); without ENCRYPTION BY PASSWORD
// the private key is encrypted by the DMK, which must exist and be open
// (15581); with it, the password's policy.
func (c *conn) createCertificate(st CertificateStatement) *Error {
	s := c.s
	if st.PFX && !s.hasPFX() {
		return &Error{Number: 102, State: 1, Class: 15, Message: "Incorrect syntax near 'FORMAT'."}
	}
	s.mu.Lock()
	d := c.currentDB()
	if d == nil || !c.login.canControl(d.name) {
		s.mu.Unlock()
		return &errNoPermission
	}
	s.mu.Unlock()
	badFile := &Error{Number: 15208, State: 1, Class: 16, Message: "The certificate, asymmetric key, or private key file does not exist or has invalid format."}
	wrongPW := &Error{Number: 15465, State: 1, Class: 16, Message: "The private key password is invalid."}
	data, err := c.readKeyFile(st.File)
	if err != nil {
		return badFile
	}
	var cert *x509.Certificate
	var key any
	if st.PFX {
		cert, key, err = OpenPFXFile(data, st.DecryptionPassword)
		switch {
		case errors.Is(err, ErrWrongPassword):
			return wrongPW
		case err != nil:
			return badFile
		}
	} else {
		if cert, err = x509.ParseCertificate(data); err != nil {
			return badFile
		}
		if st.PrivateKey {
			kd, err := c.readKeyFile(st.KeyFile)
			if err != nil {
				return badFile
			}
			key, err = OpenPrivateKeyFile(kd, st.DecryptionPassword)
			switch {
			case errors.Is(err, ErrWrongPassword):
				return wrongPW
			case err != nil:
				return badFile
			}
		}
	}
	var signer crypto.Signer
	prot := NoPrivateKey
	if key != nil {
		sk, ok := key.(crypto.Signer)
		pub, ok2 := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !ok2 || !pub.Equal(sk.Public()) {
			return &Error{Number: 15474, State: 1, Class: 16, Message: "Invalid private key. The private key does not match the public key of the certificate."}
		}
		signer = sk
		prot = ByMasterKey
		if st.HasEncryptionPassword() {
			prot = ByPassword
			if e := checkPasswordPolicy(st.EncryptionPassword); e != nil {
				return e
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exists := &Error{Number: 15232, State: 1, Class: 16, Message: fmt.Sprintf("A certificate with name '%s' already exists or this certificate already has been added to the database.", st.Name)}
	if d.findCert(st.Name) != nil {
		return exists
	}
	for _, o := range d.certs {
		if bytes.Equal(o.cert.Raw, cert.Raw) {
			return exists
		}
	}
	if prot == ByMasterKey && !c.keyOpen(d) {
		return &errMasterKeyNotOpen
	}
	cs := &certState{name: st.Name, cert: cert, prot: prot, key: signer}
	if prot == ByPassword {
		cs.password = st.EncryptionPassword
	}
	d.addCert(cs)
	return nil
}

// hasPFX: WITH FORMAT = 'PFX' came with SQL Server 2022 (16.x).
func (s *Server) hasPFX() bool {
	maj, _, _ := s.versionParts()
	return maj >= 16
}

package sqlserver

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keyescrow/keyescrow/internal/secret"
)

// SQL Server error numbers of the hierarchy (sys.messages texts; the
// stand-in cites where each is documented).
const (
	ErrNumDatabaseMissing    = 911   // USE of a database that does not exist
	ErrNumDatabaseNoAccess   = 916   // the login cannot enter the database
	ErrNumDatabaseOffline    = 942   // the database is offline
	ErrNumInvalidObject      = 208   // e.g. a three-part name of a missing database
	ErrNumDMVDenied          = 297   // "The user does not have permission to perform this action."
	ErrNumDMVPermission      = 300   // VIEW SERVER STATE permission was denied
	ErrNumSyntax             = 102   // e.g. FORMAT = 'PFX' before SQL Server 2022
	ErrNumWrongDecryptor     = 15313 // OPEN MASTER KEY: not one of the key's passwords
	ErrNumMasterKeyNotOpen   = 15581 // no master key, or not open in the session
	ErrNumNoPrivateKey       = 15246 // the certificate has no private key to export
	ErrNumKeyPasswordNeeded  = 15334 // the private key has its own password, not given
	ErrNumKeyPasswordInvalid = 15465 // the private key password is wrong
	ErrNumNoDecryptionWanted = 15147 // a decryption password for a key the master key protects
	ErrNumCertFileInvalid    = 15208 // certificate or private key file missing or invalid
	ErrNumCertificateExists  = 15232 // the name or the certificate is already in the database
	ErrNumPrivateKeyMismatch = 15474 // the private key is not the certificate's
)

// Steps of the hierarchy, for Error.Step (the database and the
// certificate are named in it).
const (
	stepDMKBackup   = "database master key backup"
	stepCertBackup  = "certificate backup"
	stepDMKRestore  = "database master key restore"
	stepCertRestore = "certificate restore"
)

// cleanupTimeout bounds CLOSE MASTER KEY and the return to master after a
// per-database statement.
const cleanupTimeout = 30 * time.Second

// CertificateFormat is how a certificate and its private key are written.
type CertificateFormat int

// Certificate backup formats.
const (
	// FormatPVK is the certificate (.cer, DER) and its private key (.pvk)
	// in two files: every SQL Server version.
	FormatPVK CertificateFormat = iota
	// FormatPFX is one PKCS #12 file: SQL Server 2022 (16.x) and later.
	FormatPFX
)

// FormatFor chooses PFX on SQL Server 2022 and later, PVK before.
func FormatFor(majorVersion int) CertificateFormat {
	if majorVersion >= 16 {
		return FormatPFX
	}
	return FormatPVK
}

// CertificateFiles names a certificate backup's files as the server sees them.
type CertificateFiles struct {
	Format CertificateFormat
	// Certificate is the .cer (PVK format) or the .pfx (PFX format).
	Certificate string
	// PrivateKey is the .pvk (PVK format only).
	PrivateKey string
}

// CertificateBackup is what BackupCertificate needs.
type CertificateBackup struct {
	Database, Name string
	Files          CertificateFiles
	// Password encrypts the private key in the backup (the server applies
	// its password policy).
	Password secret.Value
	// KeyPassword is the private key's own password in the database, for
	// a certificate whose pvt_key_encryption_type is PW; empty otherwise.
	KeyPassword secret.Value
	// MasterKeyPassword opens the database master key when the service
	// master key does not protect it and the private key is under it.
	MasterKeyPassword secret.Value
}

// CertificateRestore is what CreateCertificateFromFile needs.
type CertificateRestore struct {
	Database, Name string
	Files          CertificateFiles
	// Password decrypts the private key in the files.
	Password secret.Value
	// NewPassword, when set, protects the private key in the database;
	// empty: the database master key protects it (and must be open).
	NewPassword secret.Value
	// MasterKeyPassword opens the database master key when the service
	// master key does not protect it.
	MasterKeyPassword secret.Value
}

// inDatabase runs fn with the session in database db and, when
// masterKeyPassword is set, its master key opened; afterwards it closes
// the key and returns to master, whatever fn did. Errors are translated
// for step and scrubbed of every password given.
func (c *Client) inDatabase(ctx context.Context, step, db string, masterKeyPassword secret.Value, fn func(ctx context.Context) error, passwords ...secret.Value) (err error) {
	passwords = append(passwords, masterKeyPassword)
	defer func() {
		err = withHint(translate(step, err), hierarchyHint(step))
		for _, pw := range passwords {
			err = scrub(err, pw)
		}
	}()
	ctx, cancel := c.limit(ctx)
	defer cancel()
	if _, err := c.conn.ExecContext(ctx, UseStatement(db)); err != nil {
		return err
	}
	// The clean-up statements run even when ctx is cancelled, within
	// their own bound.
	cleanup := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	}
	defer func() {
		// Back to master, so that nothing later runs in db by accident.
		cctx, cancel := cleanup()
		defer cancel()
		if _, e := c.conn.ExecContext(cctx, UseStatement("master")); e != nil {
			c.log.DebugContext(ctx, "returning to master failed", "err", e)
		}
	}()
	if !masterKeyPassword.Empty() {
		if _, err := c.conn.ExecContext(ctx, OpenMasterKeyStatement(masterKeyPassword)); err != nil {
			return err
		}
		defer func() {
			cctx, cancel := cleanup()
			defer cancel()
			if _, e := c.conn.ExecContext(cctx, CloseMasterKeyStatement); e != nil {
				c.log.DebugContext(ctx, "CLOSE MASTER KEY failed", "err", e)
			}
		}()
	}
	return fn(ctx)
}

// BackupDatabaseMasterKey runs BACKUP MASTER KEY in database db to
// serverPath (as the server sees it; the file must not exist), encrypted
// by password. A key the service master key does not protect must be
// opened first: give its password as masterKeyPassword (it is opened and
// closed again around the backup). Errors carry exit code 3 and an *Error
// with SQL Server's number and the fix (15581 not open, 15313 wrong master
// key password, 15151 no master key, 15240 file, 15247 permission);
// passwords never appear in them.
func (c *Client) BackupDatabaseMasterKey(ctx context.Context, db, serverPath string, password, masterKeyPassword secret.Value) error {
	c.log.DebugContext(ctx, "running BACKUP MASTER KEY", "database", db, "server_path", serverPath, "open_with_password", !masterKeyPassword.Empty())
	return c.inDatabase(ctx, stepDMKBackup+" of database "+db, db, masterKeyPassword, func(ctx context.Context) error {
		_, err := c.conn.ExecContext(ctx, BackupMasterKeyStatement(serverPath, password))
		return err
	}, password)
}

// RestoreDatabaseMasterKey runs RESTORE MASTER KEY in database db from
// serverPath, decrypted by filePassword and encrypted in the database by
// newPassword. SQL Server re-encrypts everything under the current key;
// if that key cannot be opened (give masterKeyPassword when the service
// master key does not protect it) the restore fails with 15329, unless
// force, which loses what only the current key protected: callers gate
// force behind an explicit confirmation.
func (c *Client) RestoreDatabaseMasterKey(ctx context.Context, db, serverPath string, filePassword, newPassword, masterKeyPassword secret.Value, force bool) error {
	c.log.DebugContext(ctx, "running RESTORE MASTER KEY", "database", db, "server_path", serverPath, "force", force)
	return c.inDatabase(ctx, stepDMKRestore+" of database "+db, db, masterKeyPassword, func(ctx context.Context) error {
		_, err := c.conn.ExecContext(ctx, RestoreMasterKeyStatement(serverPath, filePassword, newPassword, force))
		return err
	}, filePassword, newPassword)
}

// BackupCertificate runs BACKUP CERTIFICATE … WITH PRIVATE KEY in the
// request's database, as a .cer/.pvk pair or one PFX file (FormatFor
// chooses by version). On success SQL Server sets the certificate's
// pvt_key_last_backup_date.
func (c *Client) BackupCertificate(ctx context.Context, b CertificateBackup) error {
	if err := b.Files.check(); err != nil {
		return err
	}
	c.log.DebugContext(ctx, "running BACKUP CERTIFICATE", "database", b.Database, "certificate", b.Name, "server_path", b.Files.Certificate)
	step := fmt.Sprintf("%s of %s in database %s", stepCertBackup, b.Name, b.Database)
	return c.inDatabase(ctx, step, b.Database, b.MasterKeyPassword, func(ctx context.Context) error {
		stmt := BackupCertificateStatement(b.Name, b.Files.Certificate, b.Files.PrivateKey, b.Password, b.KeyPassword)
		if b.Files.Format == FormatPFX {
			stmt = BackupCertificatePFXStatement(b.Name, b.Files.Certificate, b.Password, b.KeyPassword)
		}
		_, err := c.conn.ExecContext(ctx, stmt)
		return err
	}, b.Password, b.KeyPassword)
}

// CreateCertificateFromFile restores a certificate with its private key
// into the request's database (CREATE CERTIFICATE … FROM FILE). A TDE
// certificate goes into master, where the database encryption keys look
// for it by thumbprint.
func (c *Client) CreateCertificateFromFile(ctx context.Context, r CertificateRestore) error {
	if err := r.Files.check(); err != nil {
		return err
	}
	c.log.DebugContext(ctx, "running CREATE CERTIFICATE FROM FILE", "database", r.Database, "certificate", r.Name, "server_path", r.Files.Certificate)
	step := fmt.Sprintf("%s of %s in database %s", stepCertRestore, r.Name, r.Database)
	return c.inDatabase(ctx, step, r.Database, r.MasterKeyPassword, func(ctx context.Context) error {
		stmt := CreateCertificateStatement(r.Name, r.Files.Certificate, r.Files.PrivateKey, r.Password, r.NewPassword)
		if r.Files.Format == FormatPFX {
			stmt = CreateCertificatePFXStatement(r.Name, r.Files.Certificate, r.Password, r.NewPassword)
		}
		_, err := c.conn.ExecContext(ctx, stmt)
		return err
	}, r.Password, r.NewPassword)
}

func (f CertificateFiles) check() error {
	switch {
	case f.Certificate == "":
		return fmt.Errorf("no certificate file given")
	case f.Format == FormatPVK && f.PrivateKey == "":
		return fmt.Errorf("no private key file given for the PVK format")
	case f.Format == FormatPFX && f.PrivateKey != "":
		return fmt.Errorf("the PFX format keeps the private key in the certificate file: give no private key file")
	}
	return nil
}

// hierarchyHint says, for a step, what to do about an error number.
func hierarchyHint(step string) func(int32) string {
	return func(n int32) string {
		switch n {
		case ErrNumDatabaseMissing, ErrNumInvalidObject:
			return "no database of that name on this server: check the name (sys.databases)"
		case ErrNumDatabaseOffline:
			return "the database is offline: bring it online (ALTER DATABASE … SET ONLINE) and retry"
		case ErrNumDatabaseNoAccess:
			return "the login cannot enter the database: map it to a user there with CONTROL (e.g. db_owner), or use a login with CONTROL SERVER"
		case ErrNumPermission:
			return "the login needs CONTROL on the database: add its user to db_owner, or GRANT CONTROL SERVER TO [login];"
		case ErrNumObjectNotFound:
			if strings.HasPrefix(step, stepCertBackup) {
				return "no certificate of that name in the database, or the login may not see it: check sys.certificates and the login's permissions"
			}
			return "the database has no master key (nothing to back up or open), or the login may not see it: check sys.symmetric_keys for ##MS_DatabaseMasterKey##"
		case ErrNumWrongDecryptor:
			return "the master key password does not open the database master key: give a password the key is encrypted by (the one of CREATE MASTER KEY or ALTER MASTER KEY ADD ENCRYPTION BY PASSWORD)"
		case ErrNumMasterKeyNotOpen:
			return "the database master key is not open: the service master key does not protect it, so give its password to open it, or protect it by the service master key once with OPEN MASTER KEY … then ALTER MASTER KEY ADD ENCRYPTION BY SERVICE MASTER KEY; where the database has no master key at all, create one or give the private key a password of its own"
		case ErrNumNoPrivateKey:
			return "the certificate has no private key (pvt_key_encryption_type NA): there is nothing to escrow beyond its public part, and it cannot decrypt anything after a restore"
		case ErrNumKeyPasswordNeeded:
			return "the certificate's private key is protected by a password of its own (pvt_key_encryption_type PW): give that password"
		case ErrNumKeyPasswordInvalid:
			return "the private key password is wrong: for a backup, the key's own password in the database; for a restore, the password the backup files were made with"
		case ErrNumNoDecryptionWanted:
			return "the database master key protects this private key: give no private key password"
		case ErrNumCertFileInvalid:
			return "SQL Server cannot use the certificate or private key file: either it is missing or unreadable at that path as the server sees it (its service account must read it), or it is not a certificate backup: restore another archived copy"
		case ErrNumCertificateExists:
			return "the database already holds a certificate of that name, or this very certificate (same thumbprint): drop it first or restore under another name; a TDE certificate already present needs no restore"
		case ErrNumPrivateKeyMismatch:
			return "the private key file belongs to another certificate: restore the certificate and key files of one backup together"
		case ErrNumKeyFileInvalid:
			return "SQL Server cannot use the master key file: either it is missing or unreadable at that path as the server sees it, or it is not a database master key backup (e.g. a service master key file): restore another archived copy; FORCE does not help"
		case ErrNumDecryption:
			return "the password does not decrypt the master key file: give the backup password that was in force when this copy was made; FORCE does not help"
		case ErrNumCurrentKeyUndecryptable:
			return "the database's current master key cannot be opened, so SQL Server cannot re-encrypt what it protects: give the current key's password to open it; FORCE replaces the key anyway, but every key only the current master key protects (certificates' private keys) is lost for good"
		case ErrNumSyntax:
			return "the server did not accept the statement: FORMAT = 'PFX' needs SQL Server 2022 or later (use the PVK format before)"
		}
		return ""
	}
}

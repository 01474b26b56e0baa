package sqlserver

import (
	"strings"

	"github.com/keyescrow/keyescrow/internal/secret"
)

// The statements of the hierarchy below the service master key. Paths and
// passwords are literals (Literal), names are delimited identifiers
// (Ident): nothing is ever concatenated unquoted. Per-database statements
// (master key, certificates) run in the database's context, so the client
// sends USE [db] as its own batch first; the catalog views of another
// database are read with three-part names, [db].sys.view.

// Ident renders name as a T-SQL delimited identifier: [name] with every ]
// doubled, as QUOTENAME does.
func Ident(name string) string {
	return "[" + strings.ReplaceAll(name, "]", "]]") + "]"
}

// UseStatement switches the session to database db.
func UseStatement(db string) string { return "USE " + Ident(db) }

// OpenMasterKeyStatement opens the current database's master key with one
// of its passwords. It contains the password: never log it.
func OpenMasterKeyStatement(password secret.Value) string {
	return "OPEN MASTER KEY DECRYPTION BY PASSWORD = " + Literal(password.Reveal())
}

// CloseMasterKeyStatement closes a master key opened in this session.
const CloseMasterKeyStatement = "CLOSE MASTER KEY"

// BackupMasterKeyStatement exports the current database's master key to
// path (as the server sees it), encrypted by password.
func BackupMasterKeyStatement(path string, password secret.Value) string {
	return "BACKUP MASTER KEY TO FILE = " + Literal(path) + " ENCRYPTION BY PASSWORD = " + Literal(password.Reveal())
}

// RestoreMasterKeyStatement imports the master key in path (decrypted by
// filePassword) into the current database, encrypted there by
// newPassword. force adds FORCE, which loses what only the current key
// protects.
func RestoreMasterKeyStatement(path string, filePassword, newPassword secret.Value, force bool) string {
	s := "RESTORE MASTER KEY FROM FILE = " + Literal(path) +
		" DECRYPTION BY PASSWORD = " + Literal(filePassword.Reveal()) +
		" ENCRYPTION BY PASSWORD = " + Literal(newPassword.Reveal())
	if force {
		s += " FORCE"
	}
	return s
}

// BackupCertificateStatement exports certificate name of the current
// database: the certificate to certPath and its private key to keyPath,
// encrypted by password. keyPassword, when not empty, is the password that
// protects the private key in the database (pvt_key_encryption_type PW).
func BackupCertificateStatement(name, certPath, keyPath string, password, keyPassword secret.Value) string {
	s := "BACKUP CERTIFICATE " + Ident(name) + " TO FILE = " + Literal(certPath) +
		" WITH PRIVATE KEY (FILE = " + Literal(keyPath) + ", ENCRYPTION BY PASSWORD = " + Literal(password.Reveal())
	if !keyPassword.Empty() {
		s += ", DECRYPTION BY PASSWORD = " + Literal(keyPassword.Reveal())
	}
	return s + ")"
}

// BackupCertificatePFXStatement exports certificate name and its private
// key to one PFX file (SQL Server 2022 and later), encrypted by password
// with AES-256.
func BackupCertificatePFXStatement(name, pfxPath string, password, keyPassword secret.Value) string {
	s := "BACKUP CERTIFICATE " + Ident(name) + " TO FILE = " + Literal(pfxPath) +
		" WITH FORMAT = 'PFX', PRIVATE KEY (ENCRYPTION BY PASSWORD = " + Literal(password.Reveal())
	if !keyPassword.Empty() {
		s += ", DECRYPTION BY PASSWORD = " + Literal(keyPassword.Reveal())
	}
	return s + ", ALGORITHM = 'AES_256')"
}

// CreateCertificateStatement creates certificate name in the current
// database from a .cer and .pvk pair. Without newPassword the private key
// is encrypted by the database master key.
func CreateCertificateStatement(name, certPath, keyPath string, filePassword, newPassword secret.Value) string {
	s := "CREATE CERTIFICATE " + Ident(name) + " FROM FILE = " + Literal(certPath) +
		" WITH PRIVATE KEY (FILE = " + Literal(keyPath) + ", DECRYPTION BY PASSWORD = " + Literal(filePassword.Reveal())
	if !newPassword.Empty() {
		s += ", ENCRYPTION BY PASSWORD = " + Literal(newPassword.Reveal())
	}
	return s + ")"
}

// CreateCertificatePFXStatement creates certificate name from a PFX file
// (SQL Server 2022 and later).
func CreateCertificatePFXStatement(name, pfxPath string, filePassword, newPassword secret.Value) string {
	s := "CREATE CERTIFICATE " + Ident(name) + " FROM FILE = " + Literal(pfxPath) +
		" WITH FORMAT = 'PFX', PRIVATE KEY (DECRYPTION BY PASSWORD = " + Literal(filePassword.Reveal())
	if !newPassword.Empty() {
		s += ", ENCRYPTION BY PASSWORD = " + Literal(newPassword.Reveal())
	}
	return s + ")"
}

// The inventory's catalog queries.
const (
	majorVersionQuery = `SELECT CAST(SERVERPROPERTY('ProductMajorVersion') AS int) AS major_version`
	databasesQuery    = `SELECT name, database_id, state_desc, is_encrypted, is_master_key_encrypted_by_server FROM sys.databases ORDER BY name`
	encryptionQuery   = `SELECT database_id, encryption_state, encryptor_thumbprint, encryptor_type FROM sys.dm_database_encryption_keys`
)

// ControlDatabaseQuery asks whether the login holds CONTROL on database db:
// without it the database's keys are not visible in its catalog.
func ControlDatabaseQuery(db string) string {
	return "SELECT HAS_PERMS_BY_NAME(" + Literal(db) + ", 'DATABASE', 'CONTROL') AS control_database"
}

// MasterKeyQuery reads database db's master key from its sys.symmetric_keys.
func MasterKeyQuery(db string) string {
	return "SELECT key_guid, create_date, modify_date FROM " + Ident(db) +
		".sys.symmetric_keys WHERE name = N'##MS_DatabaseMasterKey##'"
}

// CertificatesQuery reads database db's certificates.
func CertificatesQuery(db string) string {
	return "SELECT name, thumbprint, subject, expiry_date, pvt_key_encryption_type, pvt_key_last_backup_date FROM " +
		Ident(db) + ".sys.certificates ORDER BY name"
}

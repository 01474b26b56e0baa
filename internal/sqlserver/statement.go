package sqlserver

import (
	"fmt"
	"strings"

	"github.com/keyescrow/keyescrow/internal/secret"
)

// Literal renders s as a T-SQL Unicode string literal: N'…' with every single
// quote doubled. It is the only quoting keyescrow does; BACKUP and RESTORE
// accept literals only, so the statements are built as text.
func Literal(s string) string {
	return "N'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// infoQuery reads the instance's identity and whether the login holds
// CONTROL SERVER, in one round trip.
const infoQuery = `SELECT CAST(SERVERPROPERTY('MachineName') AS nvarchar(128)) AS machine_name, ` +
	`CAST(SERVERPROPERTY('ServerName') AS nvarchar(256)) AS server_name, ` +
	`CAST(SERVERPROPERTY('InstanceName') AS nvarchar(128)) AS instance_name, ` +
	`CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS product_version, ` +
	`CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS edition, ` +
	`HAS_PERMS_BY_NAME(NULL, NULL, 'CONTROL SERVER') AS control_server, ` +
	`HAS_PERMS_BY_NAME(NULL, NULL, 'ADMINISTER BULK OPERATIONS') AS bulk_operations, ` +
	`IS_SRVROLEMEMBER('sysadmin') AS sysadmin`

// controlServerQuery asks whether the login holds CONTROL SERVER, which
// RESTORE SERVICE MASTER KEY needs.
const controlServerQuery = `SELECT HAS_PERMS_BY_NAME(NULL, NULL, 'CONTROL SERVER') AS control_server`

// ReadServerFileStatement reads the file at path (as the server sees it)
// through the server: its first max+1 bytes and its full length, so a file
// larger than max is noticed without transferring it. OPENROWSET(BULK …)
// takes a literal only, never a parameter or a variable.
func ReadServerFileStatement(path string, max int64) string {
	return fmt.Sprintf("SELECT SUBSTRING(BulkColumn, 1, %d) AS key_bytes, DATALENGTH(BulkColumn) AS key_length "+
		"FROM OPENROWSET(BULK %s, SINGLE_BLOB) AS key_file", max+1, Literal(path))
}

// FileLengthStatement asks only for the length of the file at path; a
// missing file fails with Msg 4860.
func FileLengthStatement(path string) string {
	return "SELECT DATALENGTH(BulkColumn) AS key_length FROM OPENROWSET(BULK " + Literal(path) + ", SINGLE_BLOB) AS key_file"
}

// RemoveServerFileStatement deletes the file at path on the server with
// master.sys.xp_delete_files (SQL Server 2019, 2017 CU18; sysadmin).
func RemoveServerFileStatement(path string) string {
	return "EXEC master.sys.xp_delete_files " + Literal(path)
}

// BackupServiceMasterKeyStatement is the batch that exports the service
// master key to path (as the server sees it). It contains the password: never
// log it.
func BackupServiceMasterKeyStatement(path string, password secret.Value) string {
	return "BACKUP SERVICE MASTER KEY TO FILE = " + Literal(path) +
		" ENCRYPTION BY PASSWORD = " + Literal(password.Reveal())
}

// RestoreServiceMasterKeyStatement is the batch that restores the service
// master key from path. force adds FORCE, which loses what cannot be
// decrypted. It contains the password: never log it.
func RestoreServiceMasterKeyStatement(path string, password secret.Value, force bool) string {
	s := "RESTORE SERVICE MASTER KEY FROM FILE = " + Literal(path) +
		" DECRYPTION BY PASSWORD = " + Literal(password.Reveal())
	if force {
		s += " FORCE"
	}
	return s
}

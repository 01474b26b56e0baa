package sqlserver

import (
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
	`HAS_PERMS_BY_NAME(NULL, NULL, 'CONTROL SERVER') AS control_server`

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

package sqlserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/keyescrow/keyescrow/internal/exitcode"
)

// SQL Server error numbers keyescrow explains.
const (
	ErrNumLoginFailed      = 18456
	ErrNumPermission       = 15247
	ErrNumCannotWriteFile  = 15240
	ErrNumPasswordTooShort = 15116
	ErrNumPasswordTooLong  = 15117
	ErrNumPasswordComplex  = 15118
	ErrNumPasswordFilter   = 15119
	// RESTORE SERVICE MASTER KEY (sys.messages texts, see FACTS.md).
	ErrNumKeyFileInvalid           = 15317 // the file is missing, unreadable or not a key backup
	ErrNumDecryption               = 15466 // the file does not decrypt: a wrong password
	ErrNumSecretUndecryptable      = 15320 // a credential (or other secret) under the current key does not decrypt; FORCE ignores it
	ErrNumCurrentKeyUndecryptable  = 15329 // the current service master key itself does not decrypt; FORCE ignores it
	ErrNumLinkedLoginUndecryptable = 15393 // a linked server login's password does not decrypt; FORCE ignores it
	ErrNumObjectNotFound           = 15151 // "Cannot find … because it does not exist or you do not have permission"
	// Reading the key file back (remote mode) with OPENROWSET(BULK …).
	ErrNumBulkPermission  = 4834 // no ADMINISTER BULK OPERATIONS
	ErrNumBulkFileMissing = 4860 // the file does not exist (as the server sees it)
	ErrNumBulkFileOpen    = 4861 // the file could not be opened (OS error)
	// Removing it with master.sys.xp_delete_files.
	ErrNumNoProcedure      = 2812  // no such procedure: older than SQL Server 2019 (2017 CU18)
	ErrNumExecuteDenied    = 229   // EXECUTE permission denied: not sysadmin
	ErrNumExtendedProcFail = 22049 // the procedure failed; the message has the OS error
)

// Steps of remote mode, for Error.Step.
const (
	stepReadBack = "read-back"
	stepRemove   = "file removal"
	stepRestore  = "restore"
)

// Error is a failed SQL Server step. Number is SQL Server's error number (0
// when the failure was not a server error, e.g. a dropped connection).
type Error struct {
	Step    string // "connect", "login", "query", "backup", "restore", "read-back", "file removal"
	Number  int32
	Class   uint8
	Message string // SQL Server's own message, or the driver's
	Hint    string // what to do about it
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("SQL Server ")
	b.WriteString(e.Step)
	b.WriteString(" failed")
	if e.Number != 0 {
		fmt.Fprintf(&b, " (Msg %d, Level %d)", e.Number, e.Class)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// translate turns a driver error from step into an *Error carrying exit code
// 3. Context cancellation passes through unchanged so the caller sees an
// interruption, not a SQL failure.
func translate(step string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var me mssql.Error
	if errors.As(err, &me) {
		msg := strings.TrimPrefix(me.Message, "login error: ")
		e := &Error{Step: step, Number: me.Number, Class: me.Class, Message: msg, Hint: hint(me.Number)}
		switch step {
		case stepRemove:
			e.Hint = removeHint(me.Number)
		case stepRestore:
			if h := restoreHint(me.Number); h != "" {
				e.Hint = h
			}
		}
		if me.Number == ErrNumLoginFailed {
			e.Step = "login"
		}
		return exitcode.Wrap(exitcode.SQLServer, e)
	}
	e := &Error{Step: step, Message: err.Error()}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		e.Hint = "the server did not answer in time: check that it is up and reachable, or raise the DSN's dial timeout"
	case strings.Contains(err.Error(), "connection refused"):
		e.Hint = "nothing listens at the DSN's host and port: check the server name, port and that SQL Server is running"
	case strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"):
		e.Hint = "the server closed the connection: check its error log, and the DSN's encrypt setting against the server's"
	case strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "x509") || strings.Contains(err.Error(), "tls"):
		e.Hint = "TLS failed: give the server's CA with the DSN's certificate= parameter, or fix hostnameincertificate"
	}
	return exitcode.Wrap(exitcode.SQLServer, e)
}

// hint says what to do about a SQL Server error number.
func hint(n int32) string {
	switch n {
	case ErrNumLoginFailed:
		return "check the login name and password in the DSN, that the login exists and is enabled, and that the server allows that authentication mode"
	case ErrNumPermission:
		return "the login needs CONTROL SERVER: GRANT CONTROL SERVER TO [login]; (or use a member of sysadmin)"
	case ErrNumCannotWriteFile:
		return "check that backup.server_directory exists on the server and that the SQL Server service account may write there (a new file name is used every run, so an existing file means another writer)"
	case ErrNumPasswordTooShort, ErrNumPasswordTooLong, ErrNumPasswordComplex:
		return "SQL Server rejected the backup password under its password policy: choose 8 to 128 characters with three of upper case, lower case, digits and symbols"
	case ErrNumPasswordFilter:
		return "a password filter on the server rejected the backup password: choose another password that meets the server's policy"
	case ErrNumBulkPermission:
		return "reading the key file back (backup.remote) needs ADMINISTER BULK OPERATIONS: GRANT ADMINISTER BULK OPERATIONS TO [login]; or add the login to bulkadmin (on SQL Server on Linux before 2022 CU24 only sysadmin may use OPENROWSET(BULK …))"
	case ErrNumBulkFileMissing:
		return "the server cannot see the key file at that path: check that backup.server_directory is the folder as SQL Server itself sees it and that its service account may read there"
	case ErrNumBulkFileOpen:
		return "SQL Server could not open the key file: let its service account read backup.server_directory (with Windows authentication the login's own Windows account reads the file); on Linux allow the folder with mssql-conf bulkadmin.allowedpathslist"
	default:
		return ""
	}
}

// removeHint says what to do when xp_delete_files cannot remove the file.
func removeHint(n int32) string {
	switch n {
	case ErrNumNoProcedure:
		return "this server has no xp_delete_files (it came with SQL Server 2019 and 2017 CU18)"
	case ErrNumExecuteDenied:
		return "xp_delete_files needs a member of sysadmin"
	case ErrNumExtendedProcFail:
		return "the operating system refused (see its error above)"
	default:
		return ""
	}
}

// restoreHint says what to do when RESTORE SERVICE MASTER KEY fails.
// FORCE is named only where it helps, always with what it costs.
func restoreHint(n int32) string {
	const lost = "FORCE replaces the key anyway, but whatever only the current key protects and cannot be decrypted is lost for good: use it only when that loss is accepted"
	switch n {
	case ErrNumKeyFileInvalid:
		return "SQL Server cannot use the key file: either it is missing or unreadable at that path as the server sees it (check the path and that the SQL Server service account, mssql on Linux, may read it), " +
			"or its bytes are not a service master key backup (a corrupted, truncated or wrong file, e.g. a database master key or certificate backup): restore another archived copy that verifies; FORCE does not help"
	case ErrNumDecryption:
		return "the password does not decrypt the key file: give the backup password that was in force when this copy was made; FORCE does not help with a wrong password"
	case ErrNumSecretUndecryptable:
		return "a secret encrypted by the server's current service master key (named above) cannot be decrypted, so SQL Server kept the current key: repair or drop that secret and retry; " + lost
	case ErrNumCurrentKeyUndecryptable:
		return "the server's current service master key cannot be decrypted (for example after a service account or machine change), so nothing under it can be re-encrypted; " + lost
	case ErrNumLinkedLoginUndecryptable:
		return "the password of a linked server login (named above) cannot be decrypted with the current key: drop that login mapping and retry, or use FORCE and re-enter it with sp_addlinkedsrvlogin afterwards; " + lost
	case ErrNumPermission, ErrNumObjectNotFound:
		return "RESTORE SERVICE MASTER KEY needs CONTROL SERVER: GRANT CONTROL SERVER TO [login]; (or use a member of sysadmin)"
	default:
		return ""
	}
}

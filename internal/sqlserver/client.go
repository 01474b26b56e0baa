package sqlserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	// Kerberos (integrated authentication on Linux) is offered by the driver
	// through this registration; on Windows SSPI is built in.
	_ "github.com/microsoft/go-mssqldb/integratedauth/krb5"

	"github.com/keyescrow/keyescrow/internal/deadline"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/secret"
)

// DefaultInstance is how SQL Server names an unnamed instance.
const DefaultInstance = "MSSQLSERVER"

// Info is the instance's identity as the server reports it.
type Info struct {
	MachineName    string // SERVERPROPERTY('MachineName')
	ServerName     string // SERVERPROPERTY('ServerName'), HOST or HOST\INSTANCE
	InstanceName   string // SERVERPROPERTY('InstanceName'), MSSQLSERVER for the default instance
	ProductVersion string
	Edition        string
	ControlServer  bool // the login holds CONTROL SERVER
	// BulkOperations: the login holds ADMINISTER BULK OPERATIONS (granted,
	// through bulkadmin or CONTROL SERVER), which remote mode needs to read
	// the key file back. On SQL Server on Linux before 2022 CU24 only
	// sysadmin may bulk load, whatever this says.
	BulkOperations bool
	Sysadmin       bool // a member of sysadmin: may remove the file (xp_delete_files)
}

// Default time limits, so that a hung server never holds the host lock
// forever under cron: the configuration's timeouts.connect and
// timeouts.request defaults. A DSN's own "dial timeout" and "connection
// timeout" still apply within them.
const (
	DefaultConnectTimeout   = deadline.DefaultConnect
	DefaultStatementTimeout = deadline.DefaultRequest
)

// Client is one connection to one SQL Server. It is not safe for concurrent
// use; keyescrow sends one statement at a time.
type Client struct {
	db   *sql.DB
	conn *sql.Conn
	log  *slog.Logger
	// StatementTimeout bounds each statement; zero means no limit.
	StatementTimeout time.Duration
	conns            *conns
}

// Open connects with dsn (go-mssqldb URL or ADO form; SQL login, Windows
// integrated or Kerberos authentication as the DSN says) and logs in, under
// the default limits.
func Open(ctx context.Context, dsn secret.Value, log *slog.Logger) (*Client, error) {
	return OpenWith(ctx, dsn, log, deadline.Default())
}

// OpenWith is Open under the limits l: connecting and logging in within
// l.Connect, each statement within l.Request. At a limit the driver asks
// the server to cancel (Attention); a server that has not answered
// AttentionGrace later has its connection cut, so no limit waits on the
// server's good will. The error names the limit (exit 3).
func OpenWith(ctx context.Context, dsn secret.Value, log *slog.Logger, l deadline.Limits) (*Client, error) {
	if l.Connect <= 0 || l.Request <= 0 {
		d := deadline.Default()
		l.Connect, l.Request = d.Connect, d.Request
	}
	connector, err := mssql.NewConnector(dsn.Reveal())
	if err != nil {
		// The driver's parse errors can quote the DSN: say only what is wrong.
		fix := "use the form sqlserver://user@host:1433?database=master"
		if strings.Contains(err.Error(), "TLS") || strings.Contains(err.Error(), "certificate") {
			fix = "check that the DSN's certificate= file exists and holds a PEM certificate"
		}
		return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("the SQL Server DSN cannot be used (%s): %s", redactParseError(err), fix))
	}
	w := &conns{connect: l.Connect}
	connector.Dialer = w
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	cctx, cancel := context.WithTimeoutCause(ctx, l.Connect, deadline.NewError(deadline.KeyConnect, l.Connect))
	defer cancel()
	stop := w.watch(cctx, 0)
	conn, err := db.Conn(cctx)
	if err == nil {
		err = conn.PingContext(cctx)
	}
	stop()
	if err != nil {
		if conn != nil {
			_ = conn.Close()
		}
		_ = db.Close()
		return nil, timedOut(cctx, "connect", err)
	}
	return &Client{db: db, conn: conn, log: log, StatementTimeout: l.Request, conns: w}, nil
}

// Close ends the session.
func (c *Client) Close() error {
	err := c.conn.Close()
	if e := c.db.Close(); err == nil {
		err = e
	}
	return err
}

// Info reads the instance's identity and the login's CONTROL SERVER right.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var (
		machine, server, instance, version, edition sql.NullString
		control, bulk, sysadmin                     sql.NullInt64
	)
	ctx, cancel := c.limit(ctx)
	defer cancel()
	err := c.conn.QueryRowContext(ctx, infoQuery).Scan(&machine, &server, &instance, &version, &edition, &control, &bulk, &sysadmin)
	if err != nil {
		return Info{}, timedOut(ctx, "query", err)
	}
	info := Info{
		MachineName:    machine.String,
		ServerName:     server.String,
		InstanceName:   instance.String,
		ProductVersion: version.String,
		Edition:        edition.String,
		ControlServer:  control.Valid && control.Int64 == 1,
		BulkOperations: bulk.Valid && bulk.Int64 == 1,
		Sysadmin:       sysadmin.Valid && sysadmin.Int64 == 1,
	}
	if info.InstanceName == "" {
		info.InstanceName = DefaultInstance
	}
	return info, nil
}

// BackupServiceMasterKey runs BACKUP SERVICE MASTER KEY to serverPath (the
// path as the server sees it; the file must not exist). The statement is
// never logged.
func (c *Client) BackupServiceMasterKey(ctx context.Context, serverPath string, password secret.Value) error {
	c.log.DebugContext(ctx, "running BACKUP SERVICE MASTER KEY", "server_path", serverPath)
	ctx, cancel := c.limit(ctx)
	defer cancel()
	_, err := c.conn.ExecContext(ctx, BackupServiceMasterKeyStatement(serverPath, password))
	return timedOut(ctx, "backup", err)
}

// RestoreServiceMasterKey runs RESTORE SERVICE MASTER KEY FROM FILE =
// serverPath (the path as the server sees it) DECRYPTION BY PASSWORD =
// password, with FORCE when force is set. The statement is a literal batch
// (quotes doubled) and is never logged. SQL Server decrypts everything the
// current key protects and re-encrypts it under the file's key; any
// decryption error fails the restore, unless force, which carries on and
// loses what it could not decrypt: callers gate force behind an explicit
// confirmation.
//
// A login without CONTROL SERVER is refused before the statement is sent.
// Errors carry exit code 3 and an *Error whose Number is SQL Server's
// (15317 bad or missing file, 15466 wrong password, 15320/15329/15393 data
// under the current key that does not decrypt, 15247 permission) and whose
// Hint names the fix; the password never appears in them.
func (c *Client) RestoreServiceMasterKey(ctx context.Context, serverPath string, password secret.Value, force bool) error {
	c.log.DebugContext(ctx, "running RESTORE SERVICE MASTER KEY", "server_path", serverPath, "force", force)
	ctx, cancel := c.limit(ctx)
	defer cancel()
	var control sql.NullInt64
	if err := c.conn.QueryRowContext(ctx, controlServerQuery).Scan(&control); err != nil {
		return scrub(timedOut(ctx, stepRestore, err), password)
	}
	if !control.Valid || control.Int64 != 1 {
		return exitcode.Wrap(exitcode.SQLServer, &Error{Step: stepRestore,
			Message: "the login does not hold CONTROL SERVER (the RESTORE statement was not sent)",
			Hint:    restoreHint(ErrNumPermission)})
	}
	_, err := c.conn.ExecContext(ctx, RestoreServiceMasterKeyStatement(serverPath, password, force))
	return scrub(timedOut(ctx, stepRestore, err), password)
}

// scrub removes the password from an error's text: SQL Server does not quote
// it, but an error built from a driver message is not trusted to stay so.
func scrub(err error, password secret.Value) error {
	var e *Error
	if err == nil || password.Empty() || !errors.As(err, &e) {
		return err
	}
	e.Message = strings.ReplaceAll(e.Message, strings.ReplaceAll(password.Reveal(), "'", "''"), secret.Redacted)
	e.Message = strings.ReplaceAll(e.Message, password.Reveal(), secret.Redacted)
	return err
}

// ReadServerFile reads the file at serverPath (as the server sees it) over
// this connection with OPENROWSET(BULK …, SINGLE_BLOB), which needs
// ADMINISTER BULK OPERATIONS. A file larger than max bytes is refused
// without being transferred; the bytes read must be exactly as many as the
// server says the file holds. Errors carry exit code 3.
func (c *Client) ReadServerFile(ctx context.Context, serverPath string, max int64) ([]byte, error) {
	c.log.DebugContext(ctx, "reading the key file back through SQL Server", "server_path", serverPath)
	ctx, cancel := c.limit(ctx)
	defer cancel()
	var (
		data   []byte
		length sql.NullInt64
	)
	err := c.conn.QueryRowContext(ctx, ReadServerFileStatement(serverPath, max)).Scan(&data, &length)
	if err != nil {
		return nil, timedOut(ctx, stepReadBack, err)
	}
	readErr := func(format string, args ...any) error {
		return exitcode.Wrap(exitcode.SQLServer, &Error{Step: stepReadBack, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case !length.Valid:
		return nil, readErr("the server returned no length for %s", serverPath)
	case length.Int64 > max:
		return nil, readErr("%s holds %d bytes, more than the %d a key backup can have: it is not the file keyescrow asked for", serverPath, length.Int64, max)
	case int64(len(data)) != length.Int64:
		return nil, readErr("read %d bytes of %s but the server says it holds %d: the transfer was incomplete", len(data), serverPath, length.Int64)
	}
	return data, nil
}

// RemoveServerFile deletes the file at serverPath on the server with
// master.sys.xp_delete_files and proves it is gone (reading it back fails
// with Msg 4860). The procedure exists from SQL Server 2019 (2017 CU18) and
// needs sysadmin: otherwise the error says so (Msg 2812, Msg 229). A path
// with a wildcard is refused, because xp_delete_files would expand it.
func (c *Client) RemoveServerFile(ctx context.Context, serverPath string) error {
	if strings.ContainsAny(serverPath, "*?") {
		return exitcode.Wrap(exitcode.Usage, &Error{Step: stepRemove, Message: fmt.Sprintf("%s contains a wildcard, which xp_delete_files would expand to other files", serverPath),
			Hint: "keep * and ? out of backup.server_directory"})
	}
	c.log.DebugContext(ctx, "removing the key file on the server", "server_path", serverPath)
	ctx, cancel := c.limit(ctx)
	defer cancel()
	if _, err := c.conn.ExecContext(ctx, RemoveServerFileStatement(serverPath)); err != nil {
		return timedOut(ctx, stepRemove, err)
	}
	var length sql.NullInt64
	err := c.conn.QueryRowContext(ctx, FileLengthStatement(serverPath)).Scan(&length)
	var me mssql.Error
	switch {
	case errors.As(err, &me) && me.Number == ErrNumBulkFileMissing:
		return nil
	case err != nil:
		return exitcode.Wrap(exitcode.SQLServer, &Error{Step: stepRemove,
			Message: fmt.Sprintf("xp_delete_files reported success, but reading %s back to prove it gone failed: %v", serverPath, timedOut(ctx, stepRemove, err))})
	}
	return exitcode.Wrap(exitcode.SQLServer, &Error{Step: stepRemove, Message: fmt.Sprintf("xp_delete_files reported success, but %s is still there (%d bytes)", serverPath, length.Int64)})
}

// limit applies StatementTimeout to one statement; when the statement's
// context ends before it does, its connection is cut AttentionGrace later.
func (c *Client) limit(ctx context.Context) (context.Context, context.CancelFunc) {
	var cancel context.CancelFunc
	if c.StatementTimeout <= 0 {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeoutCause(ctx, c.StatementTimeout, deadline.NewError(deadline.KeyRequest, c.StatementTimeout))
	}
	if c.conns == nil {
		return ctx, cancel
	}
	stop := c.conns.watch(ctx, AttentionGrace)
	return ctx, func() { stop(); cancel() }
}

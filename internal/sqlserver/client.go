package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	// Kerberos (integrated authentication on Linux) is offered by the driver
	// through this registration; on Windows SSPI is built in.
	_ "github.com/microsoft/go-mssqldb/integratedauth/krb5"

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
}

// Default time limits, so that a hung server never holds the host lock
// forever under cron. A DSN's own "dial timeout" and "connection timeout"
// still apply within them.
const (
	DefaultConnectTimeout   = time.Minute
	DefaultStatementTimeout = 5 * time.Minute
)

// Client is one connection to one SQL Server. It is not safe for concurrent
// use; keyescrow sends one statement at a time.
type Client struct {
	db   *sql.DB
	conn *sql.Conn
	log  *slog.Logger
	// StatementTimeout bounds each statement; zero means no limit.
	StatementTimeout time.Duration
}

// Open connects with dsn (go-mssqldb URL or ADO form; SQL login, Windows
// integrated or Kerberos authentication as the DSN says) and logs in.
func Open(ctx context.Context, dsn secret.Value, log *slog.Logger) (*Client, error) {
	connector, err := mssql.NewConnector(dsn.Reveal())
	if err != nil {
		// The driver's parse errors can quote the DSN: say only what is wrong.
		fix := "use the form sqlserver://user@host:1433?database=master"
		if strings.Contains(err.Error(), "TLS") || strings.Contains(err.Error(), "certificate") {
			fix = "check that the DSN's certificate= file exists and holds a PEM certificate"
		}
		return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("the SQL Server DSN cannot be used (%s): %s", redactParseError(err), fix))
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	cctx, cancel := context.WithTimeout(ctx, DefaultConnectTimeout)
	defer cancel()
	conn, err := db.Conn(cctx)
	if err == nil {
		err = conn.PingContext(cctx)
	}
	if err != nil {
		if conn != nil {
			_ = conn.Close()
		}
		_ = db.Close()
		return nil, translate("connect", err)
	}
	return &Client{db: db, conn: conn, log: log, StatementTimeout: DefaultStatementTimeout}, nil
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
		control                                     sql.NullInt64
	)
	ctx, cancel := c.limit(ctx)
	defer cancel()
	err := c.conn.QueryRowContext(ctx, infoQuery).Scan(&machine, &server, &instance, &version, &edition, &control)
	if err != nil {
		return Info{}, translate("query", err)
	}
	info := Info{
		MachineName:    machine.String,
		ServerName:     server.String,
		InstanceName:   instance.String,
		ProductVersion: version.String,
		Edition:        edition.String,
		ControlServer:  control.Valid && control.Int64 == 1,
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
	return translate("backup", err)
}

// RestoreServiceMasterKey runs RESTORE SERVICE MASTER KEY from serverPath.
// force loses data that cannot be decrypted: callers gate it behind an
// explicit confirmation.
func (c *Client) RestoreServiceMasterKey(ctx context.Context, serverPath string, password secret.Value, force bool) error {
	c.log.DebugContext(ctx, "running RESTORE SERVICE MASTER KEY", "server_path", serverPath, "force", force)
	ctx, cancel := c.limit(ctx)
	defer cancel()
	_, err := c.conn.ExecContext(ctx, RestoreServiceMasterKeyStatement(serverPath, password, force))
	return translate("restore", err)
}

// limit applies StatementTimeout to one statement.
func (c *Client) limit(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.StatementTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.StatementTimeout)
}

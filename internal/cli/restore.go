package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/escrow"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
)

// parseAt reads --at: RFC 3339 (with or without fractions), or a date
// (2026-11-01), which means the end of that day in UTC.
func parseAt(s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return &t, nil
	}
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		end := d.Add(24*time.Hour - time.Nanosecond)
		return &end, nil
	}
	return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("--at %q is not a time: use RFC 3339 (2026-11-01T03:00:00Z) or a date (2026-11-01, meaning its end, UTC)", s))
}

// runRestore fetches a verified copy, writes it and, with --apply,
// restores it into the configured SQL Server.
func (a *App) runRestore(ctx context.Context, inv *invocation) error {
	if len(inv.args) > 0 {
		return inv.failEarly(exitcode.Wrap(exitcode.Usage, fmt.Errorf("restore takes no arguments (got %q): choose the copy with --version-id or --at", inv.args[0])))
	}
	kind, err := escrow.SelectKind(inv.kind, inv.database, inv.itemName)
	if err != nil {
		return inv.failEarly(err)
	}
	at, err := parseAt(inv.at)
	if err != nil {
		return inv.failEarly(err)
	}
	out := inv.out
	if out != "" {
		if out, err = filepath.Abs(out); err != nil {
			return inv.failEarly(exitcode.Wrap(exitcode.Usage, err))
		}
	}
	passwordOut := inv.passwordOut
	if passwordOut != "" {
		if passwordOut, err = filepath.Abs(passwordOut); err != nil {
			return inv.failEarly(exitcode.Wrap(exitcode.Usage, err))
		}
	}
	cfg, r, err := inv.setup()
	if err != nil {
		return inv.failEarly(err)
	}
	id, err := inv.hostIdentity()
	if err != nil {
		return inv.failEarly(err)
	}
	if r.Identities, err = inv.identities(); err != nil {
		return inv.failEarly(err)
	}
	ctx, cancel := inv.withRun(ctx)
	defer cancel()
	opts := escrow.RestoreOptions{
		Destination: inv.destination, Filter: inv.restoreFilter(id, kind),
		VersionID: inv.versionID, At: at, Out: out, PasswordOut: passwordOut,
		Apply: inv.apply, Force: inv.force, ConfirmForce: inv.confirmForce,
		ServerDirectory: cfg.Backup.ServerDirectory, LocalDirectory: cfg.Backup.LocalDirectory,
	}
	r.KeyPassword = inv.keyPasswords(cfg)
	if inv.apply {
		if cfg.Backup.Remote {
			stmt := map[string]string{receipt.KindDatabaseMasterKey: "RESTORE MASTER KEY", receipt.KindCertificate: "CREATE CERTIFICATE … FROM FILE (with the .pvk, when there is one)"}[kind]
			if stmt == "" {
				stmt = "RESTORE SERVICE MASTER KEY"
			}
			return inv.failEarly(exitcode.Wrap(exitcode.Usage, fmt.Errorf("restore --apply needs the key file on the SQL Server's own disk, which backup.remote cannot put there: run restore --out FILE, copy the file to the server, and run %s there (see docs/restore.md), or run keyescrow on the database host", stmt)))
		}
		if cfg.SQLServer == nil {
			return inv.failEarly(exitcode.Wrap(exitcode.Usage, errors.New("restore --apply needs the sqlserver section (dsn_env or dsn_file) of the server to restore into")))
		}
		pw, err := inv.restorePassword(cfg, len(r.Identities) > 0)
		if err != nil {
			return inv.failEarly(err)
		}
		dsn, err := inv.readDSN(cfg)
		if err != nil {
			return inv.failEarly(err)
		}
		r.Password = pw
		r.ConnectRestore = inv.connectRestore(dsn)
		if r.Lock != nil {
			release, err := r.Lock()
			if err != nil {
				return inv.failEarly(err)
			}
			defer release()
		}
	}
	rec, err := r.Restore(ctx, opts)
	return inv.report(rec, err)
}

// runDrill restores the newest archived copy into the scratch SQL Server
// of the drill section, never into the production one.
func (a *App) runDrill(ctx context.Context, inv *invocation) error {
	if len(inv.args) > 0 {
		return inv.failEarly(exitcode.Wrap(exitcode.Usage, fmt.Errorf("drill takes no arguments (got %q)", inv.args[0])))
	}
	// --kind certificate alone drills every TDE certificate.
	everyTDE := inv.kind == receipt.KindCertificate && inv.database == "" && inv.itemName == ""
	kind := inv.kind
	if !everyTDE {
		var err error
		if kind, err = escrow.SelectKind(inv.kind, inv.database, inv.itemName); err != nil {
			return inv.failEarly(err)
		}
	}
	cfg, r, err := inv.setup()
	if err != nil {
		return inv.failEarly(err)
	}
	ctx, cancel := inv.withRun(ctx)
	defer cancel()
	scratch, err := inv.readSecret(cfg.DrillDSNSource())
	if err != nil {
		return inv.failEarly(err)
	}
	inv.scrubDSN(scratch)
	if err := inv.refuseProduction(ctx, cfg, scratch); err != nil {
		return inv.failEarly(err)
	}
	if r.Identities, err = inv.identities(); err != nil {
		return inv.failEarly(err)
	}
	pw, err := inv.restorePassword(cfg, len(r.Identities) > 0)
	if err != nil {
		return inv.failEarly(err)
	}
	id, err := inv.hostIdentity()
	if err != nil {
		return inv.failEarly(err)
	}
	serverDir, localDir := cfg.DrillDirectories()
	r.Password = pw
	r.ConnectRestore = inv.connectRestore(scratch)
	opts := escrow.RestoreOptions{
		Destination: inv.destination, Filter: inv.restoreFilter(id, kind),
		Apply: true, Drill: true, ServerDirectory: serverDir, LocalDirectory: localDir,
	}
	r.KeyPassword = inv.keyPasswords(cfg)
	if everyTDE {
		rec, err := r.DrillTDE(ctx, opts)
		return inv.report(rec, err)
	}
	rec, err := r.Restore(ctx, opts)
	return inv.report(rec, err)
}

// restoreFilter chooses the copies restore and drill take: the host's and
// instance's, of the kind (and the database and certificate) asked for.
func (inv *invocation) restoreFilter(id hostID, kind string) escrow.Filter {
	return escrow.Filter{Host: id.Host, Instance: inv.defaultInstance(id), Kind: kind, Database: inv.database, Name: inv.itemName}
}

// refuseProduction refuses a drill whose scratch DSN points at the
// production server of the sqlserver section. With that section present
// but its DSN unreadable, nothing proves the scratch server is another, so
// the drill is refused too.
func (inv *invocation) refuseProduction(ctx context.Context, cfg *config.Config, scratch secret.Value) error {
	if cfg.SQLServer == nil {
		if _, ok := inv.app.Env(config.DefaultDSNEnv); !ok {
			return nil
		}
	}
	prod, err := inv.readDSN(cfg)
	if err != nil {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("drill cannot prove its scratch server is not the production one: %w (the drill reads the production DSN only to compare)", err))
	}
	if same, why := sqlserver.SameServer(ctx, prod, scratch); same {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("drill.dsn points at the production server of sqlserver.dsn (%s): a drill restores into a scratch server only, never into production; give drill.dsn_env/dsn_file a scratch server's DSN", why))
	}
	return nil
}

func (inv *invocation) connectRestore(dsn secret.Value) func(ctx context.Context) (escrow.RestoreSQL, error) {
	return func(ctx context.Context) (escrow.RestoreSQL, error) {
		inv.log.InfoContext(ctx, "connecting to SQL Server", "server", sqlserver.Endpoint(dsn.Reveal()))
		c, err := sqlserver.OpenWith(ctx, dsn, inv.log, inv.limits)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/escrow"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/lock"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/filestore"
)

// loadConfig loads, overrides and validates the configuration for the
// command: file (--config, else $KEYESCROW_CONFIG), env, then --set flags.
func (inv *invocation) loadConfig() (*config.Config, error) {
	a := inv.app
	path := inv.configPath
	if path == "" {
		path, _ = a.Env(config.ConfigEnv)
	}
	cfg, warns, err := config.LoadEnv(path, a.Env, a.EnvList)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Usage, err)
	}
	for _, s := range inv.sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("--set %q: use --set KEY=VALUE, e.g. --set backup.keep_local=true", s))
		}
		if err := cfg.Set(k, v); err != nil {
			return nil, exitcode.Wrap(exitcode.Usage, err)
		}
	}
	if err := cfg.ValidateFor(inv.cmd.name); err != nil {
		return nil, exitcode.Wrap(exitcode.Usage, err)
	}
	inv.metricsFile = cfg.MetricsFile
	warns = append(warns, cfg.Warnings()...)
	for _, w := range warns {
		inv.log.Warn(string(w))
	}
	return cfg, nil
}

// readSecret reads one secret, registers it with the scrubber and logs the
// reader's warnings.
func (inv *invocation) readSecret(src config.SecretSource) (secret.Value, error) {
	v, warns, err := config.ReadSecret(src, inv.app.Env, inv.app.Stdin)
	for _, w := range warns {
		inv.log.Warn(string(w))
	}
	if err != nil {
		return secret.Value{}, exitcode.Wrap(exitcode.Usage, err)
	}
	inv.scrub.Add(v)
	return v, nil
}

// readDSN reads the SQL Server DSN and registers it, and the password inside
// it, with the scrubber.
func (inv *invocation) readDSN(cfg *config.Config) (secret.Value, error) {
	dsn, err := inv.readSecret(cfg.DSNSource())
	if err != nil {
		return dsn, err
	}
	inv.scrubDSN(dsn)
	return dsn, nil
}

// scrubDSN registers the password inside a DSN (URL user info, a password
// query parameter, or an ADO "Password=" part) with the scrubber.
func (inv *invocation) scrubDSN(dsn secret.Value) {
	if u, err := url.Parse(dsn.Reveal()); err == nil {
		if pw, ok := u.User.Password(); ok {
			inv.scrub.Add(secret.New(pw))
		}
		if pw := u.Query().Get("password"); pw != "" {
			inv.scrub.Add(secret.New(pw))
		}
	}
	for _, part := range strings.Split(dsn.Reveal(), ";") {
		if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(strings.TrimSpace(k), "password") {
			inv.scrub.Add(secret.New(strings.TrimSpace(v)))
		}
	}
}

// readPassword reads the backup password and refuses one SQL Server would
// reject (exit 2) before anything is sent.
// With backup.seal_to there is no static password: each backup makes a
// fresh one (validated recipients are all it needs).
func (inv *invocation) readPassword(cfg *config.Config) (secret.Value, error) {
	if len(cfg.Backup.SealTo) > 0 {
		return secret.Value{}, nil
	}
	pw, err := inv.readSecret(cfg.PasswordSource())
	if err != nil {
		return pw, err
	}
	if err := sqlserver.CheckPassword(pw); err != nil {
		return pw, exitcode.Wrap(exitcode.Usage, fmt.Errorf("backup.password: %w", err))
	}
	return pw, nil
}

// openDestinations opens every configured destination's backend. Backends
// are registered here explicitly, one per type.
func (inv *invocation) openDestinations(cfg *config.Config) ([]escrow.Destination, error) {
	out := make([]escrow.Destination, 0, len(cfg.Destinations))
	for _, d := range cfg.Destinations {
		var (
			b   storage.Backend
			err error
		)
		switch d.Type {
		case config.TypeFile:
			b, err = filestore.New(filestore.Options{Path: filepath.Clean(d.Path), Clock: inv.app.Clock})
		case config.TypeS3:
			b, err = inv.openS3(d)
		case config.TypeAzureBlob:
			b, err = inv.openAzureBlob(d)
		default:
			err = fmt.Errorf("destination type %q is not available in this version of keyescrow (%s): use type file, or upgrade", d.Type, inv.app.Build.Version)
		}
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("destinations[%s]: %w", d.Name, err))
		}
		out = append(out, escrow.Destination{Config: d, Backend: b})
	}
	return out, nil
}

// setup loads the configuration and opens every destination, ready to run.
func (inv *invocation) setup() (*config.Config, *escrow.Runner, error) {
	cfg, err := inv.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	dests, err := inv.openDestinations(cfg)
	if err != nil {
		return nil, nil, err
	}
	trust, err := trustOf(cfg)
	if err != nil {
		return nil, nil, err
	}
	r := inv.runner(cfg, dests)
	r.Trust = trust
	return cfg, r, nil
}

// runner wires the pipeline's dependencies.
func (inv *invocation) runner(cfg *config.Config, dests []escrow.Destination) *escrow.Runner {
	lockPath := cfg.LockFile
	if lockPath == "" {
		lockPath = lock.DefaultPath()
	}
	runID := escrow.NewRunID()
	inv.log = inv.log.With("run_id", runID)
	return &escrow.Runner{
		Config:       cfg,
		Destinations: dests,
		Log:          inv.log,
		Clock:        inv.app.Clock,
		Version:      inv.app.Build.Version,
		RunID:        runID,
		Lock: func() (func(), error) {
			l, err := lock.Acquire(lockPath)
			if err != nil {
				code := exitcode.Usage
				if errors.Is(err, lock.ErrHeld) {
					code = exitcode.Locked
				}
				return nil, exitcode.Wrap(code, err)
			}
			return func() { _ = l.Release() }, nil
		},
	}
}

func (inv *invocation) connectSQL(dsn secret.Value) func(ctx context.Context) (escrow.SQL, error) {
	return func(ctx context.Context) (escrow.SQL, error) {
		inv.log.InfoContext(ctx, "connecting to SQL Server", "server", sqlserver.Endpoint(dsn.Reveal()))
		c, err := sqlserver.Open(ctx, dsn, inv.log)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

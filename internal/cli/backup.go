package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/keyescrow/keyescrow/internal/config"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/metrics"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/secret"
)

func (a *App) runBackup(ctx context.Context, inv *invocation) error {
	if len(inv.args) > 0 {
		return inv.failEarly(exitcode.Wrap(exitcode.Usage, fmt.Errorf("backup takes no arguments (got %q): the configuration says what to back up", inv.args[0])))
	}
	cfg, r, err := inv.setup()
	if err != nil {
		return inv.failEarly(err)
	}
	ctx, cancel := inv.withRun(ctx)
	defer cancel()
	pw, err := inv.readPassword(cfg)
	if err != nil {
		return inv.failEarly(err)
	}
	dsn, err := inv.readDSN(cfg)
	if err != nil {
		return inv.failEarly(err)
	}
	if r.Signer, err = inv.writeSigner(cfg, r.Trust); err != nil {
		return inv.failEarly(err)
	}
	r.Password = pw
	r.ConnectSQL = inv.connectSQL(dsn)
	r.KeyPassword = inv.keyPasswords(cfg)
	rec, err := r.Backup(ctx)
	return inv.report(rec, err)
}

func (a *App) runArchive(ctx context.Context, inv *invocation) error {
	if len(inv.args) != 1 {
		return inv.failEarly(exitcode.Wrap(exitcode.Usage, errors.New("archive takes exactly one key file: keyescrow archive [--host NAME] [--instance NAME] FILE")))
	}
	file, err := filepath.Abs(inv.args[0])
	if err != nil {
		return inv.failEarly(exitcode.Wrap(exitcode.Usage, err))
	}
	cfg, r, err := inv.setup()
	if err != nil {
		return inv.failEarly(err)
	}
	if r.Signer, err = inv.writeSigner(cfg, r.Trust); err != nil {
		return inv.failEarly(err)
	}
	ctx, cancel := inv.withRun(ctx)
	defer cancel()
	id, err := inv.hostIdentity()
	if err != nil {
		return inv.failEarly(err)
	}
	r.Hostname = id.Host
	rec, err := r.Archive(ctx, file, inv.instance)
	return inv.report(rec, err)
}

// keyPasswords reads the hierarchy's key passwords (hierarchy.passwords)
// when an item needs one, each at most once, through the same secret reader
// as every other secret: its caps, warnings and redaction. A key with no
// configured password gets an empty value; one that cannot be read fails
// that item only (exit 2).
func (inv *invocation) keyPasswords(cfg *config.Config) func(database, certificate string) (secret.Value, error) {
	var mu sync.Mutex
	read := map[int]secret.Value{}
	return func(database, certificate string) (secret.Value, error) {
		i := cfg.Hierarchy.PasswordFor(database, certificate)
		if i < 0 {
			return secret.Value{}, nil
		}
		mu.Lock()
		defer mu.Unlock()
		if v, ok := read[i]; ok {
			return v, nil
		}
		v, err := inv.readSecret(cfg.Hierarchy.Passwords[i].Source(i))
		if err != nil {
			return secret.Value{}, err
		}
		read[i] = v
		return v, nil
	}
}

// failEarly reports a failure before the pipeline started: a receipt with
// status failed (so --json callers always get one document) and the error.
func (inv *invocation) failEarly(err error) error {
	now := inv.app.Clock().UTC()
	rec := &receipt.Receipt{
		Status: receipt.StatusFailed, Tool: "keyescrow", Version: inv.app.Build.Version,
		Kind: receipt.KindServiceMasterKey, StartedAt: now, FinishedAt: now,
		ExitCode: exitcode.Code(err),
		Error:    &receipt.Error{Code: exitcode.Code(err), Message: err.Error()},
	}
	return inv.report(rec, err)
}

// report prints the receipt on stdout and the failure on stderr.
func (inv *invocation) report(rec *receipt.Receipt, err error) error {
	if err != nil {
		inv.logFailure("run failed", err)
	} else {
		switch inv.cmd.name {
		case "restore", "drill":
			inv.log.Info(inv.cmd.name+" ok: the copy verified", "applied", rec.Restore != nil && rec.Restore.Applied)
		default:
			inv.log.Info("run ok: every destination verified", "destinations", len(rec.Destinations))
		}
	}
	if inv.metricsFile != "" {
		if merr := metrics.Write(inv.metricsFile, inv.cmd.name, rec); merr != nil {
			inv.log.Error("the metrics file was not updated: monitoring will not see this run", "err", merr.Error())
		}
	}
	if inv.jsonOut {
		doc, jerr := rec.JSON()
		if jerr != nil {
			return errors.Join(err, jerr)
		}
		if _, werr := inv.stdout.Write(doc); werr != nil {
			return errors.Join(err, werr)
		}
		return err
	}
	if werr := rec.WriteText(inv.stdout); werr != nil {
		return errors.Join(err, werr)
	}
	return err
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/escrow"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
)

// checkReport is what `keyescrow check` prints.
type checkReport struct {
	Status       string         `json:"status"`
	Tool         string         `json:"tool"`
	Version      string         `json:"version"`
	SQLServer    *sqlCheck      `json:"sqlserver"`
	Waived       []string       `json:"waived"`
	Destinations []destCheck    `json:"destinations"`
	Error        *receipt.Error `json:"error,omitempty"`
	ExitCode     int            `json:"exit_code"`
}

type sqlCheck struct {
	Status         string `json:"status"` // ok, failed, skipped
	Server         string `json:"server,omitempty"`
	Instance       string `json:"instance,omitempty"`
	ProductVersion string `json:"product_version,omitempty"`
	ControlServer  bool   `json:"control_server"`
	// Remote mode (backup.remote): the login may read the key file back
	// (ADMINISTER BULK OPERATIONS) and remove it (sysadmin).
	BulkOperations *bool          `json:"bulk_operations,omitempty"`
	Sysadmin       *bool          `json:"sysadmin,omitempty"`
	Detail         string         `json:"detail,omitempty"`
	Error          *receipt.Error `json:"error,omitempty"`
}

type destCheck struct {
	Name     string          `json:"name"`
	Type     string          `json:"type"`
	Location string          `json:"location"`
	Region   string          `json:"region"`
	Status   string          `json:"status"` // ok, refused, failed
	Checks   []receipt.Check `json:"checks"`
	Error    *receipt.Error  `json:"error,omitempty"`
}

// runCheck is the preflight alone: it writes nothing anywhere (no lock, no
// key file, no object).
func (a *App) runCheck(ctx context.Context, inv *invocation) error {
	rep := &checkReport{Status: "failed", Tool: "keyescrow", Version: a.Build.Version, Waived: []string{}, Destinations: []destCheck{}}
	err := a.check(ctx, inv, rep)
	rep.ExitCode = exitcode.Code(err)
	if err == nil {
		rep.Status = "ok"
		inv.log.Info("check ok: SQL Server and every destination meet the policy")
	} else {
		inv.logFailure("check failed", err)
	}
	if inv.jsonOut {
		doc, _ := json.MarshalIndent(rep, "", "  ")
		_, _ = inv.stdout.Write(append(doc, '\n'))
		return err
	}
	_, _ = inv.stdout.Write([]byte(rep.text()))
	return err
}

func (a *App) check(ctx context.Context, inv *invocation, rep *checkReport) error {
	cfg, r, err := inv.setup()
	if err != nil {
		rep.Error = &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}
		return err
	}
	ctx, cancel := inv.withRun(ctx)
	defer cancel()
	rep.Waived = append(rep.Waived, cfg.Waive...)
	var errs []error
	rep.SQLServer, err = inv.checkSQL(ctx, cfg)
	errs = append(errs, err)

	for _, res := range r.Preflight(ctx) {
		dc := destCheck{Name: res.Name, Type: res.Type, Location: res.Location, Region: res.Region(), Status: "ok", Checks: res.Checks()}
		if dc.Checks == nil {
			dc.Checks = []receipt.Check{}
		}
		if res.Err != nil {
			dc.Status = "refused"
			if exitcode.Code(res.Err) != exitcode.Policy {
				dc.Status = "failed"
			}
			dc.Error = &receipt.Error{Code: exitcode.Code(res.Err), Message: res.Err.Error()}
			errs = append(errs, res.Err)
		}
		rep.Destinations = append(rep.Destinations, dc)
	}
	return errors.Join(errs...)
}

// checkSQL proves the SQL Server side: the password is present and meets
// the policy, the key folder is private, the login works and holds CONTROL
// SERVER.
func (inv *invocation) checkSQL(ctx context.Context, cfg *config.Config) (*sqlCheck, error) {
	sc := &sqlCheck{Status: "failed"}
	if cfg.SQLServer == nil {
		sc.Status, sc.Detail = "skipped", "no sqlserver section: archive only"
		return sc, nil
	}
	fail := func(err error) (*sqlCheck, error) {
		sc.Error = &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}
		return sc, err
	}
	if _, err := inv.readPassword(cfg); err != nil {
		return fail(err)
	}
	// In remote mode the key folder is on the server's disk only.
	if cfg.Backup.ServerDirectory != "" && !cfg.Backup.Remote {
		if err := escrow.CheckKeyFolder(cfg.Backup.LocalDirectory, cfg.Backup.ServerDirectory); err != nil {
			return fail(err)
		}
	}
	dsn, err := inv.readDSN(cfg)
	if err != nil {
		return fail(err)
	}
	db, err := inv.connectSQL(dsn)(ctx)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	info, err := db.Info(ctx)
	if err != nil {
		return fail(err)
	}
	sc.Server, sc.Instance, sc.ProductVersion, sc.ControlServer = info.ServerName, info.InstanceName, info.ProductVersion, info.ControlServer
	if !info.ControlServer {
		return fail(exitcode.Wrap(exitcode.SQLServer, fmt.Errorf("the login cannot back up the service master key: it lacks CONTROL SERVER; GRANT CONTROL SERVER TO [login]; (or use a member of sysadmin)")))
	}
	if cfg.Backup.Remote {
		sc.BulkOperations, sc.Sysadmin = &info.BulkOperations, &info.Sysadmin
		if !info.BulkOperations {
			return fail(exitcode.Wrap(exitcode.SQLServer, fmt.Errorf("backup.remote reads the key file back through SQL Server, which needs ADMINISTER BULK OPERATIONS, and the login lacks it: GRANT ADMINISTER BULK OPERATIONS TO [login]; or add the login to bulkadmin")))
		}
		if !info.Sysadmin {
			sc.Detail = "the login is not sysadmin: the key file will stay on the server after each run (xp_delete_files needs sysadmin)"
			inv.log.Warn("backup.remote: the login is not a member of sysadmin, so keyescrow cannot remove the key file from the server after a run; remove it there, or use a sysadmin login", "server_directory", cfg.Backup.ServerDirectory)
		}
	}
	sc.Status = "ok"
	return sc, nil
}

func (rep *checkReport) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s check\n", rep.Status)
	if s := rep.SQLServer; s != nil {
		fmt.Fprintf(&b, "  sqlserver: %s", s.Status)
		if s.Server != "" {
			fmt.Fprintf(&b, " server=%s instance=%s version=%s control_server=%t", s.Server, s.Instance, s.ProductVersion, s.ControlServer)
			if s.BulkOperations != nil && s.Sysadmin != nil {
				fmt.Fprintf(&b, " bulk_operations=%t sysadmin=%t", *s.BulkOperations, *s.Sysadmin)
			}
		}
		if s.Detail != "" {
			fmt.Fprintf(&b, " (%s)", s.Detail)
		}
		if s.Error != nil {
			fmt.Fprintf(&b, " error(%d): %s", s.Error.Code, s.Error.Message)
		}
		b.WriteByte('\n')
	}
	for _, d := range rep.Destinations {
		fmt.Fprintf(&b, "  %s (%s): %s %s\n", d.Name, d.Type, d.Status, d.Location)
		for _, c := range d.Checks {
			fmt.Fprintf(&b, "    %-12s %-6s %s\n", c.Name, c.Result, c.Detail)
		}
		if d.Error != nil {
			fmt.Fprintf(&b, "    error(%d): %s\n", d.Error.Code, d.Error.Message)
		}
	}
	if rep.Error != nil {
		fmt.Fprintf(&b, "  error(%d): %s\n", rep.Error.Code, rep.Error.Message)
	}
	return b.String()
}

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
	"github.com/keyescrow/keyescrow/internal/sign"
)

// checkReport is what `keyescrow check` prints.
type checkReport struct {
	Status       string      `json:"status"`
	Tool         string      `json:"tool"`
	Version      string      `json:"version"`
	SQLServer    *sqlCheck   `json:"sqlserver"`
	Waived       []string    `json:"waived"`
	Destinations []destCheck `json:"destinations"`
	// Signing: the receipt signing key and the pinned keys (always
	// present; status "unsigned" when neither is configured).
	Signing  *signingCheck  `json:"signing"`
	Error    *receipt.Error `json:"error,omitempty"`
	ExitCode int            `json:"exit_code"`
}

// signingCheck is what check proved of signing.key_file and
// trust.public_keys.
type signingCheck struct {
	// Status: ok (the key loads and is pinned), unpinned (signing without
	// pinned keys: nothing checks the signatures), verify-only (pinned keys,
	// no signing key: this host only reads), unsigned (neither), failed.
	Status     string         `json:"status"`
	KeyID      string         `json:"key_id,omitempty"`
	PublicKey  string         `json:"public_key,omitempty"`
	PinnedKeys int            `json:"pinned_keys"`
	Detail     string         `json:"detail,omitempty"`
	Error      *receipt.Error `json:"error,omitempty"`
}

type sqlCheck struct {
	Status         string `json:"status"` // ok, failed, skipped
	Server         string `json:"server,omitempty"`
	Instance       string `json:"instance,omitempty"`
	ProductVersion string `json:"product_version,omitempty"`
	ControlServer  bool   `json:"control_server"`
	// Remote mode (backup.remote): the login may read the key file back
	// (ADMINISTER BULK OPERATIONS) and remove it (sysadmin).
	BulkOperations *bool `json:"bulk_operations,omitempty"`
	Sysadmin       *bool `json:"sysadmin,omitempty"`
	// Hierarchy: the inventory could be read, and every selected key
	// that needs a password (hierarchy.passwords) has one (absent when
	// hierarchy.enabled is false).
	Hierarchy *hierarchyCheck `json:"hierarchy,omitempty"`
	Detail    string          `json:"detail,omitempty"`
	Error     *receipt.Error  `json:"error,omitempty"`
}

// hierarchyCheck is what check proved of the keys below the service
// master key.
type hierarchyCheck struct {
	Status string `json:"status"` // ok, incomplete (a database's keys cannot be read), failed
	// Items the configuration selects; Excluded it leaves out.
	Items    int `json:"items"`
	Excluded int `json:"excluded"`
	// Problems are the databases whose keys cannot be read.
	Problems []receipt.InventoryNote `json:"problems,omitempty"`
	// MissingPasswords: the keys whose password is needed and not
	// configured (or not readable), each with the fix.
	MissingPasswords []string       `json:"missing_passwords,omitempty"`
	Error            *receipt.Error `json:"error,omitempty"`
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
	rep.Signing, err = inv.checkSigning(cfg, len(r.Trust) > 0)
	errs = append(errs, err)
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

// checkSigning proves the signing key loads (owner-only, a valid key) and
// that its public key is pinned; it warns when receipts would be signed but
// never checked, or neither.
func (inv *invocation) checkSigning(cfg *config.Config, pinned bool) (*signingCheck, error) {
	sc := &signingCheck{PinnedKeys: len(cfg.Trust.PublicKeys)}
	priv, err := inv.readSigningKey(cfg)
	if err != nil {
		sc.Status, sc.Error = "failed", &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}
		return sc, err
	}
	trust, _ := trustOf(cfg)
	switch {
	case priv == nil && !pinned:
		sc.Status, sc.Detail = "unsigned", "receipts are stored unsigned and not authenticated: anyone who can write to a destination can add a copy that counts (keyescrow init-key, then signing.key_file and trust.public_keys)"
		inv.log.Warn(sc.Detail)
		return sc, nil
	case priv == nil:
		sc.Status, sc.Detail = "verify-only", "no signing key: only copies whose receipts a pinned key signed are counted, so backup and archive from this host would store copies that do not count; set signing.key_file on a host that writes"
		if cfg.SQLServer != nil {
			inv.log.Warn(sc.Detail)
		}
		return sc, nil
	}
	pub := sign.Public(priv)
	sc.KeyID, sc.PublicKey = pub.ID, pub.String()
	if isPinned, ok := signingPinned(priv, trust); !isPinned {
		sc.Status, sc.Detail = "unpinned", "receipts will be signed, but trust.public_keys is empty, so list, verify and restore do not check them: pin "+pub.String()+" there"
		inv.log.Warn(sc.Detail)
		return sc, nil
	} else if !ok {
		err := exitcode.Wrap(exitcode.Usage, fmt.Errorf("signing.key_file: its public key %s (key id %s) is not in trust.public_keys, so the receipts it signs would not be accepted: add it there (keep the old key pinned until its copies age out)", pub, pub.ID))
		sc.Status, sc.Error = "failed", &receipt.Error{Code: exitcode.Usage, Message: err.Error()}
		return sc, err
	}
	sc.Status, sc.Detail = "ok", "the signing key loads and its public key is pinned"
	return sc, nil
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
	if err := escrow.MayBackUp(info); err != nil {
		return fail(err)
	}
	if cfg.Backup.Remote {
		sc.BulkOperations, sc.Sysadmin = &info.BulkOperations, &info.Sysadmin
		if err := escrow.MayReadBack(info); err != nil {
			return fail(err)
		}
		if !info.Sysadmin {
			sc.Detail = "the login is not sysadmin: the key file will stay on the server after each run (xp_delete_files needs sysadmin)"
			inv.log.Warn("backup.remote: the login is not a member of sysadmin, so keyescrow cannot remove the key file from the server after a run; remove it there, or use a sysadmin login", "server_directory", cfg.Backup.ServerDirectory)
		}
	}
	if cfg.Hierarchy.Enabled {
		if err := inv.checkHierarchy(ctx, cfg, db, sc); err != nil {
			return fail(err)
		}
	}
	sc.Status = "ok"
	return sc, nil
}

// checkHierarchy reads the inventory as backup will (VIEW SERVER STATE and
// every database's catalog) and finds the selected keys whose password is
// needed and not configured: backup would fail them with exit 2.
func (inv *invocation) checkHierarchy(ctx context.Context, cfg *config.Config, db escrow.SQL, sc *sqlCheck) error {
	hc := &hierarchyCheck{Status: "failed"}
	sc.Hierarchy = hc
	fail := func(err error) error {
		hc.Error = &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}
		return err
	}
	hs, ok := db.(escrow.HierarchySQL)
	if !ok {
		return fail(exitcode.Wrap(exitcode.Internal, errors.New("this SQL Server session cannot read the hierarchy")))
	}
	h, err := hs.Inventory(ctx)
	if err != nil {
		return fail(fmt.Errorf("the hierarchy's inventory cannot be read, so backup would escrow the service master key only: %w", err))
	}
	sel := escrow.SelectItems(h, cfg.Hierarchy)
	hc.Items, hc.Excluded, hc.Problems = len(sel.Items), len(sel.Excluded), sel.Inventory.Problems
	var errs []error
	for _, e := range escrow.KeyPasswordProblems(h, sel.Items, inv.keyPasswords(cfg)) {
		hc.MissingPasswords = append(hc.MissingPasswords, e.Error())
		errs = append(errs, e)
	}
	if err := errors.Join(errs...); err != nil {
		return fail(exitcode.Wrap(exitcode.Usage, fmt.Errorf("%d selected keys need a password that is not configured: %w", len(errs), err)))
	}
	hc.Status = "ok"
	if !sel.Inventory.Complete {
		hc.Status = "incomplete"
		for _, p := range sel.Inventory.Problems {
			inv.log.Warn("a database's keys cannot be read: backup will not escrow them", "database", p.Database, "problem", p.Message)
		}
	}
	return nil
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
		if h := s.Hierarchy; h != nil {
			fmt.Fprintf(&b, "  hierarchy: %s items=%d excluded=%d", h.Status, h.Items, h.Excluded)
			for _, p := range h.Problems {
				fmt.Fprintf(&b, " (%s: %s)", p.Database, p.Message)
			}
			b.WriteByte('\n')
		}
	}
	if s := rep.Signing; s != nil {
		fmt.Fprintf(&b, "  signing: %s", s.Status)
		if s.KeyID != "" {
			fmt.Fprintf(&b, " key_id=%s", s.KeyID)
		}
		fmt.Fprintf(&b, " pinned_keys=%d", s.PinnedKeys)
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

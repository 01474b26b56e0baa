package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyescrow/keyescrow/internal/escrow"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
)

// runInventory prints the configured server's key hierarchy and, for each
// key, whether a proven copy of it as it is now exists at each
// destination. It writes nothing and takes no lock. Exit 0: every required
// key (the service master key, every selected item, every TDE certificate)
// has a proven copy of its current key at every destination; 8: one has
// not; 3: SQL Server could not be read; 5: a destination could not.
func (a *App) runInventory(ctx context.Context, inv *invocation) error {
	now := a.Clock().UTC()
	fail := func(err error) error {
		rep := &escrow.InventoryReport{Status: escrow.InventoryFailed, Tool: "keyescrow", Version: a.Build.Version, Command: "inventory",
			StartedAt: now, FinishedAt: now, Databases: []escrow.InventoryDatabase{}, Destinations: []escrow.InventoryDest{}, Warnings: []string{},
			ExitCode: exitcode.Code(err), Error: &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}}
		return inv.reportInventory(rep, err)
	}
	if len(inv.args) > 0 {
		return fail(exitcode.Wrap(exitcode.Usage, fmt.Errorf("inventory takes no arguments (got %q): it reads the server the configuration names", inv.args[0])))
	}
	_, r, err := inv.setup()
	if err != nil {
		return fail(err)
	}
	ctx, cancel := inv.withRun(ctx)
	defer cancel()
	dsn, err := inv.readDSN(inv.cfg)
	if err != nil {
		return fail(err)
	}
	r.ConnectSQL = inv.connectSQL(dsn)
	rep, err := r.Inventory(ctx)
	return inv.reportInventory(rep, err)
}

func (inv *invocation) reportInventory(rep *escrow.InventoryReport, err error) error {
	switch {
	case err == nil:
		inv.log.Info("inventory ok: every required key has a proven copy of its current key at every destination")
	case exitcode.Code(err) == exitcode.Stale:
		inv.log.Error("inventory: a required key has no proven copy of its current key", "err", err.Error())
	default:
		inv.logFailure("inventory failed", err)
	}
	for _, w := range rep.Warnings {
		inv.log.Warn(w)
	}
	if inv.jsonOut {
		doc, jerr := json.MarshalIndent(rep, "", "  ")
		if jerr != nil {
			return errors.Join(err, jerr)
		}
		_, werr := inv.stdout.Write(append(doc, '\n'))
		return errors.Join(err, werr)
	}
	_, werr := inv.stdout.Write([]byte(inventoryText(rep)))
	return errors.Join(err, werr)
}

// inventoryText renders the report as a tree: the service master key, then
// each database with its master key and certificates, each key with its
// selection and its newest proven copy at each destination.
func inventoryText(rep *escrow.InventoryReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s inventory host=%s instance=%s", rep.Status, dash(rep.Host), dash(rep.Instance))
	if rep.Server != "" {
		fmt.Fprintf(&b, " server=%s version=%s certificates=%s", rep.Server, rep.ProductVersion, rep.CertificateFormat)
	}
	fmt.Fprintf(&b, " hierarchy=%t refresh=%s receipts-authenticated=%t run=%s\n", rep.HierarchyEnabled, rep.Refresh, rep.ReceiptsAuthenticated, rep.RunID)
	if k := rep.ServiceMasterKey; k != nil {
		b.WriteString("  service master key")
		keyText(&b, "    ", k)
	}
	for _, d := range rep.Databases {
		fmt.Fprintf(&b, "  database %s (%s)", d.Name, dash(d.State))
		if t := d.TDE; t != nil {
			switch {
			case t.Certificate != "":
				fmt.Fprintf(&b, ", TDE-encrypted: its encryption key is protected by certificate %s", t.Certificate)
			case t.Thumbprint == "":
				b.WriteString(", TDE-encrypted by SQL Server itself (no key to escrow)")
			default:
				fmt.Fprintf(&b, ", TDE-encrypted by %s %s (not a certificate in master)", strings.ToLower(t.EncryptorType), t.Thumbprint)
			}
		}
		b.WriteByte('\n')
		if d.Problem != "" {
			fmt.Fprintf(&b, "    keys not read: %s\n", d.Problem)
		}
		if d.MasterKey != nil {
			b.WriteString("    database master key")
			keyText(&b, "      ", d.MasterKey)
		}
		for i := range d.Certificates {
			fmt.Fprintf(&b, "    certificate %s", d.Certificates[i].Name)
			keyText(&b, "      ", &d.Certificates[i])
		}
	}
	for _, d := range rep.Destinations {
		if d.Error != nil {
			fmt.Fprintf(&b, "  %s (%s): failed: error(%d): %s\n", d.Name, d.Type, d.Error.Code, d.Error.Message)
		}
	}
	s := rep.Summary
	if s.Keys > 0 || rep.ServiceMasterKey != nil {
		fmt.Fprintf(&b, "  summary: %d keys, %d selected, %d excluded, %d not escrowed; of the %d required: %d current, %d outdated, %d missing, %d unknown\n",
			s.Keys, s.Selected, s.Excluded, s.NotEscrowed, s.Required, s.Current, s.Outdated, s.Missing, s.Unknown)
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", w)
	}
	if rep.Error != nil {
		fmt.Fprintf(&b, "  error(%d): %s\n", rep.Error.Code, rep.Error.Message)
	}
	return b.String()
}

// keyText writes a key's facts on the current line, then its selection
// and copies indented.
func keyText(b *strings.Builder, indent string, k *escrow.InventoryKey) {
	var facts []string
	switch k.Kind {
	case receipt.KindDatabaseMasterKey:
		facts = append(facts, "key_guid="+k.KeyGUID)
		if k.Modified != nil {
			facts = append(facts, "modified="+k.Modified.Format(time.RFC3339))
		}
		if p := k.ProtectedByServiceMasterKey; p != nil && *p {
			facts = append(facts, "protected by the service master key")
		} else {
			facts = append(facts, "protected by its password only")
		}
	case receipt.KindCertificate:
		facts = append(facts, "thumbprint="+k.Thumbprint)
		if k.Expiry != nil {
			facts = append(facts, "expires="+k.Expiry.Format(time.DateOnly))
		}
		facts = append(facts, "private-key="+privateKeyText(k.PrivateKey))
		if k.LastBackup != nil {
			facts = append(facts, "last-exported="+k.LastBackup.Format(time.RFC3339))
		} else if k.PrivateKey != "" && k.PrivateKey != "NA" {
			facts = append(facts, "never exported")
		}
		if len(k.TDE) > 0 {
			facts = append(facts, "protects TDE database "+strings.Join(k.TDE, ", "))
		}
	}
	if k.PasswordNeeded {
		if k.PasswordConfigured {
			facts = append(facts, "password configured")
		} else {
			facts = append(facts, "NO password configured")
		}
	}
	if len(facts) > 0 {
		b.WriteString(": " + strings.Join(facts, ", "))
	}
	b.WriteByte('\n')
	sel := k.Selection
	if k.Reason != "" {
		sel += " (" + k.Reason + ")"
	}
	if k.Required && k.Selection != escrow.SelSelected {
		sel += "; required: it protects a TDE database"
	}
	if string(k.Status) == k.Selection {
		// A key that is never escrowed has no status of its own.
		fmt.Fprintf(b, "%s%s\n", indent, sel)
	} else {
		fmt.Fprintf(b, "%s%s: %s\n", indent, sel, k.Status)
	}
	for _, c := range k.Copies {
		fmt.Fprintf(b, "%s  %s: %s", indent, c.Destination, c.Status)
		if c.Time != nil {
			fmt.Fprintf(b, " %s (%s old) run=%s version=%s", c.Time.Format(time.RFC3339), (time.Duration(c.AgeSeconds) * time.Second).String(), c.RunID, dash(c.VersionID))
		}
		if c.Changed != "" {
			fmt.Fprintf(b, ": now %s", c.Changed)
		}
		if c.Error != nil {
			fmt.Fprintf(b, " error(%d): %s", c.Error.Code, c.Error.Message)
		}
		b.WriteByte('\n')
	}
}

func privateKeyText(p string) string {
	switch p {
	case "MK":
		return "by the database master key"
	case "PW":
		return "by its own password"
	case "SK":
		return "by the service master key"
	case "NA", "":
		return "none"
	}
	return p
}

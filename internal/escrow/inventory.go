package escrow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
)

// This file is `keyescrow inventory`: every key of the configured SQL
// Server's encryption hierarchy, what protects what, what the
// configuration selects, and for each key whether a proven copy of it as
// it is now exists at each destination.

// Inventory statuses of a key (InventoryKey.Status, InventoryCopy.Status).
const (
	// KeyCurrent: the newest genuine copy holds the key as SQL Server
	// reports it now (receipt.Item.Same).
	KeyCurrent = "current"
	// KeyOutdated: the newest genuine copy holds an earlier key (the key
	// was regenerated, the certificate replaced).
	KeyOutdated = "outdated"
	// KeyMissing: no genuine copy.
	KeyMissing = "missing"
	// KeyPresent: the service master key has a genuine copy (SQL Server
	// does not say whether the key changed since, so it is not compared).
	KeyPresent = "present"
	// KeyUnknown: the destination could not be read.
	KeyUnknown = "unknown"
	// KeyNotEscrowed: a certificate keyescrow never escrows (no private
	// key, or SQL Server's own ##MS_…## certificate).
	KeyNotEscrowed = "not-escrowed"
)

// Selections of a key (InventoryKey.Selection).
const (
	SelSelected    = "selected"
	SelExcluded    = "excluded"
	SelNotEscrowed = "not-escrowed"
)

// Inventory report statuses.
const (
	InventoryOK      = "ok"      // every required key has a proven copy of its current key at every destination
	InventoryMissing = "missing" // a required key has none at some destination (exit 8)
	InventoryFailed  = "failed"  // SQL Server or a destination could not be read
)

// ExpiryWarning is how close to its expiry date a certificate is warned of.
const ExpiryWarning = 30 * 24 * time.Hour

// InventoryReport is the result of `keyescrow inventory`.
type InventoryReport struct {
	Status     string    `json:"status"` // ok, missing, failed
	Tool       string    `json:"tool"`
	Version    string    `json:"version"`
	RunID      string    `json:"run_id"`
	Command    string    `json:"command"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// Host and Instance name the copies looked for (the host key of the
	// configuration, else SQL Server's MachineName; its instance).
	Host           string `json:"host"`
	Instance       string `json:"instance"`
	Server         string `json:"server"` // @@SERVERNAME
	ProductVersion string `json:"product_version"`
	// CertificateFormat is how backup exports certificates on this
	// server: pfx (SQL Server 2022 and later) or pvk (.cer and .pvk).
	CertificateFormat string `json:"certificate_format"`
	// HierarchyEnabled is hierarchy.enabled; Refresh hierarchy.refresh.
	HierarchyEnabled bool   `json:"hierarchy_enabled"`
	Refresh          string `json:"refresh"`
	// ReceiptsAuthenticated: trust.public_keys is set, so only copies whose
	// receipt a pinned key signed count.
	ReceiptsAuthenticated bool                `json:"receipts_authenticated"`
	ServiceMasterKey      *InventoryKey       `json:"service_master_key"`
	Databases             []InventoryDatabase `json:"databases"`
	Summary               InventorySummary    `json:"summary"`
	Destinations          []InventoryDest     `json:"destinations"`
	Warnings              []string            `json:"warnings"`
	Error                 *receipt.Error      `json:"error,omitempty"`
	ExitCode              int                 `json:"exit_code"`
}

// InventoryDatabase is one database and its keys.
type InventoryDatabase struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Problem says why its keys could not be read ("" when they were).
	Problem string `json:"problem,omitempty"`
	// TDE: the database is encrypted (transparent data encryption), and
	// what protects its database encryption key.
	TDE          *InventoryTDE  `json:"tde,omitempty"`
	MasterKey    *InventoryKey  `json:"master_key"`
	Certificates []InventoryKey `json:"certificates"`
}

// InventoryTDE is a database's encryption key and its protector.
type InventoryTDE struct {
	State         int    `json:"encryption_state"` // 3 = encrypted
	EncryptorType string `json:"encryptor_type"`
	Thumbprint    string `json:"encryptor_thumbprint"`
	// Certificate is the certificate in master that protects it
	// ("master/TDECert"); "" when no certificate in master has the
	// thumbprint (an asymmetric key, an EKM key).
	Certificate string `json:"certificate,omitempty"`
}

// InventoryKey is one key: what SQL Server says of it, what the
// configuration does with it, and its copies.
type InventoryKey struct {
	receipt.Item
	// LastBackup is a certificate's pvt_key_last_backup_date (nil: never
	// exported, by anyone).
	LastBackup *time.Time `json:"pvt_key_last_backup_date,omitempty"`
	// PasswordNeeded: exporting it needs a configured password (a master
	// key the service master key does not protect, a private key with a
	// password of its own); PasswordConfigured says whether
	// hierarchy.passwords has one.
	PasswordNeeded     bool   `json:"password_needed,omitempty"`
	PasswordConfigured bool   `json:"password_configured,omitempty"`
	Selection          string `json:"selection"` // selected, excluded, not-escrowed
	Reason             string `json:"reason,omitempty"`
	// Required: the inventory fails (exit 8) unless every destination
	// holds a proven copy of the key as it is now: the service master
	// key, every selected item, and every TDE certificate.
	Required bool `json:"required"`
	// Status: current, outdated, missing, present (service master key),
	// unknown (a destination could not be read), not-escrowed.
	Status string          `json:"status"`
	Copies []InventoryCopy `json:"copies"`
}

// InventoryCopy is a key's newest genuine copy at one destination.
type InventoryCopy struct {
	Destination string     `json:"destination"`
	Status      string     `json:"status"` // current, outdated, missing, present, unknown
	Time        *time.Time `json:"time,omitempty"`
	AgeSeconds  float64    `json:"age_seconds,omitempty"`
	RunID       string     `json:"run_id,omitempty"`
	Location    string     `json:"location,omitempty"`
	VersionID   string     `json:"version_id,omitempty"`
	// Authenticated: its receipt is signed by a pinned key.
	Authenticated bool `json:"authenticated"`
	// Changed says what differs from the key as it is now (outdated).
	Changed string         `json:"changed,omitempty"`
	Error   *receipt.Error `json:"error,omitempty"`
}

// InventorySummary counts the keys.
type InventorySummary struct {
	Keys        int `json:"keys"`
	Selected    int `json:"selected"`
	Excluded    int `json:"excluded"`
	NotEscrowed int `json:"not_escrowed"`
	Required    int `json:"required"`
	Current     int `json:"current"` // required keys with a proven current copy everywhere
	Outdated    int `json:"outdated"`
	Missing     int `json:"missing"`
	Unknown     int `json:"unknown"`
}

// InventoryDest is how reading one destination went.
type InventoryDest struct {
	Name   string         `json:"name"`
	Type   string         `json:"type"`
	Status string         `json:"status"` // ok, failed
	Error  *receipt.Error `json:"error,omitempty"`
}

// Inventory reads the hierarchy from SQL Server, applies the
// configuration's selection and looks up each key's newest genuine copy
// at every destination. It writes nothing and takes no lock. The report is
// returned even when err is not nil: exit 3 when SQL Server cannot be
// read, 5 when a destination cannot, 8 when a required key has no proven
// copy of its current key at some destination.
func (r *Runner) Inventory(ctx context.Context) (*InventoryReport, error) {
	rep := &InventoryReport{Status: InventoryFailed, Tool: "keyescrow", Version: r.Version, RunID: r.RunID, Command: "inventory",
		StartedAt: r.Clock().UTC(), HierarchyEnabled: r.Config.Hierarchy.Enabled, Refresh: r.Config.Hierarchy.Refresh.String(),
		ReceiptsAuthenticated: len(r.Trust) > 0, Databases: []InventoryDatabase{}, Destinations: []InventoryDest{}, Warnings: []string{}}
	r.warnUnauthenticated(ctx, false)
	err := r.inventory(ctx, rep)
	rep.FinishedAt = r.Clock().UTC()
	rep.ExitCode = exitcode.Code(err)
	switch {
	case err == nil:
		rep.Status = InventoryOK
	case rep.ExitCode == exitcode.Stale:
		rep.Status = InventoryMissing
	}
	if err != nil {
		rep.Error = &receipt.Error{Code: rep.ExitCode, Message: err.Error()}
	}
	return rep, err
}

func (r *Runner) inventory(ctx context.Context, rep *InventoryReport) error {
	if r.ConnectSQL == nil {
		return exitcode.Wrap(exitcode.Internal, errors.New("inventory: no SQL Server connection configured"))
	}
	db, err := r.ConnectSQL(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	hs, ok := db.(HierarchySQL)
	if !ok {
		return exitcode.Wrap(exitcode.Internal, errors.New("inventory: this SQL Server connection cannot read the hierarchy"))
	}
	info, err := db.Info(ctx)
	if err != nil {
		return err
	}
	rep.Host, rep.Instance, rep.Server, rep.ProductVersion = info.MachineName, info.InstanceName, info.ServerName, info.ProductVersion
	if r.Host != "" {
		rep.Host = r.Host
	}
	h, err := hs.Inventory(ctx)
	if err != nil {
		return err
	}
	r.Log.InfoContext(ctx, "read the hierarchy", "server", info.ServerName, "databases", len(h.Databases))
	rep.CertificateFormat = FormatName(sqlserver.FormatFor(h.MajorVersion))
	keys := r.buildInventory(rep, h)

	// The archive: each destination's newest genuine copy of every key.
	now := r.Clock()
	found := make([]map[heldKey]heldCopy, len(r.Destinations))
	derrs := make([]error, len(r.Destinations))
	warns := make([][]string, len(r.Destinations))
	var wg sync.WaitGroup
	for i, d := range r.Destinations {
		wg.Go(func() { found[i], warns[i], derrs[i] = r.heldCopies(ctx, d, rep.Host, rep.Instance) })
	}
	wg.Wait()
	var errs []error
	for i, d := range r.Destinations {
		id := InventoryDest{Name: d.Config.Name, Type: d.Backend.Type(), Status: "ok"}
		if derrs[i] != nil {
			derrs[i] = listError(d, derrs[i])
			id.Status, id.Error = "failed", &receipt.Error{Code: exitcode.Code(derrs[i]), Message: derrs[i].Error()}
			errs = append(errs, derrs[i])
			r.Log.ErrorContext(ctx, "listing failed", "destination", d.Config.Name, "err", derrs[i].Error())
		}
		rep.Destinations = append(rep.Destinations, id)
		rep.Warnings = append(rep.Warnings, warns[i]...)
	}
	var missing []string
	for _, k := range keys {
		r.judgeKey(k, found, derrs, now)
		s := &rep.Summary
		s.Keys++
		switch k.Selection {
		case SelSelected:
			s.Selected++
		case SelExcluded:
			s.Excluded++
		default:
			s.NotEscrowed++
		}
		if !k.Required {
			continue
		}
		s.Required++
		switch k.Status {
		case KeyCurrent, KeyPresent:
			s.Current++
		case KeyOutdated:
			s.Outdated++
		case KeyMissing:
			s.Missing++
		default:
			s.Unknown++
		}
		if msg := missingText(k); msg != "" {
			missing = append(missing, msg)
		}
	}
	if len(missing) > 0 {
		errs = append(errs, exitcode.Wrap(exitcode.Stale, errors.New(strings.Join(missing, "; "))))
	}
	return errors.Join(errs...)
}

// buildInventory fills the report's keys from the hierarchy and the
// selection, and returns them all (the service master key first).
func (r *Runner) buildInventory(rep *InventoryReport, h sqlserver.Hierarchy) []*InventoryKey {
	cfg := r.Config.Hierarchy
	sel := SelectItems(h, cfg)
	if !cfg.Enabled {
		for _, it := range sel.Items {
			sel.Excluded = append(sel.Excluded, receipt.ItemResult{Item: it, Action: receipt.ItemExcluded, Reason: "hierarchy.enabled is false: backup escrows the service master key only"})
		}
		sel.Items = nil
	}
	selection := func(it receipt.Item) (string, string) {
		for _, s := range sel.Items {
			if sameName(s, it) {
				return SelSelected, ""
			}
		}
		for _, x := range sel.Excluded {
			if sameName(x.Item, it) {
				return SelExcluded, x.Reason
			}
		}
		for _, x := range sel.Others {
			if sameName(x.Item, it) {
				return SelNotEscrowed, x.Reason
			}
		}
		return SelNotEscrowed, "not selected"
	}
	smk := &InventoryKey{Item: receipt.Item{Kind: receipt.KindServiceMasterKey}, Selection: SelSelected, Required: true}
	rep.ServiceMasterKey = smk
	keys := []*InventoryKey{smk}
	all := append(slices.Clone(sel.Items), func() []receipt.Item {
		var out []receipt.Item
		for _, x := range append(slices.Clone(sel.Excluded), sel.Others...) {
			out = append(out, x.Item)
		}
		return out
	}()...)
	lookup := func(kind, db, name string) receipt.Item {
		for _, it := range all {
			if it.Kind == kind && strings.EqualFold(it.Database, db) && (kind == receipt.KindDatabaseMasterKey || it.Name == name) {
				return it
			}
		}
		return receipt.Item{Kind: kind, Database: db, Name: name}
	}
	now := r.Clock()
	for _, d := range h.Databases {
		idb := InventoryDatabase{Name: d.Name, State: d.State, Problem: d.Problem, Certificates: []InventoryKey{}}
		if d.Problem != "" {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("database %s: %s: its keys are not listed", d.Name, d.Problem))
		}
		if e := d.Encryption; e != nil {
			idb.TDE = &InventoryTDE{State: e.State, EncryptorType: e.Type, Thumbprint: strings.ToUpper(fmt.Sprintf("%x", e.Thumbprint))}
			if e.Certificate != "" {
				idb.TDE.Certificate = "master/" + e.Certificate
			} else if len(e.Thumbprint) > 0 {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("database %s is encrypted (TDE) by %s %s, which is no certificate in master: keyescrow cannot escrow it; back it up by other means", d.Name, strings.ToLower(cmp.Or(e.Type, "a key")), idb.TDE.Thumbprint))
			}
		}
		if mk := d.MasterKey; mk != nil {
			k := &InventoryKey{Item: lookup(receipt.KindDatabaseMasterKey, d.Name, receipt.MasterKeyName)}
			k.Selection, k.Reason = selection(k.Item)
			k.Required = k.Selection == SelSelected
			if !mk.ServiceMasterKey {
				k.PasswordNeeded = true
				k.PasswordConfigured = cfg.PasswordFor(d.Name, "") >= 0
				if k.Selection == SelSelected && !k.PasswordConfigured {
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s is protected by a password only and hierarchy.passwords has none for it: backup cannot export it; add {database: %s, password_env: …}", k.Label(), d.Name))
				}
			}
			idb.MasterKey = k
			keys = append(keys, k)
		}
		for _, c := range d.Certificates {
			k := InventoryKey{Item: lookup(receipt.KindCertificate, d.Name, c.Name)}
			if !c.LastBackup.IsZero() {
				t := c.LastBackup.UTC()
				k.LastBackup = &t
			}
			k.Selection, k.Reason = selection(k.Item)
			tde := len(k.TDE) > 0 && c.HasPrivateKey()
			k.Required = k.Selection == SelSelected || tde
			if tde && k.Selection != SelSelected {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s protects %s but is not selected (%s): without a copy of it, and its private key, %s cannot be restored on another server; it is required all the same", k.Label(), tdeText(k.Item), k.Reason, strings.Join(k.TDE, ", ")))
			}
			if c.PrivateKey == sqlserver.KeyByPassword {
				k.PasswordNeeded = true
				k.PasswordConfigured = cfg.PasswordFor(d.Name, c.Name) >= 0
				if k.Selection == SelSelected && !k.PasswordConfigured {
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("the private key of %s has a password of its own and hierarchy.passwords has none for it: backup cannot export it; add {database: %s, certificate: %s, password_env: …}", k.Label(), d.Name, c.Name))
				}
			}
			if k.Selection != SelNotEscrowed && !c.Expiry.IsZero() {
				switch left := c.Expiry.Sub(now); {
				case left <= 0:
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s expired on %s (SQL Server still uses it for encryption; renew it when you can)", k.Label(), c.Expiry.UTC().Format(time.DateOnly)))
				case left <= ExpiryWarning:
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s expires on %s, in %d days", k.Label(), c.Expiry.UTC().Format(time.DateOnly), int(left.Hours()/24)))
				}
			}
			idb.Certificates = append(idb.Certificates, k)
		}
		rep.Databases = append(rep.Databases, idb)
	}
	// The keys inside the databases, by pointer (after every append).
	for i := range rep.Databases {
		for j := range rep.Databases[i].Certificates {
			keys = append(keys, &rep.Databases[i].Certificates[j])
		}
	}
	return keys
}

// sameName: the same kind, database and name (as SQL Server compares
// them), whatever the key's identity.
func sameName(a, b receipt.Item) bool {
	return a.Kind == b.Kind && strings.EqualFold(a.Database, b.Database) && strings.EqualFold(a.Name, b.Name)
}

// heldKey names a key's copies at a destination: kind, database and name
// as the folders decode, lower-cased.
type heldKey struct{ kind, database, name string }

func heldKeyOf(it receipt.Item) heldKey {
	k := heldKey{kind: it.Kind}
	if kindDepth(it.Kind) > 0 {
		k.database = strings.ToLower(it.Database)
	}
	if it.Kind == receipt.KindCertificate {
		k.name = strings.ToLower(it.Name)
	}
	return k
}

// heldCopy is a key's newest genuine copy at a destination.
type heldCopy struct {
	c    InventoryCopy
	item *receipt.Item // the item its receipt records
	err  error         // its receipt could not be read
}

// heldCopies walks the host's copies at d and judges each group's copies
// newest first until one is genuine.
func (r *Runner) heldCopies(ctx context.Context, d Destination, host, instance string) (map[heldKey]heldCopy, []string, error) {
	out := map[heldKey]heldCopy{}
	var warns []string
	_, err := walkHost(ctx, d, Filter{Host: host, Instance: instance}, 1+junkWindow, func(g *group) error {
		k := heldKey{kind: g.Kind}
		if kindDepth(g.Kind) > 0 {
			k.database = strings.ToLower(folderName(g.Database))
		}
		if g.Kind == receipt.KindCertificate {
			k.name = strings.ToLower(folderName(g.Item))
		}
		var lastKey string
		best, err := r.newestGenuine(ctx, d, g.Copies, func(j judged) {
			lastKey = j.c.Key
			for _, f := range j.findings {
				if f.Evidence {
					warns = append(warns, fmt.Sprintf("%s: %s (keyescrow verify fails on it)", d.Config.Name, f.Message))
				}
			}
			if j.skip != nil && j.skip.Evidence {
				warns = append(warns, fmt.Sprintf("%s: not counted: %s", d.Config.Name, j.skip.Message))
			}
		})
		if err != nil {
			out[k] = heldCopy{err: transferError("read the receipt of", target{name: d.Config.Name, backend: d.Backend}, lastKey, err)}
			return nil
		}
		if best != nil {
			t := best.c.Time
			out[k] = heldCopy{c: InventoryCopy{Destination: d.Config.Name, Time: &t, RunID: best.c.RunID, Location: best.c.Location, VersionID: best.c.VersionID,
				Authenticated: best.sr.authenticated}, item: best.sr.rec.Item}
		}
		return nil
	})
	return out, warns, err
}

// judgeKey sets a key's copies (one per destination) and its status.
func (r *Runner) judgeKey(k *InventoryKey, found []map[heldKey]heldCopy, derrs []error, now time.Time) {
	k.Copies = []InventoryCopy{}
	if k.Selection == SelNotEscrowed && !k.Required {
		k.Status = KeyNotEscrowed
		return
	}
	for i, d := range r.Destinations {
		c := InventoryCopy{Destination: d.Config.Name, Status: KeyMissing}
		h, ok := found[i][heldKeyOf(k.Item)]
		switch {
		case derrs[i] != nil:
			c.Status = KeyUnknown
			c.Error = &receipt.Error{Code: exitcode.Code(derrs[i]), Message: "the destination could not be read"}
		case !ok:
		case h.err != nil:
			c.Status = KeyUnknown
			c.Error = &receipt.Error{Code: exitcode.Code(h.err), Message: h.err.Error()}
		default:
			c = h.c
			c.AgeSeconds = now.Sub(*c.Time).Seconds()
			switch {
			case k.Kind == receipt.KindServiceMasterKey:
				c.Status = KeyPresent
			case h.item != nil && k.Same(*h.item):
				c.Status = KeyCurrent
			default:
				c.Status = KeyOutdated
				held := receipt.Item{}
				if h.item != nil {
					held = *h.item
				}
				c.Changed = k.Changed(held)
			}
		}
		k.Copies = append(k.Copies, c)
	}
	// The key's status is its worst copy's.
	rank := map[string]int{KeyCurrent: 0, KeyPresent: 0, KeyUnknown: 1, KeyOutdated: 2, KeyMissing: 3}
	k.Status = KeyCurrent
	if k.Kind == receipt.KindServiceMasterKey {
		k.Status = KeyPresent
	}
	for _, c := range k.Copies {
		if rank[c.Status] > rank[k.Status] {
			k.Status = c.Status
		}
	}
	if len(k.Copies) == 0 {
		k.Status = KeyMissing
	}
}

// missingText says why a required key fails the inventory ("" when it
// does not): the destinations without a proven copy of its current key.
func missingText(k *InventoryKey) string {
	var none, old []string
	for _, c := range k.Copies {
		switch c.Status {
		case KeyMissing:
			none = append(none, c.Destination)
		case KeyOutdated:
			old = append(old, c.Destination)
		}
	}
	if len(none) == 0 && len(old) == 0 {
		return ""
	}
	label := "the service master key"
	if k.Kind != receipt.KindServiceMasterKey {
		label = k.Label()
	}
	if tde := tdeText(k.Item); tde != "" {
		label += " protects " + tde + " and"
	}
	var parts []string
	if len(none) > 0 {
		parts = append(parts, "has no proven copy at "+strings.Join(none, ", "))
	}
	if len(old) > 0 {
		parts = append(parts, "changed since its newest proven copy at "+strings.Join(old, ", "))
	}
	return label + " " + strings.Join(parts, ", and ")
}

package escrow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
)

// This file is verify's view of the hierarchy below the service master
// key: every item the newest inventory lists must have, at every audited
// destination, a genuine proven copy of its current key younger than
// hierarchy.refresh + max_age (an unchanged item is archived again only
// every refresh).

// Item statuses in an audit (AuditedItem.Status).
const (
	ItemOK       = "ok"       // a proven copy of its current key, young enough
	ItemStale    = "stale"    // the newest proven copy of its current key is older than refresh + max_age
	ItemOutdated = "outdated" // the newest proven copy holds another key: the item changed since
	ItemMissing  = "missing"  // no proven copy at all
	ItemFailed   = "failed"   // its copies are proven current and young, but a copy failed (exit 5 or 6)
)

// AuditedItem is one item of the inventory at one destination.
type AuditedItem struct {
	Host     string `json:"host"`
	Instance string `json:"instance"`
	// Item is the item as the inventory records it (kind, database,
	// name, key_guid or thumbprint, tde_databases …).
	receipt.Item
	Status string `json:"status"` // ok, stale, outdated, missing, failed
	// Newest is the newest copy of the item that verified here (nil: none).
	Newest *ItemCopyRef `json:"newest"`
	// NewestAgeSeconds is Newest's age at the audit.
	NewestAgeSeconds float64 `json:"newest_age_seconds"`
	// MaxAge is the limit: hierarchy.refresh + max_age.
	MaxAge string `json:"max_age"`
	// Changed says what differs between the current key and the newest
	// copy's (status outdated).
	Changed string         `json:"changed,omitempty"`
	Error   *receipt.Error `json:"error,omitempty"`
}

// ItemCopyRef is a proven copy of an item.
type ItemCopyRef struct {
	Time      time.Time `json:"time"`
	RunID     string    `json:"run_id"`
	Location  string    `json:"location"`
	VersionID string    `json:"version_id"`
}

// InventorySource is the receipt the items verify checks come from.
type InventorySource struct {
	RunID     string    `json:"run_id"`
	StoredAt  time.Time `json:"stored_at"`
	Location  string    `json:"location"`
	VersionID string    `json:"version_id"`
	Complete  bool      `json:"complete"`
	Items     int       `json:"items"`
}

// auditedPending is a group audited and not yet judged by age.
type auditedPending struct {
	ag  AuditedGroup
	err error
}

// folderName is the name a folder holds, or the folder itself when it is
// not one safeName makes.
func folderName(f string) string {
	if n, ok := unSafeName(f); ok {
		return n
	}
	return f
}

// groupLabel names a group's item for people.
func groupLabel(g AuditedGroup) string {
	return receipt.Item{Kind: g.Kind, Database: g.Database, Name: g.Name}.Label()
}

// itemOf reports whether the group holds the copies of it.
func itemOf(g AuditedGroup, it receipt.Item) bool {
	if g.Kind != it.Kind || !strings.EqualFold(g.Database, it.Database) {
		return false
	}
	return g.Kind != receipt.KindCertificate || strings.EqualFold(g.Name, it.Name)
}

// tdeText is " (it protects TDE database Sales)" for a TDE certificate.
func tdeText(it receipt.Item) string {
	switch len(it.TDE) {
	case 0:
		return ""
	case 1:
		return "TDE database " + it.TDE[0]
	}
	return "TDE databases " + strings.Join(it.TDE, ", ")
}

// judgeItems judges the item groups (their content was proven by
// auditGroup) and the items of each instance's newest inventory, and
// appends them to out. judge records a group with its age limit.
func (r *Runner) judgeItems(ctx context.Context, d Destination, out *AuditedDest, items []auditedPending, now time.Time,
	judge func(AuditedGroup, error, time.Duration, string)) error {
	limit := time.Duration(r.Config.Hierarchy.Refresh) + time.Duration(r.Config.MaxAge)
	limitText := fmt.Sprintf("hierarchy.refresh %s + max_age %s", r.Config.Hierarchy.Refresh, r.Config.MaxAge)

	// Each instance's inventory: the one recorded in its service master
	// key's newest genuine receipt.
	type source struct {
		host, instance string
		inv            *receipt.Inventory
	}
	var sources []source
	for i := range out.Groups {
		g := &out.Groups[i]
		if g.Kind != receipt.KindServiceMasterKey {
			continue
		}
		ccp := newestChecked(g.Checked, func(c CheckedCopy) bool { return c.rec != nil })
		if ccp == nil {
			continue
		}
		cc := *ccp
		inv := cc.rec.Inventory
		if inv == nil && r.Config.Hierarchy.Enabled {
			// The newest run could not read the inventory (say, the login
			// lost VIEW SERVER STATE; that run failed with exit 3): the
			// newest inventory an earlier checked copy records still says
			// which keys must have a proven copy, so a key is never let
			// off because a later run could not see it.
			if older := newestChecked(g.Checked, func(c CheckedCopy) bool { return c.rec != nil && c.rec.Inventory != nil }); older != nil {
				g.Warnings = append(g.Warnings, fmt.Sprintf("the newest service master key copy (run %s) records no inventory of the hierarchy: the inventory of run %s is used", dash8(cc.RunID), dash8(older.RunID)))
				cc, inv = *older, older.rec.Inventory
			}
		}
		if inv == nil {
			hasItems := slices.ContainsFunc(items, func(p auditedPending) bool { return p.ag.Host == g.Host && p.ag.Instance == g.Instance })
			if !hasItems && !(r.Config.Hierarchy.Enabled && r.Config.SQLServer != nil) {
				continue // an archive of the service master key alone
			}
			g.Warnings = append(g.Warnings, fmt.Sprintf("the newest service master key copy (run %s) records no inventory of the hierarchy: the copies of database master keys and certificates are proven, but nothing says which must exist", dash8(cc.RunID)))
			continue
		}
		g.Inventory = &InventorySource{RunID: cc.RunID, StoredAt: cc.Time, Location: cc.Location, VersionID: cc.VersionID, Complete: inv.Complete, Items: len(inv.Items)}
		if !inv.Complete {
			var dbs []string
			for _, p := range inv.Problems {
				dbs = append(dbs, p.Database+" ("+p.Message+")")
			}
			g.Warnings = append(g.Warnings, fmt.Sprintf("the inventory of run %s is incomplete: the keys of %s could not be read, so they are not checked", dash8(cc.RunID), strings.Join(dbs, ", ")))
		}
		sources = append(sources, source{g.Host, g.Instance, inv})
	}
	listed := func(g AuditedGroup) bool {
		for _, s := range sources {
			if s.host == g.Host && s.instance == g.Instance {
				for _, it := range s.inv.Items {
					if itemOf(g, it) {
						return true
					}
				}
			}
		}
		return false
	}
	first := len(out.Groups)
	for _, p := range items {
		if listed(p.ag) {
			p.ag.MaxAge = limitText
			if p.ag.lapsed != "" {
				// The newest copy of a key still in use must be locked.
				p.err = errors.Join(p.err, exitcode.Wrap(exitcode.Verify, fmt.Errorf("%s: %s", d.Config.Name, p.ag.lapsed)))
				p.ag.Checked[0].Status = receipt.DestFailed
				p.ag.Checked[0].Error = &receipt.Error{Code: exitcode.Verify, Message: p.ag.lapsed}
			}
		} else {
			// A dropped or excluded item, or one of a host whose inventory
			// is unknown: its copies are still proven, their age is not
			// judged (they are never archived again), and their locks end.
			p.ag.MaxAge = "none"
			if p.ag.lapsed != "" {
				p.ag.Warnings = append(p.ag.Warnings, p.ag.lapsed+" (no inventory lists the item: its copies are not renewed)")
			}
		}
		judge(p.ag, p.err, 0, "")
	}
	itemGroups := out.Groups[first:]

	var errs []error
	for _, s := range sources {
		for _, it := range s.inv.Items {
			ai := AuditedItem{Host: s.host, Instance: s.instance, Item: it, MaxAge: limitText}
			var g *AuditedGroup
			for i := range itemGroups {
				if itemGroups[i].Host == s.host && itemGroups[i].Instance == s.instance && itemOf(itemGroups[i], it) {
					g = &itemGroups[i]
					break
				}
			}
			err := r.judgeItem(d, &ai, g, now, limit)
			errs = append(errs, err)
			out.Items = append(out.Items, ai)
		}
	}
	return errors.Join(errs...)
}

// judgeItem judges one item of the inventory by its group g (nil: no copy
// at all) and returns the failure it adds (its group's own failures are
// already counted).
func (r *Runner) judgeItem(d Destination, ai *AuditedItem, g *AuditedGroup, now time.Time, limit time.Duration) error {
	it := ai.Item
	var newest *CheckedCopy
	if g != nil {
		newest = newestChecked(g.Checked, func(c CheckedCopy) bool { return c.Status == receipt.DestVerified })
	}
	fail := func(status string, code int, msg string) error {
		ai.Status = status
		err := exitcode.Wrap(code, fmt.Errorf("%s: host %s instance %s: %s", d.Config.Name, ai.Host, ai.Instance, msg))
		ai.Error = &receipt.Error{Code: code, Message: err.Error()}
		if g != nil && code == exitcode.Stale {
			g.Stale = true
			if g.Status == AuditOK {
				g.Status = AuditStale
			}
		}
		return err
	}
	subject := it.Label()
	if tde := tdeText(it); tde != "" {
		subject += " protects " + tde + " and"
	}
	if newest == nil {
		msg := subject + " has no proven copy"
		if g != nil && g.Copies > 0 {
			msg += fmt.Sprintf(" (none of the %d copies here verified)", g.Copies)
		}
		return fail(ItemMissing, exitcode.Stale, msg)
	}
	ai.Newest = &ItemCopyRef{Time: newest.Time, RunID: newest.RunID, Location: newest.Location, VersionID: newest.VersionID}
	ai.NewestAgeSeconds = now.Sub(newest.Time).Seconds()
	held := receipt.Item{}
	if newest.rec != nil && newest.rec.Item != nil {
		held = *newest.rec.Item
	}
	if !it.Same(held) {
		ai.Changed = it.Changed(held)
		return fail(ItemOutdated, exitcode.Stale, fmt.Sprintf("%s changed since its newest proven copy (run %s, %s): %s; the current key has no proven copy",
			strings.TrimSuffix(subject, " and"), dash8(newest.RunID), newest.Time.Format(time.RFC3339), ai.Changed))
	}
	if age := now.Sub(newest.Time); age > limit {
		return fail(ItemStale, exitcode.Stale, fmt.Sprintf("%s: its newest proven copy is from %s (%s old), older than %s",
			strings.TrimSuffix(subject, " and"), newest.Time.Format(time.RFC3339), age.Round(time.Minute), ai.MaxAge))
	}
	ai.Status = ItemOK
	if g.Error != nil {
		// The current key is proven and young, but a copy failed: the
		// group's error counts already.
		ai.Status = ItemFailed
		ai.Error = g.Error
	}
	return nil
}

// newestChecked is the newest of the checked copies (newest first) that
// ok accepts: among those stored in the same second as the first of them
// (listings give whole seconds at most services), the one whose receipt
// was written last. nil when ok accepts none.
func newestChecked(cs []CheckedCopy, ok func(CheckedCopy) bool) *CheckedCopy {
	var best *CheckedCopy
	for i := range cs {
		c := &cs[i]
		if !ok(*c) {
			continue
		}
		if best == nil {
			best = c
			continue
		}
		if !c.Time.Truncate(time.Second).Equal(best.Time.Truncate(time.Second)) {
			break
		}
		if c.rec != nil && best.rec != nil && c.rec.FinishedAt.After(best.rec.FinishedAt) {
			best = c
		}
	}
	return best
}

func (r *Runner) logItem(ctx context.Context, d Destination, it AuditedItem) {
	args := []any{"destination", d.Config.Name, "host", it.Host, "instance", it.Instance, "item", it.Label(), "status", it.Status}
	if it.Newest != nil {
		args = append(args, "newest", it.Newest.Time.Format(time.RFC3339), "run", it.Newest.RunID)
	}
	if it.Error != nil {
		r.Log.ErrorContext(ctx, "item audit failed", append(args, "err", it.Error.Message)...)
		return
	}
	r.Log.InfoContext(ctx, "item audit ok", args...)
}

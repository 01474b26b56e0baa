package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keyescrow/keyescrow/internal/escrow"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/metrics"
	"github.com/keyescrow/keyescrow/internal/receipt"
)

// runList streams the archived copies: with --json one document whose
// "copies" array is written as the listing goes, so thousands of versions
// never sit in memory at once.
func (a *App) runList(ctx context.Context, inv *invocation) error {
	out := &listOutput{inv: inv, w: bufio.NewWriter(inv.stdout)}
	defer out.w.Flush()
	if len(inv.args) > 0 {
		return out.finish(nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("list takes no arguments (got %q): filter with --host, --instance and --destination", inv.args[0])))
	}
	if inv.limit < 0 {
		return out.finish(nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("--limit %d: use 0 (all) or a positive number", inv.limit)))
	}
	if err := escrow.CheckKind(inv.kind); err != nil {
		return out.finish(nil, err)
	}
	_, r, err := inv.setup()
	if err != nil {
		return out.finish(nil, err)
	}
	ctx, cancel := inv.withRun(ctx)
	defer cancel()
	out.start()
	out.authenticated = len(r.Trust) > 0 && !inv.noReceipts
	listed, err := r.List(ctx, escrow.ListOptions{
		Destination: inv.destination, Filter: escrow.Filter{Host: inv.host, Instance: inv.instance, Kind: inv.kind, Database: inv.database, Name: inv.itemName},
		Limit: inv.limit, NoReceipts: inv.noReceipts,
	}, out.copy)
	return out.finish(listed, err)
}

// listOutput renders list's result as it streams.
type listOutput struct {
	inv     *invocation
	w       *bufio.Writer
	started bool
	n       int
	// authenticated: keys are pinned and receipts were read.
	authenticated bool
	tw            *tabwriter.Writer
	dest          string
	group         string
}

func (o *listOutput) start() {
	o.started = true
	if o.inv.jsonOut {
		fmt.Fprintf(o.w, "{\n  \"tool\": \"keyescrow\",\n  \"version\": %s,\n  \"command\": \"list\",\n  \"copies\": [", jsonString(o.inv.app.Build.Version))
	}
}

func (o *listOutput) copy(c escrow.Copy) error {
	if o.inv.jsonOut {
		doc, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if o.n > 0 {
			o.w.WriteByte(',')
		}
		o.w.WriteString("\n    ")
		o.w.Write(doc)
		o.n++
		return nil
	}
	if c.Destination != o.dest {
		o.flushTable()
		fmt.Fprintf(o.w, "%s (%s)\n", c.Destination, c.Type)
		o.dest, o.group = c.Destination, ""
	}
	if g := c.Host + "/" + c.Instance; g != o.group {
		o.flushTable()
		o.group = g
		o.tw = tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(o.tw, "  STORED\tHOST\tINSTANCE\tKIND\tITEM\tVERSION\tBYTES\tSHA256 (RECEIPT)\tRETAINED UNTIL\tLOCKED\tNOTE")
	}
	version, sum, until, locked := dash(c.VersionID), dash(c.SHA256), "-", "-"
	if c.Retention != nil {
		until = c.Retention.Mode + " " + c.Retention.Until.Format(time.RFC3339)
		locked = fmt.Sprint(c.RetentionInForce)
	}
	note := c.Note
	if !c.Current {
		note = strings.TrimPrefix(note+"; not the current version of its key", "; ")
	}
	fmt.Fprintf(o.tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", c.Time.Format(time.RFC3339), c.Host, c.Instance, c.Kind, dash(c.ItemName()), version, c.Bytes, sum, until, locked, note)
	o.n++
	return nil
}

func (o *listOutput) flushTable() {
	if o.tw != nil {
		o.tw.Flush()
		o.tw = nil
	}
}

func (o *listOutput) finish(listed []escrow.Listed, err error) error {
	code := exitcode.Code(err)
	status := "ok"
	if err != nil {
		status = "failed"
		o.inv.logFailure("list failed", err)
	} else {
		o.inv.log.Info("list done", "copies", o.n)
	}
	if listed == nil {
		listed = []escrow.Listed{}
	}
	if o.inv.jsonOut {
		if !o.started {
			o.start()
		}
		if o.n > 0 {
			o.w.WriteString("\n  ")
		}
		dests, _ := json.Marshal(listed)
		fmt.Fprintf(o.w, "],\n  \"destinations\": %s,\n  \"receipts_authenticated\": %t,\n  \"status\": %q,\n", dests, o.authenticated, status)
		if err != nil {
			e, _ := json.Marshal(receipt.Error{Code: code, Message: err.Error()})
			fmt.Fprintf(o.w, "  \"error\": %s,\n", e)
		}
		fmt.Fprintf(o.w, "  \"exit_code\": %d\n}\n", code)
		return errors.Join(err, o.w.Flush())
	}
	o.flushTable()
	for _, l := range listed {
		if l.Error != nil {
			fmt.Fprintf(o.w, "%s (%s): failed: error(%d): %s\n", l.Name, l.Type, l.Error.Code, l.Error.Message)
		}
	}
	if o.started {
		fmt.Fprintf(o.w, "%s: %s\n", status, copies(o.n))
	} else if err != nil {
		fmt.Fprintf(o.w, "failed: error(%d): %s\n", code, err.Error())
	}
	return errors.Join(err, o.w.Flush())
}

func copies(n int) string {
	if n == 1 {
		return "1 copy"
	}
	return fmt.Sprintf("%d copies", n)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// runVerify audits the archive for monitoring.
func (a *App) runVerify(ctx context.Context, inv *invocation) error {
	now := a.Clock().UTC()
	fail := func(err error) error {
		aud := &escrow.Audit{Status: escrow.AuditFailed, Tool: "keyescrow", Version: a.Build.Version, Command: "verify",
			StartedAt: now, FinishedAt: now, Destinations: []escrow.AuditedDest{},
			ExitCode: exitcode.Code(err), Error: &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}}
		return inv.reportAudit(aud, err)
	}
	if len(inv.args) > 0 {
		return fail(exitcode.Wrap(exitcode.Usage, fmt.Errorf("verify takes no arguments (got %q)", inv.args[0])))
	}
	if inv.allHosts && inv.host != "" {
		return fail(exitcode.Wrap(exitcode.Usage, errors.New("--all-hosts and --host both choose the hosts: pass one of them")))
	}
	if inv.copies < 0 {
		return fail(exitcode.Wrap(exitcode.Usage, fmt.Errorf("--copies %d: use a positive number", inv.copies)))
	}
	cfg, r, err := inv.setup()
	if err != nil {
		return fail(err)
	}
	ctx, cancel := inv.withRun(ctx)
	defer cancel()
	opts := escrow.VerifyOptions{Destination: inv.destination, Filter: escrow.Filter{Instance: inv.instance}, Copies: cfg.Verify.Copies, AllHosts: inv.allHosts}
	if inv.copies > 0 {
		opts.Copies = inv.copies
	}
	if !inv.allHosts {
		id, err := inv.hostIdentity()
		if err != nil {
			return fail(err)
		}
		opts.Filter.Host = id.Host
	}
	aud, err := r.Verify(ctx, opts)
	return inv.reportAudit(aud, err)
}

// reportAudit records the audit in the metrics and prints it.
func (inv *invocation) reportAudit(a *escrow.Audit, err error) error {
	if err != nil {
		inv.logFailure("verify failed", err)
	} else {
		inv.log.Info("verify ok: every destination holds a proven copy younger than max_age")
	}
	if inv.metricsFile != "" {
		rec, extra := auditMetrics(a)
		if merr := metrics.Write(inv.metricsFile, "verify", rec, extra...); merr != nil {
			inv.log.Error("the metrics file was not updated: monitoring will not see this run", "err", merr.Error())
		}
	}
	if inv.jsonOut {
		doc, jerr := json.MarshalIndent(a, "", "  ")
		if jerr != nil {
			return errors.Join(err, jerr)
		}
		_, werr := inv.stdout.Write(append(doc, '\n'))
		return errors.Join(err, werr)
	}
	_, werr := inv.stdout.Write([]byte(auditText(a)))
	return errors.Join(err, werr)
}

// auditMetrics maps an audit onto the metrics: the run, each destination's
// outcome, and per host/instance the newest proven copy and staleness.
func auditMetrics(a *escrow.Audit) (*receipt.Receipt, []metrics.Sample) {
	rec := &receipt.Receipt{Status: receipt.StatusOK, Version: a.Version, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt, ExitCode: a.ExitCode}
	if a.Status != escrow.AuditOK {
		rec.Status = receipt.StatusFailed
	}
	var extra []metrics.Sample
	missing := map[string]*metrics.Sample{} // item (lower case) → keyescrow_item_missing
	var missingOrder []string
	for _, d := range a.Destinations {
		rd := receipt.Destination{Name: d.Name, Type: d.Type, Status: receipt.DestVerified}
		code := 0
		if d.Error != nil {
			code = d.Error.Code
		}
		var checked, failed, forged, skippedN int
		var newest *time.Time
		for _, g := range d.Groups {
			for _, s := range g.Skipped {
				if s.Evidence {
					forged++
				} else {
					skippedN++
				}
			}
			if g.Error != nil && g.Error.Code > code {
				code = g.Error.Code
			}
			for _, c := range g.Checked {
				checked++
				if c.Status != receipt.DestVerified {
					failed++
				}
			}
			if g.Kind != receipt.KindServiceMasterKey {
				continue // the items' series follow
			}
			ts, stale := 0.0, 0.0
			if g.Newest != nil {
				ts = float64(g.Newest.UnixMilli()) / 1e3
				if newest == nil || g.Newest.After(*newest) {
					newest = g.Newest
				}
			}
			if g.Stale {
				stale = 1
			}
			labels := [][2]string{{"destination", d.Name}, {"host", g.Host}, {"instance", g.Instance}}
			extra = append(extra,
				metrics.Sample{Name: "keyescrow_copy_newest_timestamp_seconds", Labels: labels, Value: ts},
				metrics.Sample{Name: "keyescrow_copy_stale", Labels: labels, Value: stale})
		}
		extra = append(extra, itemMetrics(d, missing, &missingOrder)...)
		dl := [][2]string{{"destination", d.Name}}
		extra = append(extra,
			metrics.Sample{Name: "keyescrow_copies_checked", Labels: dl, Value: float64(checked)},
			metrics.Sample{Name: "keyescrow_copies_failed", Labels: dl, Value: float64(failed)},
			metrics.Sample{Name: "keyescrow_copies_forged", Labels: dl, Value: float64(forged)},
			metrics.Sample{Name: "keyescrow_copies_skipped", Labels: dl, Value: float64(skippedN)})
		if newest != nil && a.Mode == "host" {
			extra = append(extra, metrics.Sample{Name: "keyescrow_newest_verified_escrow_timestamp_seconds", Labels: dl, Value: float64(newest.UnixMilli()) / 1e3})
		}
		if code != 0 {
			rd.Status = receipt.DestFailed
			rd.Error = &receipt.Error{Code: code, Message: d.Status}
		}
		rec.Destinations = append(rec.Destinations, rd)
	}
	for _, k := range missingOrder {
		extra = append(extra, *missing[k])
	}
	return rec, extra
}

// itemMetrics are one destination's series of the hierarchy's items: the
// newest proven copy of every item group and every item of the inventory
// (0 without one), whether an inventory item is stale there, and (across
// destinations, in missing) whether it lacks a proven copy of its current
// key.
func itemMetrics(d escrow.AuditedDest, missing map[string]*metrics.Sample, order *[]string) []metrics.Sample {
	var out []metrics.Sample
	newest := map[string]int{} // item (lower case) → index in out
	id := func(host, instance, kind, database, name string) string {
		return strings.ToLower(strings.Join([]string{host, instance, kind, database, name}, "\x00"))
	}
	labels := func(host, instance, kind, database, name string) [][2]string {
		return [][2]string{{"destination", d.Name}, {"host", host}, {"instance", instance}, {"kind", kind}, {"database", database}, {"name", name}}
	}
	for _, it := range d.Items {
		ts := 0.0
		if it.Newest != nil {
			ts = float64(it.Newest.Time.UnixMilli()) / 1e3
		}
		k := id(it.Host, it.Instance, it.Kind, it.Database, it.Name)
		newest[k] = len(out)
		out = append(out, metrics.Sample{Name: "keyescrow_item_newest_timestamp_seconds", Labels: labels(it.Host, it.Instance, it.Kind, it.Database, it.Name), Value: ts})
		stale := 0.0
		if it.Status == escrow.ItemStale {
			stale = 1
		}
		out = append(out, metrics.Sample{Name: "keyescrow_item_stale", Labels: labels(it.Host, it.Instance, it.Kind, it.Database, it.Name), Value: stale})
		m := missing[k]
		if m == nil {
			tde := "false"
			if len(it.TDE) > 0 {
				tde = "true"
			}
			m = &metrics.Sample{Name: "keyescrow_item_missing", Labels: [][2]string{{"host", it.Host}, {"instance", it.Instance}, {"kind", it.Kind}, {"database", it.Database}, {"name", it.Name}, {"tde", tde}}}
			missing[k] = m
			*order = append(*order, k)
		}
		if it.Status == escrow.ItemMissing || it.Status == escrow.ItemOutdated {
			m.Value = 1
		}
	}
	for _, g := range d.Groups {
		if g.Kind == receipt.KindServiceMasterKey {
			continue
		}
		ts := 0.0
		if g.Newest != nil {
			ts = float64(g.Newest.UnixMilli()) / 1e3
		}
		k := id(g.Host, g.Instance, g.Kind, g.Database, g.Name)
		if i, ok := newest[k]; ok {
			// An item of the inventory: its newest copy of any key.
			out[i].Value = max(out[i].Value, ts)
			continue
		}
		newest[k] = len(out)
		out = append(out, metrics.Sample{Name: "keyescrow_item_newest_timestamp_seconds", Labels: labels(g.Host, g.Instance, g.Kind, g.Database, g.Name), Value: ts})
	}
	return out
}

// auditText renders an audit for people.
func auditText(a *escrow.Audit) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s verify mode=%s max_age=%s run=%s receipts-authenticated=%t\n", a.Status, a.Mode, a.MaxAge, a.RunID, a.ReceiptsAuthenticated)
	for _, d := range a.Destinations {
		fmt.Fprintf(&b, "  %s (%s): %s\n", d.Name, d.Type, d.Status)
		for _, g := range d.Groups {
			what := g.Kind
			switch g.Kind {
			case receipt.KindDatabaseMasterKey:
				what += " " + g.Database
			case receipt.KindCertificate:
				what += " " + g.Database + "/" + g.Name
			}
			fmt.Fprintf(&b, "    %s/%s %s: %s, %s", g.Host, g.Instance, what, g.Status, copies(g.Copies))
			if g.Newest != nil {
				fmt.Fprintf(&b, ", newest proven %s (%s old)", g.Newest.Format(time.RFC3339), (time.Duration(g.NewestAgeSeconds) * time.Second).String())
			} else {
				b.WriteString(", no proven copy")
			}
			if g.MaxAge != "" {
				fmt.Fprintf(&b, ", age limit %s", g.MaxAge)
			}
			if inv := g.Inventory; inv != nil {
				fmt.Fprintf(&b, ", inventory of run %s: %d items", inv.RunID, inv.Items)
			}
			b.WriteByte('\n')
			for _, c := range g.Checked {
				fmt.Fprintf(&b, "      %s %s version=%s stored=%s", c.Status, c.Location, dash(c.VersionID), c.Time.Format(time.RFC3339))
				if c.Checksum.Match {
					fmt.Fprintf(&b, " sha256=%s read-back=%t", c.Checksum.Local, c.ReadBack)
				}
				if c.Retention != nil {
					fmt.Fprintf(&b, " retention=%s until %s locked=%t", c.Retention.Mode, c.Retention.Until.Format(time.RFC3339), c.RetentionInForce)
				}
				if c.Error != nil {
					fmt.Fprintf(&b, " error(%d): %s", c.Error.Code, c.Error.Message)
				}
				b.WriteByte('\n')
			}
			for _, s := range g.Skipped {
				if s.Evidence {
					fmt.Fprintf(&b, "      %s(6): %s\n", s.Reason, s.Message)
				}
			}
			for _, w := range g.Warnings {
				fmt.Fprintf(&b, "      warning: %s\n", w)
			}
			if g.Error != nil && g.Error.Code == exitcode.Stale {
				fmt.Fprintf(&b, "      stale(8): %s\n", g.Error.Message)
			}
		}
		for _, it := range d.Items {
			fmt.Fprintf(&b, "    item %s/%s %s", it.Host, it.Instance, it.Label())
			if len(it.TDE) > 0 {
				fmt.Fprintf(&b, " (protects TDE %s)", strings.Join(it.TDE, ", "))
			}
			fmt.Fprintf(&b, ": %s", it.Status)
			if it.Newest != nil {
				fmt.Fprintf(&b, ", newest proven %s (%s old) run=%s", it.Newest.Time.Format(time.RFC3339), (time.Duration(it.NewestAgeSeconds) * time.Second).String(), it.Newest.RunID)
			} else {
				b.WriteString(", no proven copy")
			}
			if it.Error != nil && it.Status != escrow.ItemFailed {
				fmt.Fprintf(&b, "\n      %s(%d): %s", it.Status, it.Error.Code, it.Error.Message)
			}
			b.WriteByte('\n')
		}
		if d.Error != nil {
			fmt.Fprintf(&b, "    error(%d): %s\n", d.Error.Code, d.Error.Message)
		}
	}
	if a.Error != nil {
		fmt.Fprintf(&b, "  error(%d): %s\n", a.Error.Code, a.Error.Message)
	}
	return b.String()
}

package escrow

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// VerifyOptions select what `keyescrow verify` audits.
type VerifyOptions struct {
	Destination string // "" = every destination
	// Filter is the host (required unless AllHosts) and instance ("" = every
	// instance of the host).
	Filter Filter
	// Copies: how many of the newest copies per host/instance are read
	// back and re-hashed.
	Copies int
	// AllHosts: fleet mode. Every host/instance under each prefix is
	// reported with the age of its newest proven copy (from the listing:
	// a receipt is stored only beside a proven copy); nothing is
	// downloaded.
	AllHosts bool
}

// Audit is the result of `keyescrow verify`.
type Audit struct {
	Status       string        `json:"status"` // ok, stale, failed
	Tool         string        `json:"tool"`
	Version      string        `json:"version"`
	RunID        string        `json:"run_id"`
	Command      string        `json:"command"`
	Mode         string        `json:"mode"` // host, all-hosts
	StartedAt    time.Time     `json:"started_at"`
	FinishedAt   time.Time     `json:"finished_at"`
	MaxAge       string        `json:"max_age"`
	Destinations []AuditedDest `json:"destinations"`
	// ReceiptsAuthenticated: trust.public_keys is set, so only copies whose
	// receipt a pinned key signed were counted. False: receipts were taken
	// as they are (anyone with write access to a destination can forge
	// one); a warning says so.
	ReceiptsAuthenticated bool           `json:"receipts_authenticated"`
	Error                 *receipt.Error `json:"error,omitempty"`
	ExitCode              int            `json:"exit_code"`
}

// AuditedDest is one destination's audit.
type AuditedDest struct {
	Name   string         `json:"name"`
	Type   string         `json:"type"`
	Status string         `json:"status"` // ok, stale, failed
	Groups []AuditedGroup `json:"groups"`
	// Items are the hierarchy items the newest inventory lists (the one
	// recorded in the service master key's newest genuine receipt), each
	// with its newest proven copy here. Extension.
	Items []AuditedItem  `json:"items,omitempty"`
	Error *receipt.Error `json:"error,omitempty"`
}

// AuditedGroup is one host/instance (and kind) at a destination.
type AuditedGroup struct {
	Host     string `json:"host"`
	Instance string `json:"instance"`
	Kind     string `json:"kind"`
	// Database and Name name a hierarchy item's group (its database; a
	// certificate's name, receipt.MasterKeyName for a database master
	// key), decoded from its folders; empty for the service master key.
	// Extension.
	Database string `json:"database,omitempty"`
	Name     string `json:"name,omitempty"`
	Copies   int    `json:"copies"` // every copy listed
	// Newest is when the newest proven copy was stored (nil: none).
	Newest *time.Time `json:"newest"`
	// NewestAgeSeconds is the age of Newest at the audit.
	NewestAgeSeconds float64       `json:"newest_age_seconds"`
	Stale            bool          `json:"stale"`
	Status           string        `json:"status"` // ok, stale, failed
	Checked          []CheckedCopy `json:"checked"`
	// Skipped are the copies not counted (no receipt, not genuine, not
	// authenticated) and the receipt versions and delete markers found;
	// those with evidence true fail the audit (exit 6).
	Skipped []receipt.Skipped `json:"skipped,omitempty"`
	// MaxAge is the age limit the group was judged by when it is not
	// max_age: hierarchy.refresh + max_age for an item of the inventory;
	// "none" for an item no inventory lists (its copies are still proven,
	// their age is not judged). Extension.
	MaxAge string `json:"max_age,omitempty"`
	// Inventory is where the items checked come from: the newest genuine
	// receipt of this service master key group. Extension.
	Inventory *InventorySource `json:"inventory,omitempty"`
	Warnings  []string         `json:"warnings,omitempty"`
	Error     *receipt.Error   `json:"error,omitempty"`

	// lapsed: an item group's newest proven copy is no longer locked (the
	// message); judgeItems decides whether that fails.
	lapsed string
}

// CheckedCopy is one copy read back and re-hashed.
type CheckedCopy struct {
	Key       string    `json:"key"`
	Location  string    `json:"location"`
	VersionID string    `json:"version_id"`
	Time      time.Time `json:"time"`
	Bytes     int64     `json:"bytes"`
	// Checksum: Local is the SHA-256 its receipt records, Remote the
	// service's stored checksum; Match when both equal each other and the
	// bytes read back.
	Checksum         receipt.Checksum   `json:"checksum"`
	ReadBack         bool               `json:"read_back"`
	Retention        *receipt.Retention `json:"retention"`
	RetentionInForce bool               `json:"retention_in_force"`
	Status           string             `json:"status"` // verified, failed
	Error            *receipt.Error     `json:"error,omitempty"`
	// RunID is the run that wrote the copy, as its receipt records it.
	RunID string `json:"run_id,omitempty"`
	// Authenticated: its receipt is signed by the pinned key KeyID.
	Authenticated bool   `json:"authenticated"`
	KeyID         string `json:"key_id,omitempty"`

	data       []byte // the bytes read back (restore keeps them)
	privateKey []byte // a certificate's .pvk read back and proven
	rec        *receipt.Receipt
	err        error // the failure, with its sentinels
}

// junkWindow is how many copies beyond verify's --copies are kept per
// group, so that newer copies that are not genuine cannot push the genuine
// ones out of the audit.
const junkWindow = 16

// Audit statuses.
const (
	AuditOK     = "ok"
	AuditStale  = "stale"
	AuditFailed = "failed"
)

// Verify audits the archive: for each destination, the newest proven copy
// of the host/instance is younger than max_age (else exit 8), and the
// newest Copies copies are read back by version id and re-hashed against
// the service's checksum and their receipt (else exit 6); the newest copy's
// lock must still run. The Audit is returned even when err is not nil.
func (r *Runner) Verify(ctx context.Context, opts VerifyOptions) (*Audit, error) {
	a := &Audit{Tool: "keyescrow", Version: r.Version, RunID: r.RunID, Command: "verify", Mode: "host",
		StartedAt: r.Clock().UTC(), MaxAge: r.Config.MaxAge.String(), Destinations: []AuditedDest{}}
	if opts.AllHosts {
		a.Mode = "all-hosts"
	}
	a.ReceiptsAuthenticated = len(r.Trust) > 0 && !opts.AllHosts
	r.warnUnauthenticated(ctx, opts.AllHosts)
	err := r.verify(ctx, a, opts)
	a.FinishedAt = r.Clock().UTC()
	a.ExitCode = exitcode.Code(err)
	switch {
	case err == nil:
		a.Status = AuditOK
	case a.ExitCode == exitcode.Stale:
		a.Status = AuditStale
	default:
		a.Status = AuditFailed
	}
	if err != nil && !auditExplains(a) {
		a.Error = &receipt.Error{Code: a.ExitCode, Message: err.Error()}
	}
	return a, err
}

func (r *Runner) verify(ctx context.Context, a *Audit, opts VerifyOptions) error {
	if !opts.AllHosts && opts.Filter.Host == "" {
		return exitcode.Wrap(exitcode.Usage, errors.New("verify needs the host to audit: pass --host NAME, or --all-hosts for every host under the prefix"))
	}
	if opts.Copies < 1 {
		opts.Copies = 1
	}
	dests, err := r.selectDestinations(opts.Destination)
	if err != nil {
		return err
	}
	results := make([]AuditedDest, len(dests))
	errs := make([]error, len(dests))
	var wg sync.WaitGroup
	for i, d := range dests {
		wg.Go(func() { results[i], errs[i] = r.verifyDestination(ctx, d, opts) })
	}
	wg.Wait()
	a.Destinations = results
	return errors.Join(append(errs, agree(a))...)
}

// agree checks that the destinations holding copies of one run's file
// (same name) record the same run, size and SHA-256: exit 6 when not.
func agree(a *Audit) error {
	type seen struct {
		dest, runID, sum string
		bytes            int64
	}
	first := map[string]seen{}
	var errs []error
	for _, d := range a.Destinations {
		for _, g := range d.Groups {
			for _, cc := range g.Checked {
				if cc.Status != receipt.DestVerified || cc.rec == nil {
					continue
				}
				name := cc.rec.File.Name
				s := seen{d.Name, cc.rec.RunID, cc.Checksum.Local, cc.rec.File.Bytes}
				f, ok := first[name]
				if !ok {
					first[name] = s
					continue
				}
				if f.runID != s.runID || f.sum != s.sum || f.bytes != s.bytes {
					errs = append(errs, exitcode.Wrap(exitcode.Verify, fmt.Errorf(
						"the copies of %s disagree: at %s run %s, %d bytes, SHA-256 %s; at %s run %s, %d bytes, SHA-256 %s: one of them is not the run's",
						name, f.dest, f.runID, f.bytes, f.sum, s.dest, s.runID, s.bytes, s.sum)))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// warnUnauthenticated says loudly that receipts are taken on trust when no
// signing key is pinned (or in fleet mode, which reads no receipt).
func (r *Runner) warnUnauthenticated(ctx context.Context, fleet bool) {
	switch {
	case len(r.Trust) == 0:
		r.Log.WarnContext(ctx, "receipts are not authenticated: trust.public_keys is not set, so anyone who can write to a destination can add a copy with a receipt that is counted; see docs/security.md (keyescrow init-key)")
	case fleet:
		r.Log.WarnContext(ctx, "--all-hosts reads no receipt, so the ages it reports are not authenticated; verify each host with --host for that")
	}
}

func (r *Runner) verifyDestination(ctx context.Context, d Destination, opts VerifyOptions) (AuditedDest, error) {
	out := AuditedDest{Name: d.Config.Name, Type: d.Backend.Type(), Groups: []AuditedGroup{}}
	now := r.Clock()
	maxAge := time.Duration(r.Config.MaxAge)
	var errs []error
	// judge records a group: its own failures, and unless limit is 0 its
	// age against limit (limitText names the limit in the message).
	judge := func(g AuditedGroup, err error, limit time.Duration, limitText string) {
		if g.Newest != nil {
			g.NewestAgeSeconds = now.Sub(*g.Newest).Seconds()
		}
		if limit > 0 && (g.Newest == nil || now.Sub(*g.Newest) > limit) {
			g.Stale = true
			msg := fmt.Sprintf("%s: host %s instance %s: no proven copy younger than %s", d.Config.Name, g.Host, g.Instance, limitText)
			if g.Kind != receipt.KindServiceMasterKey {
				msg = fmt.Sprintf("%s: host %s instance %s: %s has no proven copy younger than %s", d.Config.Name, g.Host, g.Instance, groupLabel(g), limitText)
			}
			if g.Newest != nil {
				msg += fmt.Sprintf(" (the newest is from %s, %s old)", g.Newest.Format(time.RFC3339), now.Sub(*g.Newest).Round(time.Minute))
			}
			err = errors.Join(err, exitcode.Wrap(exitcode.Stale, errors.New(msg)))
		}
		g.Status = AuditOK
		if err != nil {
			g.Error = &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}
			g.Status = AuditFailed
			if g.Error.Code == exitcode.Stale {
				g.Status = AuditStale
			}
			errs = append(errs, err)
		}
		out.Groups = append(out.Groups, g)
	}
	smkLimit := "max_age " + r.Config.MaxAge.String()

	var werr error
	if opts.AllHosts {
		_, werr = walk(ctx, d, d.Config.Prefix, opts.Filter, 1, func(g *group) error {
			ag := newAuditedGroup(g)
			if !g.NewestReceipt.IsZero() {
				t := g.NewestReceipt.UTC()
				ag.Newest = &t
			}
			if ag.Kind != receipt.KindServiceMasterKey {
				// Fleet mode reads no receipt, so it knows no inventory:
				// an item's age is reported, not judged.
				ag.MaxAge = "none"
				judge(ag, nil, 0, "")
				return nil
			}
			judge(ag, nil, maxAge, smkLimit)
			return nil
		})
	} else {
		// Copies that are not genuine are passed over, so a few more than
		// asked are kept: junk versions cannot hide the genuine ones.
		// Every group is audited first; the items are judged once the
		// service master key's inventory is known (its folder sorts after
		// the items').
		var audited []auditedPending
		_, werr = walkHost(ctx, d, opts.Filter, opts.Copies+junkWindow, func(g *group) error {
			ag, err := r.auditGroup(ctx, d, g, opts.Copies, now)
			audited = append(audited, auditedPending{ag, err})
			return nil
		})
		smk := map[string]bool{} // instances (folders) with a service master key group
		for _, p := range audited {
			if p.ag.Kind == receipt.KindServiceMasterKey {
				smk[p.ag.Host+"/"+p.ag.Instance] = true
			}
		}
		var items []auditedPending
		for _, p := range audited {
			if p.ag.Kind != receipt.KindServiceMasterKey {
				items = append(items, p)
				continue
			}
			judge(p.ag, p.err, maxAge, smkLimit)
		}
		if werr == nil {
			// An instance with item copies but no service master key copy
			// still fails: the service master key is the root.
			for _, p := range items {
				if k := p.ag.Host + "/" + p.ag.Instance; !smk[k] {
					smk[k] = true
					judge(AuditedGroup{Host: p.ag.Host, Instance: p.ag.Instance, Kind: receipt.KindServiceMasterKey, Checked: []CheckedCopy{}}, nil, maxAge, smkLimit)
				}
			}
		}
		if werr == nil && len(out.Groups) == 0 {
			inst := opts.Filter.Instance
			if inst == "" {
				inst = "*"
			}
			judge(AuditedGroup{Host: opts.Filter.Host, Instance: inst, Kind: receipt.KindServiceMasterKey, Checked: []CheckedCopy{}}, nil, maxAge, smkLimit)
		}
		itemErr := r.judgeItems(ctx, d, &out, items, now, judge)
		errs = append(errs, itemErr)
	}
	if werr != nil {
		werr = listError(d, werr)
		out.Error = &receipt.Error{Code: exitcode.Code(werr), Message: werr.Error()}
		errs = append(errs, werr)
	}
	err := errors.Join(errs...)
	out.Status = AuditOK
	switch code := exitcode.Code(err); {
	case err == nil:
	case code == exitcode.Stale:
		out.Status = AuditStale
	default:
		out.Status = AuditFailed
	}
	for _, g := range out.Groups {
		r.logGroup(ctx, d, g)
	}
	for _, it := range out.Items {
		r.logItem(ctx, d, it)
	}
	return out, err
}

// newAuditedGroup is the audit of a listed group before it is judged.
func newAuditedGroup(g *group) AuditedGroup {
	ag := AuditedGroup{Host: g.Host, Instance: g.Instance, Kind: g.Kind, Copies: g.Total, Checked: []CheckedCopy{}}
	if kindDepth(g.Kind) > 0 {
		ag.Database = folderName(g.Database)
		ag.Name = receipt.MasterKeyName
		if g.Kind == receipt.KindCertificate {
			ag.Name = folderName(g.Item)
		}
	}
	return ag
}

func (r *Runner) logGroup(ctx context.Context, d Destination, g AuditedGroup) {
	args := []any{"destination", d.Config.Name, "host", g.Host, "instance", g.Instance}
	if g.Kind != receipt.KindServiceMasterKey {
		args = append(args, "kind", g.Kind, "database", g.Database, "name", g.Name)
	}
	args = append(args, "copies", g.Copies, "checked", len(g.Checked))
	if g.Newest != nil {
		args = append(args, "newest", g.Newest.Format(time.RFC3339), "age", time.Duration(g.NewestAgeSeconds*float64(time.Second)).Round(time.Second).String())
	}
	for _, w := range g.Warnings {
		r.Log.WarnContext(ctx, w, "destination", d.Config.Name, "host", g.Host, "instance", g.Instance)
	}
	if g.Error != nil {
		r.Log.ErrorContext(ctx, "audit failed", append(args, "err", g.Error.Message)...)
		return
	}
	r.Log.InfoContext(ctx, "audit ok", args...)
}

// auditGroup judges the group's newest copies (newest first), reads back
// the newest opts.Copies genuine ones and judges them; Newest is the newest
// that verified. Copies that are not genuine are reported, not counted: as
// a warning when a run may simply not have finished (no receipt) or when an
// unsigned copy is older than the newest authenticated one, as evidence of
// tampering (exit 6) otherwise.
func (r *Runner) auditGroup(ctx context.Context, d Destination, g *group, copies int, now time.Time) (AuditedGroup, error) {
	ag := newAuditedGroup(g)
	// Judge newest first, a batch at a time, until enough genuine copies
	// are found: each judgement reads a receipt.
	js := make([]judged, len(g.Copies))
	n := 0
	for found := 0; n < len(js) && found < copies; {
		batch := min(copies-found, len(js)-n)
		r.each(batch, func(k int) { js[n+k] = r.judge(ctx, d, g.Copies[n+k]) })
		for _, j := range js[n : n+batch] {
			if j.skip == nil {
				found++
			}
		}
		n += batch
	}
	js = js[:n]

	var errs []error
	var pick []int
	genuineSeen := false
	reported := map[string]bool{}
	for i, j := range js {
		for _, f := range j.findings {
			// Every version of a key shares its receipt: report once.
			if id := f.Reason + " " + f.Location + " " + f.VersionID; !reported[id] {
				reported[id] = true
				ag.Skipped = append(ag.Skipped, f)
				if f.Evidence {
					errs = append(errs, exitcode.Wrap(exitcode.Verify, fmt.Errorf("%s: %s", d.Config.Name, f.Message)))
				}
			}
		}
		if j.skip != nil {
			sk := *j.skip
			if sk.Reason == receipt.SkipUnauthenticated && !genuineSeen && r.hasGenuineAfter(js[i+1:]) {
				// Newer than every authenticated copy: what a forger would
				// leave, and what a reader not checking signatures would
				// take as the newest key.
				sk.Evidence = true
				sk.Message += "; it is newer than the newest authenticated copy"
			}
			ag.Skipped = append(ag.Skipped, sk)
			if sk.Evidence {
				errs = append(errs, exitcode.Wrap(exitcode.Verify, fmt.Errorf("%s: %s", d.Config.Name, sk.Message)))
			}
			continue
		}
		genuineSeen = true
		if len(pick) < copies {
			pick = append(pick, i)
		}
	}
	ag.Checked = make([]CheckedCopy, len(pick))
	r.each(len(pick), func(k int) { ag.Checked[k] = r.checkContent(ctx, d, js[pick[k]], now, false) })
	for i, cc := range ag.Checked {
		if cc.Status == receipt.DestVerified {
			if ag.Newest == nil {
				t := cc.Time
				ag.Newest = &t
			}
		} else {
			errs = append(errs, cc.err)
		}
		if cc.Status != receipt.DestVerified || cc.RetentionInForce || !lockExpected(r.Config, d.Config) {
			continue
		}
		msg := fmt.Sprintf("the copy %s (version %s) is no longer locked", cc.Location, cc.VersionID)
		if cc.Retention != nil {
			msg += fmt.Sprintf(": its retention ended %s", cc.Retention.Until.Format(time.RFC3339))
		}
		switch {
		case i == 0 && kindDepth(g.Kind) > 0:
			// An item's newest copy must be locked while an inventory
			// lists it; once it is dropped its copies age out. Decided
			// when the inventory is known (judgeItems).
			ag.lapsed = msg
		case i == 0:
			// The newest copy must be locked: otherwise no copy of the key
			// is protected from deletion.
			errs = append(errs, exitcode.Wrap(exitcode.Verify, fmt.Errorf("%s: %s", d.Config.Name, msg)))
			ag.Checked[i].Status = receipt.DestFailed
			ag.Checked[i].Error = &receipt.Error{Code: exitcode.Verify, Message: msg}
		default:
			ag.Warnings = append(ag.Warnings, msg)
		}
	}
	for _, sk := range ag.Skipped {
		if !sk.Evidence {
			ag.Warnings = append(ag.Warnings, sk.Message)
		}
	}
	return ag, errors.Join(errs...)
}

// hasGenuineAfter reports whether an older copy is authenticated.
func (r *Runner) hasGenuineAfter(older []judged) bool {
	return slices.ContainsFunc(older, func(j judged) bool { return j.skip == nil && j.err == nil && j.sr != nil && j.sr.authenticated })
}

// each runs fn(0..n-1) on at most receiptReaders goroutines.
func (r *Runner) each(n int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(receiptReaders, n) {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// lockExpected: the destination is configured to lock every copy, and
// immutability is not waived.
func lockExpected(cfg *config.Config, d config.Destination) bool {
	return d.Retention != nil && !cfg.Waived(config.WaiveImmutability)
}

// checkContent proves a judged copy: the service's stored checksum and size
// equal its receipt's; the bytes read back by version id hash the same. It
// also reads the retention the service reports. A copy judged not genuine
// fails, unless sigOK allows a copy whose only fault is its signature (an
// explicit --version-id).
func (r *Runner) checkContent(ctx context.Context, d Destination, j judged, now time.Time, sigOK bool) CheckedCopy {
	c := j.c
	cc := CheckedCopy{Key: c.Key, Location: c.Location, VersionID: c.VersionID, Time: c.Time, Bytes: c.Bytes, RunID: c.RunID,
		Status: receipt.DestFailed, Checksum: receipt.Checksum{Algorithm: receipt.ChecksumSHA256}}
	t := target{name: d.Config.Name, backend: d.Backend}
	failWith := func(err error) CheckedCopy {
		cc.err = err
		cc.Error = &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}
		return cc
	}
	switch {
	case j.err != nil:
		return failWith(transferError("read the receipt of", t, c.Key, j.err))
	case j.skip != nil && !(sigOK && j.sigOnly):
		return failWith(verifyError(t, j.skip.Message))
	}
	rec := j.sr.rec
	cc.rec = rec
	cc.Authenticated, cc.KeyID = j.sr.authenticated, j.sr.keyID
	cc.Checksum.Local = rec.File.SHA256
	st, err := d.Backend.Stat(ctx, c.Key, c.VersionID)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return failWith(verifyErrorf(t, "%s version %q was listed but cannot be found: %w", c.Location, c.VersionID, err))
		}
		return failWith(transferError("read the properties of", t, c.Key, err))
	}
	if st.Retention != nil {
		cc.Retention = &receipt.Retention{Mode: st.Retention.Mode, Until: st.Retention.Until.UTC()}
		cc.RetentionInForce = st.Retention.Until.After(now)
	}
	if st.SHA256 != nil {
		cc.Checksum.Remote = hex.EncodeToString(st.SHA256)
	}
	switch {
	case st.SHA256 == nil:
		return failWith(verifyError(t, fmt.Sprintf("%s: the service reports no SHA-256 for version %q", c.Location, c.VersionID)))
	case cc.Checksum.Remote != cc.Checksum.Local:
		return failWith(verifyError(t, fmt.Sprintf("%s version %q: the service's SHA-256 %s differs from the %s its receipt records: the stored copy is corrupted or was replaced", c.Location, c.VersionID, cc.Checksum.Remote, cc.Checksum.Local)))
	case st.Size != rec.File.Bytes:
		return failWith(verifyError(t, fmt.Sprintf("%s version %q has %d bytes, its receipt records %d", c.Location, c.VersionID, st.Size, rec.File.Bytes)))
	}
	data, err := download(ctx, d.Backend, c.Key, c.VersionID, rec.File.Bytes)
	if err != nil {
		return failWith(transferError("read back", t, c.Key, err))
	}
	cc.ReadBack = true
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); int64(len(data)) != rec.File.Bytes || got != cc.Checksum.Local {
		return failWith(verifyError(t, fmt.Sprintf("%s version %q: the bytes read back (%d, SHA-256 %s) differ from its receipt's and the service's checksum %s: the stored copy is corrupted", c.Location, c.VersionID, len(data), got, cc.Checksum.Local)))
	}
	if st.MD5 != nil {
		if m := md5.Sum(data); !bytes.Equal(st.MD5, m[:]) {
			return failWith(verifyError(t, fmt.Sprintf("%s version %q: the bytes read back differ from the service's stored MD5: the stored copy is corrupted", c.Location, c.VersionID)))
		}
	}
	if _, _, err := fetchSealed(ctx, d, c, rec); err != nil {
		return failWith(err)
	}
	pvk, err := fetchPrivateKey(ctx, d, c, rec)
	if err != nil {
		return failWith(err)
	}
	cc.privateKey = pvk
	cc.Checksum.Match = true
	cc.Status = receipt.DestVerified
	cc.data = data
	return cc
}

// isTransfer reports a failed request (as opposed to bad content).
func isTransfer(err error) bool {
	return slices.ContainsFunc([]error{storage.ErrAuth, storage.ErrPermission, storage.ErrUnavailable, storage.ErrInvalid, context.Canceled, context.DeadlineExceeded}, func(e error) bool { return errors.Is(err, e) })
}

// auditExplains: the destinations' own errors describe the failure.
func auditExplains(a *Audit) bool {
	worst := 0
	for _, d := range a.Destinations {
		if d.Error != nil && d.Error.Code > worst {
			worst = d.Error.Code
		}
		for _, g := range d.Groups {
			if g.Error != nil && g.Error.Code > worst {
				worst = g.Error.Code
			}
		}
		for _, it := range d.Items {
			if it.Error != nil && it.Error.Code > worst {
				worst = it.Error.Code
			}
		}
	}
	return len(a.Destinations) > 0 && worst == a.ExitCode
}

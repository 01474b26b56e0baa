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
	Status       string         `json:"status"` // ok, stale, failed
	Tool         string         `json:"tool"`
	Version      string         `json:"version"`
	RunID        string         `json:"run_id"`
	Command      string         `json:"command"`
	Mode         string         `json:"mode"` // host, all-hosts
	StartedAt    time.Time      `json:"started_at"`
	FinishedAt   time.Time      `json:"finished_at"`
	MaxAge       string         `json:"max_age"`
	Destinations []AuditedDest  `json:"destinations"`
	Error        *receipt.Error `json:"error,omitempty"`
	ExitCode     int            `json:"exit_code"`
}

// AuditedDest is one destination's audit.
type AuditedDest struct {
	Name   string         `json:"name"`
	Type   string         `json:"type"`
	Status string         `json:"status"` // ok, stale, failed
	Groups []AuditedGroup `json:"groups"`
	Error  *receipt.Error `json:"error,omitempty"`
}

// AuditedGroup is one host/instance (and kind) at a destination.
type AuditedGroup struct {
	Host     string `json:"host"`
	Instance string `json:"instance"`
	Kind     string `json:"kind"`
	Copies   int    `json:"copies"` // every copy listed
	// Newest is when the newest proven copy was stored (nil: none).
	Newest *time.Time `json:"newest"`
	// NewestAgeSeconds is the age of Newest at the audit.
	NewestAgeSeconds float64        `json:"newest_age_seconds"`
	Stale            bool           `json:"stale"`
	Status           string         `json:"status"` // ok, stale, failed
	Checked          []CheckedCopy  `json:"checked"`
	Warnings         []string       `json:"warnings,omitempty"`
	Error            *receipt.Error `json:"error,omitempty"`
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

	data []byte // the bytes read back (restore keeps them)
	rec  *receipt.Receipt
}

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
	return errors.Join(errs...)
}

func (r *Runner) verifyDestination(ctx context.Context, d Destination, opts VerifyOptions) (AuditedDest, error) {
	out := AuditedDest{Name: d.Config.Name, Type: d.Backend.Type(), Groups: []AuditedGroup{}}
	now := r.Clock()
	maxAge := time.Duration(r.Config.MaxAge)
	var errs []error
	judge := func(g AuditedGroup, err error) {
		if g.Newest != nil {
			g.NewestAgeSeconds = now.Sub(*g.Newest).Seconds()
		}
		if g.Newest == nil || now.Sub(*g.Newest) > maxAge {
			g.Stale = true
			msg := fmt.Sprintf("%s: host %s instance %s: no proven copy younger than max_age %s", d.Config.Name, g.Host, g.Instance, r.Config.MaxAge)
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

	var werr error
	if opts.AllHosts {
		_, werr = walk(ctx, d, d.Config.Prefix, opts.Filter, 1, func(g *group) error {
			ag := AuditedGroup{Host: g.Host, Instance: g.Instance, Kind: g.Kind, Copies: g.Total, Checked: []CheckedCopy{}}
			if !g.NewestReceipt.IsZero() {
				t := g.NewestReceipt.UTC()
				ag.Newest = &t
			}
			judge(ag, nil)
			return nil
		})
	} else {
		_, werr = walkHost(ctx, d, opts.Filter, opts.Copies, func(g *group) error {
			ag, err := r.auditGroup(ctx, d, g, now)
			judge(ag, err)
			return nil
		})
		if werr == nil && len(out.Groups) == 0 {
			inst := opts.Filter.Instance
			if inst == "" {
				inst = "*"
			}
			judge(AuditedGroup{Host: opts.Filter.Host, Instance: inst, Kind: receipt.KindServiceMasterKey, Checked: []CheckedCopy{}}, nil)
		}
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
	return out, err
}

func (r *Runner) logGroup(ctx context.Context, d Destination, g AuditedGroup) {
	args := []any{"destination", d.Config.Name, "host", g.Host, "instance", g.Instance, "copies", g.Copies, "checked", len(g.Checked)}
	if g.Newest != nil {
		args = append(args, "newest", g.Newest.Format(time.RFC3339), "age", time.Duration(g.NewestAgeSeconds*float64(time.Second)).Round(time.Second).String())
	}
	if g.Error != nil {
		r.Log.ErrorContext(ctx, "audit failed", append(args, "err", g.Error.Message)...)
		return
	}
	r.Log.InfoContext(ctx, "audit ok", args...)
}

// auditGroup reads back the group's newest copies (newest first) and
// judges them; Newest is the newest that verified.
func (r *Runner) auditGroup(ctx context.Context, d Destination, g *group, now time.Time) (AuditedGroup, error) {
	ag := AuditedGroup{Host: g.Host, Instance: g.Instance, Kind: g.Kind, Copies: g.Total, Checked: make([]CheckedCopy, len(g.Copies))}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(receiptReaders, len(g.Copies)) {
		wg.Go(func() {
			for i := range next {
				ag.Checked[i] = r.checkCopy(ctx, d, g.Copies[i], now)
			}
		})
	}
	for i := range g.Copies {
		next <- i
	}
	close(next)
	wg.Wait()
	var errs []error
	for i, cc := range ag.Checked {
		if cc.Status == receipt.DestVerified {
			if ag.Newest == nil {
				t := cc.Time
				ag.Newest = &t
			}
		} else {
			errs = append(errs, exitcode.Wrap(cc.Error.Code, errors.New(cc.Error.Message)))
		}
		if cc.Status != receipt.DestVerified || cc.RetentionInForce || !lockExpected(r.Config, d.Config) {
			continue
		}
		msg := fmt.Sprintf("the copy %s (version %s) is no longer locked", cc.Location, cc.VersionID)
		if cc.Retention != nil {
			msg += fmt.Sprintf(": its retention ended %s", cc.Retention.Until.Format(time.RFC3339))
		}
		if i == 0 {
			// The newest copy must be locked: otherwise no copy of the key
			// is protected from deletion.
			errs = append(errs, exitcode.Wrap(exitcode.Verify, fmt.Errorf("%s: %s", d.Config.Name, msg)))
			ag.Checked[i].Status = receipt.DestFailed
			ag.Checked[i].Error = &receipt.Error{Code: exitcode.Verify, Message: msg}
		} else {
			ag.Warnings = append(ag.Warnings, msg)
		}
	}
	return ag, errors.Join(errs...)
}

// lockExpected: the destination is configured to lock every copy, and
// immutability is not waived.
func lockExpected(cfg *config.Config, d config.Destination) bool {
	return d.Retention != nil && !cfg.Waived(config.WaiveImmutability)
}

// checkCopy proves one stored copy: its receipt names this version and a
// SHA-256; the service's stored checksum and size equal the receipt's; the
// bytes read back by version id hash the same. It also reads the
// retention the service reports.
func (r *Runner) checkCopy(ctx context.Context, d Destination, c Copy, now time.Time) CheckedCopy {
	cc := CheckedCopy{Key: c.Key, Location: c.Location, VersionID: c.VersionID, Time: c.Time, Bytes: c.Bytes,
		Status: receipt.DestFailed, Checksum: receipt.Checksum{Algorithm: receipt.ChecksumSHA256}}
	t := target{name: d.Config.Name, backend: d.Backend}
	failWith := func(err error) CheckedCopy {
		cc.Error = &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}
		return cc
	}
	if !c.Receipt {
		return failWith(verifyError(t, fmt.Sprintf("%s: no receipt is stored beside this copy, so nothing says what it should hold (the run that wrote it did not finish proving it)", c.Location)))
	}
	rec, err := loadReceipt(ctx, d.Backend, c)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) || !isTransfer(err) {
			return failWith(verifyError(t, fmt.Sprintf("%s: its receipt cannot be used: %v", c.Location, err)))
		}
		return failWith(transferError("read the receipt of", t, c.Key, err))
	}
	cc.rec = rec
	cc.Checksum.Local = rec.File.SHA256
	if e := receiptEntry(rec, c); e == nil || e.VersionID != c.VersionID {
		return failWith(verifyError(t, fmt.Sprintf("%s version %q is not the version its receipt records: it was not written by keyescrow's run", c.Location, c.VersionID)))
	}
	st, err := d.Backend.Stat(ctx, c.Key, c.VersionID)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return failWith(verifyError(t, fmt.Sprintf("%s version %q was listed but cannot be found: %v", c.Location, c.VersionID, err)))
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
	}
	return len(a.Destinations) > 0 && worst == a.ExitCode
}

package escrow

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// receiptSuffix ends the key of the receipt stored beside a copy.
const receiptSuffix = ".receipt.json"

// maxReceiptSize bounds what is read of a stored receipt.
const maxReceiptSize = 1 << 20

// Copy is one archived version of a key file at a destination, as the
// service lists it, with what its stored receipt says where it was read.
type Copy struct {
	Destination string    `json:"destination"`
	Type        string    `json:"type"`
	Location    string    `json:"location"`
	Host        string    `json:"host"`
	Instance    string    `json:"instance"`
	Kind        string    `json:"kind"`
	Name        string    `json:"name"`
	Key         string    `json:"key"`
	VersionID   string    `json:"version_id"`
	Bytes       int64     `json:"bytes"`
	Time        time.Time `json:"time"` // when the service stored it
	// Current is false when the version is no longer the current one of
	// its key (hidden by a delete marker or a newer version); it is still
	// stored and can be restored by its version id.
	Current bool `json:"current"`
	// Receipt: a receipt is stored beside the copy.
	Receipt bool `json:"receipt"`
	// SHA256 is the key file's checksum as its receipt records it ("" when
	// not read or no receipt).
	SHA256 string `json:"sha256"`
	// Retention is the lock the receipt recorded for this copy.
	Retention *receipt.Retention `json:"retention"`
	// RetentionInForce: Retention.Until is still in the future.
	RetentionInForce bool `json:"retention_in_force"`
	// Note says what is odd about the copy (e.g. its receipt names another
	// version).
	Note string `json:"note,omitempty"`

	receiptVersion string
}

// Filter selects host/instance groups. Empty fields match all; names match
// whatever their case.
type Filter struct {
	Host, Instance string
}

func (f Filter) match(host, instance string) bool {
	return (f.Host == "" || strings.EqualFold(safeName(f.Host), host)) &&
		(f.Instance == "" || strings.EqualFold(safeName(f.Instance), instance))
}

// group is the copies of one host, instance and kind at one destination.
type group struct {
	Host, Instance, Kind string
	// Copies, newest first (at most the walk's keep when it is not 0).
	Copies []Copy
	// Total counts every copy seen, also those beyond keep.
	Total int
	// NewestReceipt is when the newest receipt was stored: receipts are
	// written only for proven copies, so this is the newest proven copy's
	// time as far as the listing tells.
	NewestReceipt time.Time
}

// walker streams a destination's listing into host/instance/kind groups.
// Keys are <prefix><host>/<instance>/<kind>/<name>, so a group's keys are
// contiguous in the listing's byte order; one group at a time is held, and
// with keep > 0 only its keep newest copies.
type walker struct {
	d      Destination
	filter Filter
	keep   int
	fn     func(*group) error

	cur       *group
	receipts  map[string]string // copy key → receipt's current version id
	lastKey   string            // the key whose versions are being listed
	keyHidden bool              // lastKey's newest entry is a delete marker
	foreign   int               // objects outside the layout, ignored
}

// walk lists d under prefix (a narrower prefix for one host is allowed)
// and calls fn once per matching group.
func walk(ctx context.Context, d Destination, prefix string, f Filter, keep int, fn func(*group) error) (foreign int, err error) {
	w := &walker{d: d, filter: f, keep: keep, fn: fn}
	err = d.Backend.List(ctx, prefix, w.object)
	if err == nil {
		err = w.flush()
	}
	return w.foreign, err
}

func (w *walker) object(o storage.Object) error {
	rel, ok := strings.CutPrefix(o.Key, w.d.Config.Prefix)
	parts := strings.Split(rel, "/")
	if !ok || len(parts) != 4 || slices.Contains(parts, "") {
		w.foreign++
		return nil
	}
	host, instance, kind, name := parts[0], parts[1], parts[2], parts[3]
	if w.cur == nil || w.cur.Host != host || w.cur.Instance != instance || w.cur.Kind != kind {
		if err := w.flush(); err != nil {
			return err
		}
		if !w.filter.match(host, instance) {
			w.cur = &group{Host: host, Instance: instance, Kind: kind, Total: -1} // skipped
			return nil
		}
		w.cur = &group{Host: host, Instance: instance, Kind: kind}
		w.receipts = map[string]string{}
	}
	if w.cur.Total < 0 {
		return nil
	}
	first := o.Key != w.lastKey
	if first {
		w.lastKey, w.keyHidden = o.Key, o.DeleteMarker
	}
	if strings.HasSuffix(o.Key, sealedSuffix) {
		return nil // a sealed password, read through its copy's receipt
	}
	if copyKey, ok := strings.CutSuffix(o.Key, receiptSuffix); ok {
		// The newest entry of a receipt key is its current version; a
		// receipt hidden by a delete marker is still read by version.
		if o.DeleteMarker || (!first && w.receipts[copyKey] != "") {
			return nil
		}
		if o.LastModified.After(w.cur.NewestReceipt) {
			w.cur.NewestReceipt = o.LastModified
		}
		// A bounded walk records only the receipts of the copies it keeps,
		// so its map stays bounded too.
		if w.keep == 0 || slices.ContainsFunc(w.cur.Copies, func(c Copy) bool { return c.Key == copyKey }) {
			w.receipts[copyKey] = cmp.Or(o.VersionID, "\x00") // "\x00": unversioned
		}
		return nil
	}
	if o.DeleteMarker {
		return nil
	}
	w.cur.Total++
	w.cur.Copies = append(w.cur.Copies, Copy{
		Destination: w.d.Config.Name, Type: w.d.Backend.Type(), Location: w.d.Backend.Location(o.Key),
		Host: host, Instance: instance, Kind: kind, Name: name, Key: o.Key,
		VersionID: o.VersionID, Bytes: o.Size, Time: o.LastModified.UTC(),
		Current: o.IsLatest && !w.keyHidden,
	})
	if w.keep > 0 && len(w.cur.Copies) >= 4*w.keep {
		w.trim(w.cur)
	}
	return nil
}

// trim keeps the keep newest copies and forgets the receipts of the rest.
func (w *walker) trim(g *group) {
	sortNewestFirst(g.Copies)
	if w.keep > 0 && len(g.Copies) > w.keep {
		for _, c := range g.Copies[w.keep:] {
			if c.Key != w.lastKey {
				delete(w.receipts, c.Key)
			}
		}
		g.Copies = slices.Clip(g.Copies[:w.keep])
	}
}

func (w *walker) flush() error {
	g := w.cur
	w.cur = nil
	if g == nil || g.Total < 0 {
		return nil
	}
	w.trim(g)
	for i := range g.Copies {
		if v, ok := w.receipts[g.Copies[i].Key]; ok {
			g.Copies[i].Receipt = true
			if v != "\x00" {
				g.Copies[i].receiptVersion = v
			}
		}
	}
	w.receipts = nil
	return w.fn(g)
}

// sortNewestFirst orders copies by the time the service stored them, the
// newest first (by key and version on a tie, for a stable order).
func sortNewestFirst(cs []Copy) {
	slices.SortStableFunc(cs, func(a, b Copy) int {
		return cmp.Or(b.Time.Compare(a.Time), strings.Compare(b.Key, a.Key), strings.Compare(b.VersionID, a.VersionID))
	})
}

// hostPrefixes are the listing prefixes to try for one host: its name as
// given, upper- and lower-cased (SQL Server reports a Windows machine name
// in capitals, a Linux host name as it is). Each is a narrow listing; the
// caller falls back to the whole prefix when none finds anything.
func hostPrefixes(prefix, host string) []string {
	h := safeName(host)
	var out []string
	for _, v := range []string{h, strings.ToUpper(h), strings.ToLower(h)} {
		if p := prefix + v + "/"; !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// walkHost walks one host's groups (or every host's when f.Host is empty),
// listing only under the host's own prefix where that finds it.
func walkHost(ctx context.Context, d Destination, f Filter, keep int, fn func(*group) error) (int, error) {
	if f.Host == "" {
		return walk(ctx, d, d.Config.Prefix, f, keep, fn)
	}
	found, foreign := false, 0
	for _, p := range hostPrefixes(d.Config.Prefix, f.Host) {
		n, err := walk(ctx, d, p, f, keep, func(g *group) error { found = true; return fn(g) })
		foreign += n
		if err != nil || found {
			return foreign, err
		}
	}
	// The host's name in another mixed case: one listing of every host.
	n, err := walk(ctx, d, d.Config.Prefix, f, keep, fn)
	return foreign + n, err
}

// loadReceipt reads and decodes the receipt stored beside a copy.
func loadReceipt(ctx context.Context, b storage.Backend, c Copy) (*receipt.Receipt, error) {
	rc, err := b.Open(ctx, c.Key+receiptSuffix, c.receiptVersion)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxReceiptSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxReceiptSize {
		return nil, fmt.Errorf("the receipt is larger than %d bytes", maxReceiptSize)
	}
	var rec receipt.Receipt
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("the receipt is not valid JSON: %v", err)
	}
	if rec.File == nil || len(rec.File.SHA256) != 64 {
		return nil, fmt.Errorf("the receipt records no SHA-256 of the key file")
	}
	return &rec, nil
}

// receiptEntry finds the receipt's record of this copy: the destination
// entry at the copy's location.
func receiptEntry(rec *receipt.Receipt, c Copy) *receipt.Destination {
	for i, d := range rec.Destinations {
		if d.Location == c.Location {
			return &rec.Destinations[i]
		}
	}
	for i, d := range rec.Destinations {
		if d.Name == c.Destination {
			return &rec.Destinations[i]
		}
	}
	return nil
}

// applyReceipt fills the copy's receipt facts and says what does not fit.
func applyReceipt(c *Copy, rec *receipt.Receipt, now time.Time) {
	c.SHA256 = rec.File.SHA256
	e := receiptEntry(rec, *c)
	switch {
	case e == nil:
		c.Note = "its receipt does not mention this destination"
	case e.VersionID != c.VersionID:
		c.Note = fmt.Sprintf("its receipt names version %q, not this one: this version was not written by keyescrow's run", e.VersionID)
		c.SHA256 = ""
	case e.Retention != nil:
		c.Retention = e.Retention
		c.RetentionInForce = e.Retention.Until.After(now)
	}
}

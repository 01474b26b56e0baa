package escrow

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
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
	Destination string `json:"destination"`
	Type        string `json:"type"`
	Location    string `json:"location"`
	Host        string `json:"host"`
	Instance    string `json:"instance"`
	Kind        string `json:"kind"`
	// Database and Item are the folders of a hierarchy item's copy (its
	// database; a certificate's name), "" for the service master key.
	Database  string    `json:"database,omitempty"`
	Item      string    `json:"item,omitempty"`
	Name      string    `json:"name"`
	Key       string    `json:"key"`
	VersionID string    `json:"version_id"`
	Bytes     int64     `json:"bytes"`
	Time      time.Time `json:"time"` // when the service stored it
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
	// Authenticated: its receipt is signed by a pinned key (KeyID); always
	// false when trust.public_keys is not set.
	Authenticated bool   `json:"authenticated"`
	KeyID         string `json:"key_id,omitempty"`
	// RunID is the run that wrote it: its receipt's run id, else the 8 hex
	// digits its name carries.
	RunID string `json:"run_id,omitempty"`
	// Note says what is odd about the copy (e.g. its receipt names another
	// version).
	Note string `json:"note,omitempty"`

	// receiptVersion is the receipt's first version: receipts are written
	// create-only, so only the first is keyescrow's; receiptLater are the
	// versions stored over it since (evidence of tampering), newest first.
	receiptVersion string
	receiptLater   []string
	receiptHidden  bool // a delete marker is the receipt's current entry
	hidden         bool // a delete marker is the key's current entry
}

// Filter selects host/instance groups, and within them kinds and items.
// Empty fields match all; names match whatever their case.
type Filter struct {
	Host, Instance string
	// Kind selects one kind of key; Database and Name one item of the
	// hierarchy (a certificate's name; empty for a master key).
	Kind, Database, Name string
}

func (f Filter) match(host, instance string) bool {
	return (f.Host == "" || nameMatches(f.Host, host)) && (f.Instance == "" || nameMatches(f.Instance, instance))
}

// matchItem reports whether a group of kind and item folders is selected.
func (f Filter) matchItem(kind, database, item string) bool {
	return (f.Kind == "" || f.Kind == kind) &&
		(f.Database == "" || nameMatches(f.Database, database)) &&
		(f.Name == "" || nameMatches(f.Name, item))
}

// nameMatches reports whether folder holds the copies of name, whatever
// the case of either (non-ASCII letters too: the folder is decoded first).
func nameMatches(name, folder string) bool {
	if strings.EqualFold(safeName(name), folder) {
		return true
	}
	n, ok := unSafeName(folder)
	return ok && strings.EqualFold(n, name)
}

// group is the copies of one host, instance and kind (and, for a
// hierarchy item, database and name) at one destination.
type group struct {
	Host, Instance, Kind string
	// Database and Item are the item's folders ("" for the service master
	// key; Item "" for a database master key).
	Database, Item string
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
	receipts  map[string]*receiptVersions // copy key → its receipt's versions
	lastKey   string                      // the key whose versions are being listed
	keyHidden bool                        // lastKey's newest entry is a delete marker
	foreign   int                         // objects outside the layout, ignored
	// hiddenReceipt: lastKey is a receipt whose newest entry is a delete
	// marker.
	hiddenReceipt bool
	// receiptTime is when lastKey's first receipt version was stored, as
	// far as listed; it counts towards NewestReceipt once the key is done.
	receiptTime time.Time
}

// commitReceipt counts the receipt just listed in its group's newest
// receipt time: its first version only, as a later one is not keyescrow's.
func (w *walker) commitReceipt() {
	if w.cur != nil && w.cur.Total >= 0 && w.receiptTime.After(w.cur.NewestReceipt) {
		w.cur.NewestReceipt = w.receiptTime
	}
	w.receiptTime = time.Time{}
}

// receiptVersions are the stored versions of one receipt name.
type receiptVersions struct {
	first     string    // the oldest version seen so far
	firstTime time.Time // when it was stored
	later     []string  // newer versions, newest first (at most maxLater)
	more      int       // newer versions beyond maxLater
	hidden    bool
}

// maxLater bounds the forged receipt versions remembered per name.
const maxLater = 8

func (rv *receiptVersions) add(version string, stored time.Time) {
	if rv.first != "" {
		if len(rv.later) < maxLater {
			rv.later = append(rv.later, rv.first)
		} else {
			rv.more++
		}
	}
	rv.first, rv.firstTime = version, stored
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
	if !ok || len(parts) < 4 || len(parts) != 4+kindDepth(parts[2]) || slices.Contains(parts, "") {
		w.foreign++
		return nil
	}
	host, instance, kind, name := parts[0], parts[1], parts[2], parts[len(parts)-1]
	var database, item string
	if len(parts) > 4 {
		database = parts[3]
	}
	if len(parts) > 5 {
		item = parts[4]
	}
	if w.cur == nil || w.cur.Host != host || w.cur.Instance != instance || w.cur.Kind != kind || w.cur.Database != database || w.cur.Item != item {
		if err := w.flush(); err != nil {
			return err
		}
		if !w.filter.match(host, instance) || !w.filter.matchItem(kind, database, item) {
			w.cur = &group{Host: host, Instance: instance, Kind: kind, Database: database, Item: item, Total: -1} // skipped
			return nil
		}
		w.cur = &group{Host: host, Instance: instance, Kind: kind, Database: database, Item: item}
		w.receipts = map[string]*receiptVersions{}
	}
	if w.cur.Total < 0 {
		return nil
	}
	first := o.Key != w.lastKey
	if first {
		w.commitReceipt()
		w.lastKey, w.keyHidden = o.Key, o.DeleteMarker
	}
	if strings.HasSuffix(o.Key, sealedSuffix) {
		return nil // a sealed password, read through its copy's receipt
	}
	if kind == receipt.KindCertificate && strings.HasSuffix(o.Key, privateKeySuffix) {
		return nil // a certificate's private key, read through its copy's receipt
	}
	if copyKey, ok := strings.CutSuffix(o.Key, receiptSuffix); ok {
		// A receipt's versions are listed newest first; the last one seen
		// is its first version, the only one keyescrow wrote. A receipt
		// hidden by a delete marker is still read by version.
		if o.DeleteMarker {
			if first {
				w.hiddenReceipt = true
			}
			return nil
		}
		if first {
			w.hiddenReceipt = false
		}
		w.receiptTime = o.LastModified // the last seen is the first version
		// A bounded walk records only the receipts of the copies it keeps,
		// so its map stays bounded too.
		if w.keep == 0 || slices.ContainsFunc(w.cur.Copies, func(c Copy) bool { return c.Key == copyKey }) {
			rv := w.receipts[copyKey]
			if rv == nil {
				rv = &receiptVersions{hidden: w.hiddenReceipt}
				w.receipts[copyKey] = rv
			}
			rv.add(cmp.Or(o.VersionID, "\x00"), o.LastModified) // "\x00": unversioned
		}
		return nil
	}
	if o.DeleteMarker {
		return nil
	}
	if first {
		w.hiddenReceipt = false
	}
	w.cur.Total++
	w.cur.Copies = append(w.cur.Copies, Copy{
		Destination: w.d.Config.Name, Type: w.d.Backend.Type(), Location: w.d.Backend.Location(o.Key),
		Host: host, Instance: instance, Kind: kind, Database: database, Item: item, Name: name, Key: o.Key,
		VersionID: o.VersionID, Bytes: o.Size, Time: o.LastModified.UTC(),
		Current: o.IsLatest && !w.keyHidden, hidden: w.keyHidden,
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
	w.commitReceipt()
	g := w.cur
	w.cur = nil
	if g == nil || g.Total < 0 {
		return nil
	}
	w.trim(g)
	for i := range g.Copies {
		c := &g.Copies[i]
		c.RunID = runIDFromName(c.Name)
		if rv, ok := w.receipts[c.Key]; ok {
			c.Receipt = true
			if rv.first != "\x00" {
				c.receiptVersion = rv.first
			}
			c.receiptLater, c.receiptHidden = rv.later, rv.hidden
			if rv.more > 0 {
				c.receiptLater = append(slices.Clone(rv.later), fmt.Sprintf("and %d more", rv.more))
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
	var out []string
	for _, v := range []string{host, strings.ToUpper(host), strings.ToLower(host)} {
		if p := prefix + safeName(v) + "/"; !slices.Contains(out, p) {
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

// runIDRE finds the 8 hex digits of the run id in a copy's name
// (…-20261128T040000Z-0123abcd.key).
var runIDRE = regexp.MustCompile(`-\d{8}T\d{6}Z-([0-9a-f]{8})(\.[^.]*)?$`)

// runIDFromName returns the run id's first 8 hex digits from a copy's
// name, "" when the name does not carry one.
func runIDFromName(name string) string {
	if m := runIDRE.FindStringSubmatch(name); m != nil {
		return m[1]
	}
	return ""
}

package escrow

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"sync"
	"time"

	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// Change detection: an item is archived again only when it changed since
// its newest proven copy, a destination lacks that copy, or the copy is
// older than hierarchy.refresh. A WORM bucket then does not fill with
// identical locked copies, and a key is never left without a fresh,
// genuine copy at every destination.

// decision is what backup does with one item.
type decision struct {
	// unchanged: every destination holds a genuine, proven copy of the
	// live key younger than refresh; nothing is exported.
	unchanged bool
	// reason says why (receipt items[].reason).
	reason string
	// newest is the newest copy, per destination, when unchanged.
	newest *receipt.NewestCopy
}

// held is an item's newest genuine copy at one destination.
type held struct {
	c   Copy
	rec *receipt.Receipt
	// gone says why the service no longer holds the copy as its receipt
	// records it ("" when it does).
	gone string
}

// decideConcurrency bounds the items judged at once: each is a few
// requests per destination (a listing, a receipt, a Stat).
const decideConcurrency = 4

// decideAll decides on every item, a few at a time (the exports that
// follow run one after the other).
func (r *Runner) decideAll(ctx context.Context, host, instance string, items []receipt.Item, targets []target) []decision {
	out := make([]decision, len(items))
	sem := make(chan struct{}, decideConcurrency)
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = r.decide(ctx, host, instance, it, targets)
		})
	}
	wg.Wait()
	return out
}

// decide judges an item against its copies at every target destination.
// Whatever cannot be proven (a listing or a read that fails, a copy whose
// receipt is forged or unsigned while keys are pinned) counts as no copy,
// so the item is archived again: a failure to read the archive never
// leaves a key without a fresh copy.
func (r *Runner) decide(ctx context.Context, host, instance string, it receipt.Item, targets []target) decision {
	now := r.Clock()
	refresh := time.Duration(r.Config.Hierarchy.Refresh)
	found := make([]*held, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { found[i], errs[i] = r.newestHeld(ctx, t, host, instance, it, now) })
	}
	wg.Wait()

	var newest *held
	for _, h := range found {
		if h != nil && (newest == nil || h.c.Time.After(newest.c.Time)) {
			newest = h
		}
	}
	for i, err := range errs {
		if err != nil {
			return decision{reason: fmt.Sprintf("cannot tell whether it changed: the archive at %s cannot be read: %v", targets[i].name, err)}
		}
	}
	if newest == nil {
		return decision{reason: "new"}
	}
	if !it.Same(*newest.rec.Item) {
		return decision{reason: "changed: " + it.Changed(*newest.rec.Item)}
	}
	for i, h := range found {
		switch {
		case h == nil:
			return decision{reason: "missing at " + targets[i].name}
		case !it.Same(*h.rec.Item):
			return decision{reason: fmt.Sprintf("missing at %s: its newest copy there holds another key (%s)", targets[i].name, it.Changed(*h.rec.Item))}
		case h.gone != "":
			return decision{reason: fmt.Sprintf("missing at %s: %s", targets[i].name, h.gone)}
		}
	}
	for _, h := range found {
		if age := now.Sub(h.c.Time); age >= refresh {
			return decision{reason: fmt.Sprintf("refresh: newest copy is %s old (hierarchy.refresh %s)", ageText(age), r.Config.Hierarchy.Refresh)}
		}
	}
	nc := &receipt.NewestCopy{RunID: newest.rec.RunID, StoredAt: newest.c.Time.UTC()}
	for _, h := range found {
		nc.Destinations = append(nc.Destinations, receipt.CopyPlace{Name: h.c.Destination, Location: h.c.Location, VersionID: h.c.VersionID})
	}
	return decision{unchanged: true, newest: nc,
		reason: fmt.Sprintf("unchanged since run %s (%s)", newest.rec.RunID, ageText(now.Sub(newest.c.Time)))}
}

// ageText is an age for a reason: whole days from two days on, else
// rounded to the second.
func ageText(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String()
}

// newestHeld finds the item's newest genuine copy at t: its copies newest
// first, each judged by its receipt (signed by a pinned key when
// trust.public_keys is set, naming this copy and this item); the first
// genuine one is checked with the service (stillHeld). nil, nil: no
// genuine copy.
func (r *Runner) newestHeld(ctx context.Context, t target, host, instance string, it receipt.Item, now time.Time) (*held, error) {
	d := Destination{Config: r.destConfig(t.name), Backend: t.backend}
	f := Filter{Host: host, Instance: instance, Kind: it.Kind, Database: it.Database}
	if it.Kind == receipt.KindCertificate {
		f.Name = it.Name
	}
	var copies []Copy
	collect := func(g *group) error {
		// An empty filter field matches every folder: the default
		// instance's "_" must match exactly.
		if nameMatches(instance, g.Instance) {
			copies = append(copies, g.Copies...)
		}
		return nil
	}
	// The item's own folder, as backup names it, is listed first: one
	// short listing, however large the archive grows. Only when it holds
	// nothing are the host's folders listed in any case (walkHost).
	folder := path.Dir(itemObjectKey(d.Config.Prefix, host, instance, it, "x")) + "/"
	if _, err := walk(ctx, d, folder, f, 0, collect); err != nil {
		return nil, err
	}
	if len(copies) == 0 {
		if _, err := walkHost(ctx, d, f, 0, collect); err != nil {
			return nil, err
		}
	}
	sortNewestFirst(copies)
	best, err := r.newestGenuine(ctx, d, copies, func(j judged) {
		if j.skip != nil {
			r.Log.DebugContext(ctx, "a copy does not count for change detection", "item", it.Label(), "destination", t.name, "reason", j.skip.Reason, "message", j.skip.Message)
		}
	})
	if err != nil {
		return nil, err
	}
	if best == nil {
		return nil, nil
	}
	gone, err := stillHeld(ctx, t, best.c, best.sr.rec, now)
	if err != nil {
		return nil, err
	}
	return &held{c: best.c, rec: best.sr.rec, gone: gone}, nil
}

// stillHeld asks the service, by version id, whether it still holds the
// copy as its receipt records it: the same size and SHA-256, the lock
// still in force where one is configured, and the files that travel with
// it (a certificate's .pvk, a sealed password). A file without a version
// id is also read back and hashed. It returns why not ("" when it does);
// err is a failed request.
func stillHeld(ctx context.Context, t target, c Copy, rec *receipt.Receipt, now time.Time) (string, error) {
	check := func(key, versionID, what, sha string, size int64) (string, error) {
		st, err := t.backend.Stat(ctx, key, versionID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return fmt.Sprintf("%s (%s version %q) is no longer stored", what, t.backend.Location(key), versionID), nil
		case err != nil:
			return "", transferError("read the properties of", t, key, err)
		}
		want, _ := hex.DecodeString(sha)
		if st.Size != size || st.SHA256 == nil || !bytes.Equal(st.SHA256, want) {
			return fmt.Sprintf("%s (%s version %q) is not what its receipt records (%d bytes, SHA-256 %x; the receipt: %d bytes, %s)", what, t.backend.Location(key), versionID, st.Size, st.SHA256, size, sha), nil
		}
		if versionID == "" {
			// No version id pins these bytes: anyone who may write
			// can replace them under the same name, and the SHA-256 a
			// service states may be the writer's own metadata (Azure
			// Blob's is). Hash what is stored now (a few KB).
			sum, n, err := readBack(ctx, t.backend, key, "", size)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				return fmt.Sprintf("%s (%s) is no longer stored", what, t.backend.Location(key)), nil
			case err != nil:
				return "", transferError("read back", t, key, err)
			case n != size || !bytes.Equal(sum[:], want):
				return fmt.Sprintf("%s (%s) was replaced: it holds %d bytes, SHA-256 %x (the receipt: %d bytes, %s)", what, t.backend.Location(key), n, sum, size, sha), nil
			}
		}
		if t.retain != nil && (st.Retention == nil || !st.Retention.Until.After(now)) {
			return fmt.Sprintf("%s (%s version %q) is no longer locked", what, t.backend.Location(key), versionID), nil
		}
		return "", nil
	}
	if why, err := check(c.Key, c.VersionID, "the newest copy", rec.File.SHA256, rec.File.Bytes); why != "" || err != nil {
		return why, err
	}
	e := receiptEntry(rec, c)
	if e == nil {
		return "its receipt does not mention this destination", nil
	}
	if rec.File.PrivateKey != nil {
		pk := e.PrivateKey
		if pk == nil {
			return "its receipt names no private key file at this destination", nil
		}
		if why, err := check(privateKeyKey(c.Key), pk.VersionID, "its private key file", pk.SHA256, pk.Bytes); why != "" || err != nil {
			return why, err
		}
	}
	if rec.Password != nil && rec.Password.Mode == receipt.PasswordSealed {
		sp := e.SealedPassword
		if sp == nil {
			return "its receipt names no sealed password at this destination", nil
		}
		if why, err := check(sealedKey(c.Key), sp.VersionID, "its sealed password", sp.SHA256, sp.Bytes); why != "" || err != nil {
			return why, err
		}
	}
	return "", nil
}

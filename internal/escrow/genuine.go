package escrow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/sign"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// This file decides whether a stored copy is genuine: written and proven by
// a keyescrow run, as its receipt says, and (when trust.public_keys is set)
// vouched for by a pinned signing key. Only then are its bytes compared
// with what the receipt records.

// storedReceipt is a copy's receipt as read and authenticated.
type storedReceipt struct {
	rec *receipt.Receipt
	// authenticated: signed by the pinned key keyID.
	authenticated bool
	keyID         string
	// sigErr says why it is not authenticated while keys are pinned
	// (sign.ErrUnsigned, ErrUnknownKey, ErrBadSignature, ErrMalformed).
	sigErr error
}

// judged is one copy as judged before its bytes are read.
type judged struct {
	c  Copy
	sr *storedReceipt // nil when there is no usable receipt
	// skip is set when the copy is not genuine (or not authenticated).
	skip *receipt.Skipped
	// sigOnly: the only fault is the signature (unsigned, unknown key or
	// bad signature); restore --version-id may still use the copy.
	sigOnly bool
	// findings are facts about the copy's key or receipt that do not make
	// the copy itself false: later receipt versions, delete markers.
	findings []receipt.Skipped
	// err: the receipt could not be read (a failed request).
	err error
}

// judge reads the copy's receipt (its first version), checks its signature
// against the pinned keys and that it records exactly this copy.
func (r *Runner) judge(ctx context.Context, d Destination, c Copy) judged {
	j := judged{c: c}
	skip := func(reason, msg string, evidence bool) judged {
		j.skip = &receipt.Skipped{Destination: d.Config.Name, Location: c.Location, VersionID: c.VersionID, RunID: c.RunID,
			Reason: reason, Message: msg, Evidence: evidence}
		return j
	}
	if c.hidden {
		j.findings = append(j.findings, receipt.Skipped{Destination: d.Config.Name, Location: c.Location, VersionID: c.VersionID, RunID: c.RunID,
			Reason: receipt.SkipHidden, Message: fmt.Sprintf("a delete marker hides %s: the copy is still stored and readable by its version id %q", c.Location, c.VersionID)})
	}
	if !c.Receipt {
		return skip(receipt.SkipUnfinished, fmt.Sprintf("%s version %q has no receipt: the run %s died after writing it, or is still running; it is not counted", c.Location, c.VersionID, dash8(c.RunID)), false)
	}
	rloc := d.Backend.Location(c.Key + receiptSuffix)
	for _, v := range c.receiptLater {
		j.findings = append(j.findings, receipt.Skipped{Destination: d.Config.Name, Location: rloc, VersionID: v, RunID: c.RunID, Reason: receipt.SkipTampered, Evidence: true,
			Message: fmt.Sprintf("the receipt %s has a later version %q stored over the one keyescrow wrote (%q): receipts are written once, so that version is forged; only the first is used", rloc, v, c.receiptVersion)})
	}
	if c.receiptHidden {
		j.findings = append(j.findings, receipt.Skipped{Destination: d.Config.Name, Location: rloc, VersionID: c.receiptVersion, RunID: c.RunID, Reason: receipt.SkipHidden,
			Message: fmt.Sprintf("a delete marker hides the receipt %s: its first version %q is still read by version id", rloc, c.receiptVersion)})
	}
	sr, err := r.loadReceipt(ctx, d.Backend, c)
	if err != nil {
		if isTransfer(err) && !errors.Is(err, storage.ErrNotFound) {
			j.err = err
			return j
		}
		return skip(receipt.SkipUnreadable, fmt.Sprintf("%s: its receipt cannot be used: %v", c.Location, err), true)
	}
	j.sr = sr
	if c.RunID == "" || strings.HasPrefix(sr.rec.RunID, c.RunID) {
		j.c.RunID = sr.rec.RunID
	}
	if msg := recordsCopy(sr.rec, c); msg != "" {
		return skip(receipt.SkipForged, fmt.Sprintf("%s version %q is not the copy its receipt records (%s): it was not written by keyescrow's run", c.Location, c.VersionID, msg), true)
	}
	if len(r.Trust) > 0 && !sr.authenticated {
		j.sigOnly = true
		if errors.Is(sr.sigErr, sign.ErrUnsigned) {
			return skip(receipt.SkipUnauthenticated, fmt.Sprintf("%s version %q: its receipt is not signed, and trust.public_keys is set: it is not counted", c.Location, c.VersionID), false)
		}
		return skip(receipt.SkipForged, fmt.Sprintf("%s version %q: %v", c.Location, c.VersionID, sr.sigErr), true)
	}
	return j
}

// newestGenuine judges copies (sorted newest first) and returns the newest
// genuine one, or nil. Listings give whole seconds at most services: among
// the genuine copies of the newest second that holds one, the one whose
// receipt was written last is the newest. seen is told of every copy
// judged. A receipt that cannot be read (a failed request) ends the search
// with its error.
func (r *Runner) newestGenuine(ctx context.Context, d Destination, copies []Copy, seen func(judged)) (*judged, error) {
	var best *judged
	for _, c := range copies {
		if best != nil && !c.Time.Truncate(time.Second).Equal(best.c.Time.Truncate(time.Second)) {
			break
		}
		j := r.judge(ctx, d, c)
		if seen != nil {
			seen(j)
		}
		if j.err != nil {
			return nil, j.err
		}
		if j.skip != nil {
			continue
		}
		if best == nil || j.sr.rec.FinishedAt.After(best.sr.rec.FinishedAt) {
			best = &j
		}
	}
	return best, nil
}

// recordsCopy says what in rec does not describe copy c ("" when all
// does): the file name, host, instance and kind of its key, and the version
// id recorded for its location (or, when the location is rendered
// differently now, for its destination).
func recordsCopy(rec *receipt.Receipt, c Copy) string {
	switch {
	case rec.File.Name != c.Name:
		return fmt.Sprintf("it names the file %q", rec.File.Name)
	case !strings.EqualFold(safeName(rec.Host), c.Host) || !strings.EqualFold(safeName(rec.Instance), c.Instance) || rec.Kind != c.Kind:
		return fmt.Sprintf("it names host %q instance %q kind %q", rec.Host, rec.Instance, rec.Kind)
	case kindDepth(c.Kind) > 0 && (rec.Item == nil || rec.Item.Kind != c.Kind || !strings.EqualFold(safeName(rec.Item.Database), c.Database) ||
		(c.Kind == receipt.KindCertificate && !strings.EqualFold(safeName(rec.Item.Name), c.Item))):
		if rec.Item == nil {
			return "it names no database or certificate"
		}
		return fmt.Sprintf("it names %s", rec.Item.Label())
	}
	e := receiptEntry(rec, c)
	switch {
	case e == nil:
		return "it does not mention this destination"
	case e.Status != receipt.DestVerified:
		return "it records this destination's copy as " + e.Status
	case e.VersionID != c.VersionID:
		return fmt.Sprintf("it names version %q", e.VersionID)
	}
	return ""
}

// loadReceipt reads the first version of the copy's receipt, checks its
// signature against the pinned keys and decodes what is signed.
func (r *Runner) loadReceipt(ctx context.Context, b storage.Backend, c Copy) (*storedReceipt, error) {
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
	sr := &storedReceipt{}
	payload := data
	if len(r.Trust) > 0 {
		p, key, err := r.Trust.Open(data)
		if err == nil {
			payload, sr.authenticated, sr.keyID = p, true, key.ID
		} else {
			sr.sigErr = err
		}
	}
	var rec receipt.Receipt
	if err := json.Unmarshal(payload, &rec); err != nil {
		return nil, fmt.Errorf("the receipt is not valid JSON: %w", err)
	}
	if rec.File == nil || len(rec.File.SHA256) != 64 {
		return nil, errors.New("the receipt records no SHA-256 of the key file")
	}
	sr.rec = &rec
	return sr, nil
}

// receiptEntry finds the receipt's record of this copy: the destination
// entry at the copy's location, else the one of its destination's name.
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

// applyJudgement fills the copy's listing columns from its judgement.
func applyJudgement(c *Copy, j judged, now time.Time) {
	c.RunID = j.c.RunID
	var notes []string
	if j.sr != nil {
		c.Authenticated, c.KeyID = j.sr.authenticated, j.sr.keyID
	}
	switch {
	case j.err != nil:
		notes = append(notes, "its receipt cannot be read: "+j.err.Error())
	case j.skip != nil:
		notes = append(notes, j.skip.Reason+": "+j.skip.Message)
	default:
		c.SHA256 = j.sr.rec.File.SHA256
		if e := receiptEntry(j.sr.rec, *c); e != nil && e.Retention != nil {
			c.Retention = e.Retention
			c.RetentionInForce = e.Retention.Until.After(now)
		}
	}
	for _, f := range j.findings {
		notes = append(notes, f.Reason+": "+f.Message)
	}
	c.Note = strings.Join(notes, "; ")
}

func dash8(runID string) string {
	if runID == "" {
		return "(unknown)"
	}
	return runID
}

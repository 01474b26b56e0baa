package escrow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
)

// receiptReaders bounds the receipts read at once by list.
const receiptReaders = 8

// ListOptions select what `keyescrow list` shows.
type ListOptions struct {
	Destination string // "" = every destination
	Filter      Filter
	// Limit keeps the Limit newest copies per host and instance (0 = all).
	Limit int
	// NoReceipts skips reading receipts (one request per copy): the SHA-256
	// and retention columns stay empty.
	NoReceipts bool
}

// Listed is what one destination's listing came to.
type Listed struct {
	Name    string         `json:"name"`
	Type    string         `json:"type"`
	Copies  int            `json:"copies"`
	Foreign int            `json:"foreign_objects"` // objects under the prefix outside keyescrow's layout
	Status  string         `json:"status"`          // ok, failed
	Error   *receipt.Error `json:"error,omitempty"`
}

// List streams the archived copies of every (or the named) destination to
// emit: destination by destination, host/instance by host/instance, the
// newest first within each. It holds one host/instance's copies at a time
// (only Limit of them when set).
func (r *Runner) List(ctx context.Context, opts ListOptions, emit func(Copy) error) ([]Listed, error) {
	dests, err := r.selectDestinations(opts.Destination)
	if err != nil {
		return nil, err
	}
	if !opts.NoReceipts {
		r.warnUnauthenticated(ctx, false)
	}
	var out []Listed
	var errs []error
	for _, d := range dests {
		l := Listed{Name: d.Config.Name, Type: d.Backend.Type(), Status: "ok"}
		foreign, err := walkHost(ctx, d, opts.Filter, opts.Limit, func(g *group) error {
			if !opts.NoReceipts {
				r.readReceipts(ctx, d, g.Copies)
			}
			for _, c := range g.Copies {
				l.Copies++
				if err := emit(c); err != nil {
					return errEmit{err}
				}
			}
			return nil
		})
		l.Foreign = foreign
		if err != nil {
			var ee errEmit
			if errors.As(err, &ee) {
				return append(out, l), exitcode.Wrap(exitcode.Internal, ee.err)
			}
			err = listError(d, err)
			l.Status, l.Error = "failed", &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}
			errs = append(errs, err)
			r.Log.ErrorContext(ctx, "listing failed", "destination", d.Config.Name, "err", err.Error())
		}
		out = append(out, l)
	}
	return out, errors.Join(errs...)
}

// ItemName names the hierarchy item a copy holds as people write it: its
// database for a database master key ("HR"), database/name for a
// certificate ("master/TDECert"); "" for the service master key.
func (c Copy) ItemName() string {
	switch {
	case c.Database == "":
		return ""
	case c.Item == "":
		return folderName(c.Database)
	}
	return folderName(c.Database) + "/" + folderName(c.Item)
}

// CheckKind refuses a kind this version does not know (for --kind).
func CheckKind(kind string) error {
	switch kind {
	case "", receipt.KindServiceMasterKey, receipt.KindDatabaseMasterKey, receipt.KindCertificate:
		return nil
	}
	return exitcode.Wrap(exitcode.Usage, fmt.Errorf("--kind %q: use %s, %s or %s", kind, receipt.KindServiceMasterKey, receipt.KindDatabaseMasterKey, receipt.KindCertificate))
}

type errEmit struct{ err error }

func (e errEmit) Error() string { return e.err.Error() }

// readReceipts judges the copies concurrently (their receipts read and
// authenticated) and fills in what the receipts record; what is odd about
// a copy is left in its note.
func (r *Runner) readReceipts(ctx context.Context, d Destination, copies []Copy) {
	now := r.Clock()
	next := make(chan *Copy)
	var wg sync.WaitGroup
	for range min(receiptReaders, len(copies)) {
		wg.Go(func() {
			for c := range next {
				applyJudgement(c, r.judge(ctx, d, *c), now)
			}
		})
	}
	for i := range copies {
		next <- &copies[i]
	}
	close(next)
	wg.Wait()
}

// selectDestinations returns every destination, or the one named.
func (r *Runner) selectDestinations(name string) ([]Destination, error) {
	if name == "" {
		return r.Destinations, nil
	}
	var names []string
	for _, d := range r.Destinations {
		if d.Config.Name == name {
			return []Destination{d}, nil
		}
		names = append(names, d.Config.Name)
	}
	return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("--destination %q is not configured: use one of %s", name, strings.Join(names, ", ")))
}

// listError is a failed listing: exit 5 (130 when interrupted).
func listError(d Destination, err error) error {
	t := target{name: d.Config.Name, backend: d.Backend}
	return transferError("list", t, d.Config.Prefix, err)
}

// scopeNames renders a filter for messages.
func scopeNames(f Filter) string {
	parts := []string{}
	if f.Host != "" {
		parts = append(parts, "host "+f.Host)
	}
	if f.Instance != "" {
		parts = append(parts, "instance "+f.Instance)
	}
	if len(parts) == 0 {
		return "any host"
	}
	return strings.Join(parts, ", ")
}

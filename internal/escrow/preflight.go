package escrow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// preflight proves every destination's properties concurrently and judges
// them. It returns the destinations that may be written, and an error (exit 4
// or 5) describing those refused, whose receipt entries it adds.
func (r *Runner) preflight(ctx context.Context, rec *receipt.Receipt) ([]target, error) {
	if len(r.Destinations) == 0 {
		// Nothing could be proven: never report a run without copies as ok.
		return nil, exitcode.Wrap(exitcode.Usage, errors.New("no destination is configured: add at least one under destinations"))
	}
	results := r.Preflight(ctx)
	var (
		targets []target
		errs    []error
	)
	for _, res := range results {
		if res.Err != nil {
			errs = append(errs, res.Err)
			rec.Destinations = append(rec.Destinations, receipt.Destination{
				Name: res.Name, Type: res.Type, Location: res.Location, Region: res.Target.region,
				Status: receipt.DestRefused, Checks: res.Target.checks,
				Checksum: receipt.Checksum{Algorithm: receipt.ChecksumSHA256},
				Error:    &receipt.Error{Code: exitcode.Code(res.Err), Message: res.Err.Error()},
			})
			continue
		}
		targets = append(targets, res.Target)
	}
	return targets, errors.Join(errs...)
}

// PreflightResult is one destination's preflight.
type PreflightResult struct {
	Name, Type, Location string
	Target               target
	Err                  error // exit 4 (policy), 5 (unreachable) or 130
}

// Checks are the judged properties.
func (p PreflightResult) Checks() []receipt.Check { return p.Target.checks }

// Region is the proven region, "" when unknown or not applicable.
func (p PreflightResult) Region() string { return p.Target.region }

// Preflight reads and judges every destination concurrently, writing
// nothing. It is the whole of `keyescrow check` for destinations.
func (r *Runner) Preflight(ctx context.Context) []PreflightResult {
	out := make([]PreflightResult, len(r.Destinations))
	var wg sync.WaitGroup
	for i, d := range r.Destinations {
		wg.Go(func() { out[i] = r.preflightOne(ctx, d) })
	}
	wg.Wait()
	return out
}

func (r *Runner) preflightOne(ctx context.Context, d Destination) PreflightResult {
	res := PreflightResult{Name: d.Config.Name, Type: d.Backend.Type(), Location: d.Backend.Location(d.Config.Prefix)}
	res.Target = target{name: d.Config.Name, backend: d.Backend}
	props, err := d.Backend.Preflight(ctx)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			res.Err = err
			return res
		}
		code := exitcode.Transfer
		if errors.Is(err, storage.ErrNotFound) {
			code = exitcode.Policy // a missing bucket or folder: nothing can be written
		}
		res.Err = exitcode.Wrap(code, fmt.Errorf("%s: preflight failed: %w", d.Config.Name, err))
		return res
	}
	if props.Region.State == storage.Proven {
		res.Target.region = props.Region.Value
	}
	checks, failures := evaluate(policyInput{
		dest: d.Config, caps: d.Backend.Capabilities(), props: props,
		homeRegion: r.Config.HomeRegion, waived: r.Config.Waived,
	})
	res.Target.checks = checks
	for _, n := range props.Notes {
		r.Log.InfoContext(ctx, "destination note", "destination", d.Config.Name, "note", n)
	}
	if len(failures) > 0 {
		res.Err = exitcode.Wrap(exitcode.Policy, fmt.Errorf("%s does not meet policy, nothing was written to it: %s", d.Config.Name, strings.Join(failures, "; ")))
		return res
	}
	// A waived, unproven property is not demanded of the write: a bucket
	// without Object Lock refuses lock headers, and one without versioning
	// has no version ids. The receipt's checks say so.
	res.Target.unversioned = acceptUnversioned(props, r.Config.Waived)
	if rt := d.Config.Retention; rt != nil && !writeUnlocked(props, r.Config.Waived) {
		res.Target.retain = rt
		res.Target.legalHold = d.Config.LegalHold
	}
	return res
}

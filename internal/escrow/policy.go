package escrow

import (
	"fmt"
	"slices"
	"strings"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// Check results.
const (
	resultPass   = "pass"
	resultFail   = "fail"
	resultWaived = "waived"
	resultInfo   = "info"
)

// policyInput is what the policy judges for one destination.
type policyInput struct {
	dest       config.Destination
	caps       storage.Capabilities
	props      storage.Properties
	homeRegion string
	waived     func(string) bool
}

// evaluate judges a destination's proven properties against the policy. It
// returns every check and the failures (each naming what to fix); a
// destination with failures gets nothing written to it.
func evaluate(in policyInput) (checks []receipt.Check, failures []string) {
	add := func(name string, p storage.Property, result, detail string) {
		checks = append(checks, receipt.Check{Name: name, State: p.State.String(), Value: p.Value, Result: result, Detail: detail})
		if result == resultFail {
			failures = append(failures, detail)
		}
	}

	// Writable: a destination that cannot take the file fails, never waived.
	switch w := in.props.Writable; w.State {
	case storage.Absent:
		add("writable", w, resultFail, orDefault(w.Detail, "the destination is not writable with these credentials"))
	default:
		add("writable", w, resultInfo, w.Detail)
	}

	judge := func(name, waiver string, p storage.Property, missing string) {
		switch p.State {
		case storage.NotApplicable:
			add(name, p, resultInfo, p.Detail)
		case storage.Proven:
			add(name, p, resultPass, p.Detail)
		default:
			why := missing
			if p.State == storage.Unknown {
				why = fmt.Sprintf("%s cannot be proven: %s", name, orDefault(p.Detail, "the service did not say"))
			} else if p.Detail != "" {
				why = missing + " (" + p.Detail + ")"
			}
			if in.waived(waiver) {
				add(name, p, resultWaived, why+"; waived in config")
				return
			}
			add(name, p, resultFail, why+fmt.Sprintf("; fix the destination, or list %q under waive to give this check up knowingly", waiver))
		}
	}
	judge("versioning", config.WaiveVersioning, in.props.Versioning, "versioning is not enabled: enable it")
	judge("immutability", config.WaiveImmutability, in.props.Immutability, "the destination cannot lock versions (no Object Lock / version-level immutability): enable it")
	checks, failures = in.judgeRegion(checks, failures)

	if r := in.dest.Retention; r != nil {
		rc := storage.Property{State: storage.Proven, Value: fmt.Sprintf("%s %dd", r.Mode, r.Days)}
		switch {
		case writeUnlocked(in.props, in.waived):
			add("retention", rc, resultWaived, fmt.Sprintf("each copy is written without a lock: the destination's immutability is not proven and %q is waived", config.WaiveImmutability))
		case !in.caps.Retention:
			add("retention", rc, resultFail, fmt.Sprintf("retention is configured but a %s destination cannot enforce it: remove retention or use another type", in.dest.Type))
		case len(in.caps.RetentionModes) > 0 && !slices.ContainsFunc(in.caps.RetentionModes, func(m string) bool { return strings.EqualFold(m, r.Mode) }):
			add("retention", rc, resultFail, fmt.Sprintf("retention mode %s is not one of %s", r.Mode, strings.Join(in.caps.RetentionModes, ", ")))
		default:
			detail := fmt.Sprintf("each copy is locked %s for %d days", r.Mode, r.Days)
			if d := in.props.DefaultRetention; d != nil {
				detail += fmt.Sprintf(" (destination default: %s %d days)", d.Mode, d.Days)
			}
			add("retention", rc, resultPass, detail)
		}
	}
	return checks, failures
}

// judgeRegion proves the data lives outside home_region, and where the
// configuration names a region, that it is the one the service reports.
func (in policyInput) judgeRegion(checks []receipt.Check, failures []string) ([]receipt.Check, []string) {
	p := in.props.Region
	c := receipt.Check{Name: "region", State: p.State.String(), Value: p.Value}
	fail := func(why string) {
		if in.waived(config.WaiveRegion) {
			c.Result, c.Detail = resultWaived, why+"; waived in config"
			return
		}
		c.Result, c.Detail = resultFail, why
		failures = append(failures, why)
	}
	switch p.State {
	case storage.NotApplicable:
		c.Result, c.Detail = resultInfo, p.Detail
	case storage.Proven:
		switch {
		case in.dest.Region != "" && !strings.EqualFold(in.dest.Region, p.Value):
			fail(fmt.Sprintf("the destination is in %s but the configuration says %s: correct region", p.Value, in.dest.Region))
		case in.homeRegion == "":
			fail(fmt.Sprintf("the destination is in %s but home_region is not set, so it cannot be proven to be elsewhere: set home_region, or list \"region\" under waive", p.Value))
		case strings.EqualFold(p.Value, in.homeRegion):
			fail(fmt.Sprintf("the destination is in %s, the same region as this host (home_region): use a destination in another region, or list \"region\" under waive", p.Value))
		default:
			c.Result, c.Detail = resultPass, fmt.Sprintf("%s differs from home_region %s", p.Value, in.homeRegion)
		}
	default:
		fail(fmt.Sprintf("the destination's region cannot be proven: %s; grant the permission, or list \"region\" under waive", orDefault(p.Detail, "the service did not say")))
	}
	return append(checks, c), failures
}

// writeUnlocked: immutability is not proven and is waived, so copies are
// written without a lock (a bucket without Object Lock refuses lock headers).
func writeUnlocked(p storage.Properties, waived func(string) bool) bool {
	return p.Immutability.State != storage.Proven && waived(config.WaiveImmutability)
}

// acceptUnversioned: versioning is not proven and is waived, so a copy
// without a version id is accepted.
func acceptUnversioned(p storage.Properties, waived func(string) bool) bool {
	return p.Versioning.State != storage.Proven && waived(config.WaiveVersioning)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

package escrow

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// policyCases are destinations that do not meet the policy. waiver is the
// waive entry that gives the check up ("" when it cannot be waived).
var policyCases = []struct {
	name   string
	mod    func(*setup)
	waiver string
	want   string // in the refusal
	// fixOnly: the refusal names the fix, not the waiver (a configuration
	// that contradicts the service is corrected, not waived).
	fixOnly bool
}{
	{
		name: "a destination without versioning",
		mod: func(s *setup) {
			s.wrap = func(b storage.Backend) storage.Backend {
				return &backend{Backend: b, preflight: func(p storage.Properties) storage.Properties {
					p.Versioning = storage.Property{State: storage.Absent, Value: "Suspended"}
					return p
				}}
			}
		},
		waiver: config.WaiveVersioning,
		want:   "versioning is not enabled",
	},
	{
		name: "a destination without object lock",
		mod: func(s *setup) {
			s.wrap = func(b storage.Backend) storage.Backend {
				return &backend{Backend: b, preflight: func(p storage.Properties) storage.Properties {
					p.Immutability = storage.Property{State: storage.Absent}
					return p
				}}
			}
		},
		waiver: config.WaiveImmutability,
		want:   "cannot lock versions",
	},
	{
		name:   "a destination whose versioning cannot be proven",
		mod:    func(s *setup) { s.wrap = unknownVersioning },
		waiver: config.WaiveVersioning,
		want:   "versioning cannot be proven: s3:GetBucketVersioning denied",
	},
	{
		name: "a destination in the host's own region",
		mod: func(s *setup) {
			s.mem.Region = homeRegion
			s.memDest.Region = homeRegion
		},
		waiver: config.WaiveRegion,
		want:   "same region as this host",
	},
	{
		name:    "a destination in another region than configured",
		mod:     func(s *setup) { s.mem.Region = "us-west-1" },
		waiver:  config.WaiveRegion,
		want:    "the destination is in us-west-1 but the configuration says us-east-2: correct region",
		fixOnly: true,
	},
	{
		name:   "a destination whose region is unknown",
		mod:    func(s *setup) { s.mem.Region = "" },
		waiver: config.WaiveRegion,
		want:   "region cannot be proven",
	},
	{
		name:   "a retention on a destination that cannot enforce one",
		mod:    func(s *setup) { s.mem.ObjectLock = false },
		waiver: config.WaiveImmutability,
		want:   "cannot lock versions",
	},
	{
		name: "a retention mode the destination does not support",
		mod:  func(s *setup) { s.mem.Modes = []string{"GOVERNANCE"} },
		want: "retention mode COMPLIANCE is not one of GOVERNANCE",
	},
	{
		name: "a destination that is not writable",
		mod: func(s *setup) {
			s.wrap = func(b storage.Backend) storage.Backend {
				return &backend{Backend: b, preflight: func(p storage.Properties) storage.Properties {
					p.Writable = storage.Property{State: storage.Absent, Detail: "s3:PutObject denied"}
					return p
				}}
			}
		},
		want: "s3:PutObject denied",
	},
}

func unknownVersioning(b storage.Backend) storage.Backend {
	return &backend{Backend: b, preflight: func(p storage.Properties) storage.Properties {
		p.Versioning = storage.Property{State: storage.Unknown, Detail: "s3:GetBucketVersioning denied"}
		return p
	}}
}

func TestBackupRefusesADestinationThatDoesNotMeetPolicyAndWritesNothing(t *testing.T) {
	for _, tc := range policyCases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mod, func(s *setup) { s.noFile = true })
			rec, err := e.backup()
			if code := exitcode.Code(err); code != exitcode.Policy {
				t.Fatalf("exit code %d (%v), want 4", code, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("the refusal %q does not say %q", err, tc.want)
			}
			if tc.waiver != "" && !tc.fixOnly && !strings.Contains(err.Error(), `list "`+tc.waiver+`" under waive`) {
				t.Errorf("the refusal %q does not name the waiver %q", err, tc.waiver)
			}
			d := dest(t, rec, memName)
			if d.Status != receipt.DestRefused || d.Error == nil || d.Error.Code != exitcode.Policy || d.ReadBack {
				t.Errorf("destination status %q error %+v, want refused with code 4", d.Status, d.Error)
			}
			if rec.Status != receipt.StatusFailed || rec.ExitCode != exitcode.Policy {
				t.Errorf("receipt status %q exit %d, want failed and 4", rec.Status, rec.ExitCode)
			}
			if e.backupRan() || e.connects.Load() != 0 || e.locks.Load() != 0 {
				t.Errorf("with every destination refused: BACKUP ran %v, SQL connects %d, locks %d; want none", e.backupRan(), e.connects.Load(), e.locks.Load())
			}
			if reqs := e.mem.Requests(); reqs["put"] != 0 || reqs["preflight"] != 1 {
				t.Errorf("requests %v, want one preflight and no put", reqs)
			}
			e.assertNothingWritten()
		})
	}
}

func TestAWaivedCheckLetsTheBackupThroughAndTheReceiptSaysSo(t *testing.T) {
	for _, tc := range policyCases {
		if tc.waiver == "" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mod, func(s *setup) { s.waive = append(s.waive, tc.waiver) })
			rec, err := e.backup()
			if err != nil {
				t.Fatalf("with %q waived: %v", tc.waiver, err)
			}
			if rec.Status != receipt.StatusOK || !slices.Contains(rec.Waived, tc.waiver) {
				t.Errorf("status %q waived %v, want ok listing %q", rec.Status, rec.Waived, tc.waiver)
			}
			d := dest(t, rec, memName)
			i := slices.IndexFunc(d.Checks, func(c receipt.Check) bool { return c.Result == "waived" })
			if d.Status != receipt.DestVerified || i < 0 || !strings.Contains(d.Checks[i].Detail, "waived in config") {
				t.Errorf("destination status %q checks %+v, want verified with a waived check", d.Status, d.Checks)
			}
			stored := parseReceipt(t, e.memRead(receiptKey(e.memKey())))
			if !slices.Contains(stored.Waived, tc.waiver) {
				t.Errorf("the stored receipt's waived %v lacks %q", stored.Waived, tc.waiver)
			}
		})
	}
}

func TestAPlainBucketWithVersioningAndImmutabilityWaivedIsArchivedWithoutAVersion(t *testing.T) {
	e := newEnv(t, func(s *setup) {
		s.mem.Versioning, s.mem.ObjectLock = false, false
		s.memDest.Retention = nil
		s.waive = []string{config.WaiveVersioning, config.WaiveImmutability}
	})
	rec, err := e.backup()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if want := []string{config.WaiveImmutability, config.WaiveVersioning}; !slices.Equal(rec.Waived, want) {
		t.Errorf("waived %v, want %v (sorted)", rec.Waived, want)
	}
	if d := dest(t, rec, memName); d.Status != receipt.DestVerified || d.VersionID != "" || d.Retention != nil {
		t.Errorf("destination %+v, want verified without version or retention", d)
	}
}

func TestWithImmutabilityWaivedACopyIsWrittenUnlockedAndTheReceiptSaysSo(t *testing.T) {
	e := newEnv(t, func(s *setup) {
		s.mem.ObjectLock = false // the memstore refuses any lock: a lock asked would fail the run
		s.memDest.LegalHold = true
		s.waive = []string{config.WaiveImmutability}
	})
	rec, err := e.backup()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	d := dest(t, rec, memName)
	if d.Status != receipt.DestVerified || d.VersionID == "" || d.Retention != nil || !d.ReadBack {
		t.Errorf("destination %+v, want verified with a version, without retention", d)
	}
	i := slices.IndexFunc(d.Checks, func(c receipt.Check) bool { return c.Name == "retention" })
	if i < 0 || d.Checks[i].Result != "waived" || !strings.Contains(d.Checks[i].Detail, "without a lock") {
		t.Errorf("checks %+v, want a waived retention check saying the copy is not locked", d.Checks)
	}
	for _, o := range e.memObjects() {
		if o.Retention != nil || o.LegalHold {
			t.Errorf("%s is locked (%+v, hold %v) though no lock was asked", o.Key, o.Retention, o.LegalHold)
		}
	}
}

func TestALegalHoldIsPlacedAndProven(t *testing.T) {
	e := newEnv(t, func(s *setup) { s.memDest.LegalHold = true })
	if _, err := e.backup(); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	objs := e.memObjects()
	if len(objs) != 2 {
		t.Fatalf("stored %d objects, want the key and its receipt", len(objs))
	}
	for _, o := range objs {
		if !o.LegalHold || o.Retention == nil {
			t.Errorf("%s: legal hold %v retention %+v, want both", o.Key, o.LegalHold, o.Retention)
		}
	}

	e = newEnv(t, func(s *setup) {
		s.memDest.LegalHold = true
		s.wrap = func(b storage.Backend) storage.Backend {
			return &backend{Backend: b, stat: func(o storage.Object) storage.Object { o.LegalHold = false; return o }}
		}
	})
	rec, err := e.backup()
	if code := exitcode.Code(err); code != exitcode.Verify {
		t.Fatalf("a hold the service does not report: exit %d (%v), want 6", code, err)
	}
	if d := dest(t, rec, memName); d.Error == nil || !strings.Contains(d.Error.Message, "legal hold") {
		t.Errorf("destination %+v, want an error naming the legal hold", d)
	}
}

func TestAGoodDestinationIsVerifiedBesideARefusedOneButTheRunFails(t *testing.T) {
	e := newEnv(t, func(s *setup) { s.mem.Region = homeRegion; s.memDest.Region = "" })
	rec, err := e.backup()
	if code := exitcode.Code(err); code != exitcode.Policy {
		t.Fatalf("exit code %d (%v), want 4", code, err)
	}
	if f := dest(t, rec, fileName); f.Status != receipt.DestVerified || !f.ReadBack {
		t.Errorf("the good destination: %+v, want verified", f)
	}
	m := dest(t, rec, memName)
	if m.Status != receipt.DestRefused || m.Error == nil || m.Error.Code != exitcode.Policy {
		t.Errorf("the refused destination: %+v", m)
	}
	if rec.Status != receipt.StatusFailed || rec.ExitCode != exitcode.Policy {
		t.Errorf("receipt status %q exit %d, want failed and 4", rec.Status, rec.ExitCode)
	}
	if rec.Destinations[0].Name != fileName || rec.Destinations[1].Name != memName {
		t.Errorf("destinations are not in configuration order: %s, %s", rec.Destinations[0].Name, rec.Destinations[1].Name)
	}
	if _, err := os.Stat(e.localKeyPath()); err != nil {
		t.Errorf("the local key file must be kept while a destination has no copy: %v", err)
	}
	if n := e.mem.Requests()["put"]; n != 0 {
		t.Errorf("the refused destination received %d puts", n)
	}
	assertStoredClaimsNoMore(t, mustReadFile(t, e.fileDir, receiptKey(e.fileKey())), memName)
}

func TestPreflightErrorsRefuseTheDestination(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"an unreachable service is a transfer failure", storage.ErrUnavailable, exitcode.Transfer},
		{"rejected credentials are a transfer failure", storage.ErrAuth, exitcode.Transfer},
		{"a missing bucket fails the policy", storage.ErrNotFound, exitcode.Policy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(s *setup) { s.noFile = true })
			e.mem.Inject("preflight", tc.err, 1)
			rec, err := e.backup()
			if code := exitcode.Code(err); code != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("exit code %d (%v), want %d wrapping %v", code, err, tc.want, tc.err)
			}
			if d := dest(t, rec, memName); d.Status != receipt.DestRefused || d.Error == nil || d.Error.Code != tc.want {
				t.Errorf("destination %+v", d)
			}
			if e.backupRan() {
				t.Error("BACKUP ran although no destination could take the file")
			}
			e.assertNothingWritten()
		})
	}
}

func TestPreflightWritesNothing(t *testing.T) {
	e := newEnv(t)
	results := e.runner.Preflight(testContext(t))
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Name, r.Err)
		}
	}
	if r := results[1]; r.Name != memName || r.Region() != "us-east-2" || len(r.Checks()) == 0 || r.Location != "mem://corp-sql-keys/"+memPrefix {
		t.Errorf("memory result %+v", r)
	}
	if reqs := e.mem.Requests(); len(reqs) != 1 || reqs["preflight"] != 1 {
		t.Errorf("requests %v, want one preflight only", reqs)
	}
	if e.connects.Load() != 0 || e.locks.Load() != 0 {
		t.Error("Preflight connected to SQL Server or took the lock")
	}
	e.assertNothingWritten()
}

func TestEvaluateJudgesEachProperty(t *testing.T) {
	proven := func(v string) storage.Property { return storage.Property{State: storage.Proven, Value: v} }
	good := storage.Properties{
		Region: proven("us-east-2"), Versioning: proven("Enabled"), Immutability: proven("object-lock"), Writable: proven(""),
	}
	caps := storage.Capabilities{Versioning: true, Retention: true, RetentionModes: []string{"COMPLIANCE", "GOVERNANCE"}}
	dst := config.Destination{Name: "d", Type: config.TypeS3, Region: "US-EAST-2", Retention: &config.Retention{Mode: "compliance", Days: 30}}
	cases := []struct {
		name     string
		mod      func(*policyInput)
		failures int
	}{
		{"proven properties pass, regions and modes compared without case", func(*policyInput) {}, 0},
		{"a home region in another case is the same region", func(in *policyInput) { in.homeRegion = "US-East-2"; in.dest.Region = "" }, 1},
		{"not-applicable properties are information only", func(in *policyInput) {
			na := storage.Property{State: storage.NotApplicable}
			in.props.Region, in.props.Versioning, in.props.Immutability = na, na, na
		}, 0},
		{"every failure is listed", func(in *policyInput) {
			in.props.Versioning.State, in.props.Immutability.State, in.props.Region.State = storage.Absent, storage.Unknown, storage.Unknown
			in.caps.Retention = false
		}, 4},
		{"waivers cover versioning, immutability and region, and with immutability the retention", func(in *policyInput) {
			in.props.Versioning.State, in.props.Immutability.State, in.props.Region.State = storage.Absent, storage.Unknown, storage.Unknown
			in.caps.Retention = false
			in.waived = func(string) bool { return true }
		}, 0},
		{"a retention the destination cannot enforce, though it claims immutability", func(in *policyInput) {
			in.caps.Retention = false
		}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := policyInput{dest: dst, caps: caps, props: good, homeRegion: homeRegion, waived: func(string) bool { return false }}
			tc.mod(&in)
			checks, failures := evaluate(in)
			if len(failures) != tc.failures {
				t.Errorf("failures %q, want %d", failures, tc.failures)
			}
			fails := 0
			for _, c := range checks {
				if c.Result == resultFail {
					fails++
				}
			}
			if fails != len(failures) {
				t.Errorf("%d checks failed but %d failures returned: %+v", fails, len(failures), checks)
			}
		})
	}
}

func TestMemstoreDefaultRetentionIsReported(t *testing.T) {
	e := newEnv(t, func(s *setup) {
		s.mem.DefaultRetention = &storage.DefaultRetention{Mode: "GOVERNANCE", Days: 1}
	})
	rec, err := e.backup()
	if err != nil {
		t.Fatal(err)
	}
	d := dest(t, rec, memName)
	i := slices.IndexFunc(d.Checks, func(c receipt.Check) bool { return c.Name == "retention" })
	if i < 0 || !strings.Contains(d.Checks[i].Detail, "destination default: GOVERNANCE 1 days") {
		t.Errorf("retention check %+v", d.Checks)
	}
	// The copy carries the retention asked for, not the weaker default.
	if d.Retention == nil || d.Retention.Mode != "COMPLIANCE" {
		t.Errorf("retention %+v, want COMPLIANCE", d.Retention)
	}
}

func TestARunWithoutDestinationsIsNotASuccess(t *testing.T) {
	e := newEnv(t)
	e.runner.Destinations = nil
	rec, err := e.backup()
	if code := exitcode.Code(err); code != exitcode.Usage {
		t.Fatalf("Backup without destinations: exit code %d (%v), want 2", code, err)
	}
	if rec.Status != receipt.StatusFailed || e.backupRan() {
		t.Errorf("status %q, BACKUP ran %v", rec.Status, e.backupRan())
	}
	file := filepath.Join(t.TempDir(), "smk.key")
	if err := os.WriteFile(file, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err = e.runner.Archive(testContext(t), file, "MSSQLSERVER")
	if code := exitcode.Code(err); code != exitcode.Usage || rec.Status != receipt.StatusFailed {
		t.Fatalf("Archive without destinations: exit code %d (%v) status %q, want 2 and failed", code, err, rec.Status)
	}
}

func TestARegionCannotBeProvenElsewhereWithoutAHomeRegion(t *testing.T) {
	e := newEnv(t, func(s *setup) { s.noFile = true })
	e.runner.Config.HomeRegion = ""
	rec, err := e.backup()
	if code := exitcode.Code(err); code != exitcode.Policy {
		t.Fatalf("exit code %d (%v), want 4", code, err)
	}
	if !strings.Contains(err.Error(), "home_region") || e.backupRan() {
		t.Errorf("the refusal %q does not name home_region, or BACKUP ran (%v)", err, e.backupRan())
	}
	if d := dest(t, rec, memName); d.Status != receipt.DestRefused {
		t.Errorf("destination %+v", d)
	}

	e.runner.Config.Waive = []string{config.WaiveRegion}
	if _, err := e.backup(); err != nil {
		t.Fatalf("with region waived: %v", err)
	}
}

func TestTheLockAskedForIsNeverShorterThanTheConfiguredDays(t *testing.T) {
	e := newEnv(t)
	now := testNow.Add(700 * time.Millisecond)
	e.runner.Clock = func() time.Time { return now }
	rec, err := e.backup()
	if err != nil {
		t.Fatal(err)
	}
	d := dest(t, rec, memName)
	if want := now.Add(30 * 24 * time.Hour); d.Retention == nil || d.Retention.Until.Before(want) {
		t.Errorf("retention %+v, want until at least %s (30 days from the run)", d.Retention, want)
	}
	if u := d.Retention.Until; !u.Equal(u.Truncate(time.Second)) {
		t.Errorf("until %s is not whole seconds", u)
	}
}

func TestASQLFailureBesideARefusedDestinationShowsBothAndExitsWithTheLarger(t *testing.T) {
	e := newEnv(t, func(s *setup) {
		s.mem.Region = homeRegion
		s.memDest.Region = ""
		s.user, s.pass = plainUser, plainPass // no CONTROL SERVER: Msg 15247
	})
	rec, err := e.backup()
	if code := exitcode.Code(err); code != exitcode.Policy {
		t.Fatalf("exit code %d (%v), want 4 (the larger of 3 and 4)", code, err)
	}
	if rec.Error == nil || rec.Error.Code != exitcode.SQLServer || !strings.Contains(rec.Error.Message, "15247") {
		t.Errorf("the run's own error %+v, want the SQL failure with code 3", rec.Error)
	}
	if m := dest(t, rec, memName); m.Status != receipt.DestRefused || m.Error == nil || m.Error.Code != exitcode.Policy {
		t.Errorf("the refused destination: %+v", m)
	}
}

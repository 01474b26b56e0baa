package escrow

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/memstore"
)

// Unit tests of change detection (decide) on two in-memory stores with
// Object Lock: the second, "second", can be left out of a run.

const (
	hrKeyPassword = "Hr-Dmk-Pa55!"
	secondName    = "second"
)

// hierEnv is newEnv with a hierarchy (master's master key and TDE
// certificate, HR with a password-only master key), SQL Server 2019 (.cer
// and .pvk), the hierarchy on, and a second locked in-memory store
// (GOVERNANCE, so a test can remove a version) instead of the folder.
//
// Runs are a minute apart (hierRun advances the clock of the runner and
// of the stores): copies of one run are older than the next run's.
func hierEnv(t *testing.T) (*env, *memstore.Store) {
	t.Helper()
	clock := func() time.Time { return hierNow }
	hierNow = testNow
	second, err := memstore.New(memstore.Options{Versioning: true, ObjectLock: true, Region: "us-west-2", Name: "second", Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(s *setup) {
		s.noFile = true
		s.mem.Clock = clock
		s.server.ProductVersion = "15.0.4355.3"
		s.server.Databases = []mssqltest.Database{
			{Name: "master", MasterKey: &mssqltest.MasterKey{Password: "Master-Dmk-Pa55!"},
				Certificates: []mssqltest.Certificate{{Name: "TDECert"}}},
			{Name: "Sales", TDECertificate: "TDECert"},
			{Name: "HR", MasterKey: &mssqltest.MasterKey{Password: hrKeyPassword, NoServiceMasterKey: true}},
		}
		s.extra = []Destination{{Config: config.Destination{Name: secondName, Type: config.TypeS3, Bucket: "second", Region: "us-west-2",
			Prefix: memPrefix, Retention: &config.Retention{Mode: "GOVERNANCE", Days: 30}}, Backend: second}}
	})
	e.runner.Clock = clock
	e.runner.Config.Hierarchy = config.Hierarchy{Enabled: true, Refresh: config.DefaultRefresh}
	e.runner.KeyPassword = func(db, cert string) (secret.Value, error) {
		if strings.EqualFold(db, "HR") && cert == "" {
			return secret.New(hrKeyPassword), nil
		}
		return secret.Value{}, nil
	}
	return e, second
}

// hierNow is the clock of hierEnv's runner and stores.
var hierNow time.Time

// hierRun backs up a minute after the last run and returns the run's
// receipt and its items by label.
func hierRun(t *testing.T, e *env) (*receipt.Receipt, map[string]receipt.ItemResult) {
	t.Helper()
	hierNow = hierNow.Add(time.Minute)
	e.runner.RunID = NewRunID()
	rec, err := e.backup()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, e.logs)
	}
	m := map[string]receipt.ItemResult{}
	for _, it := range rec.Items {
		m[it.Label()] = it
	}
	return rec, m
}

// decideNow preflights the runner's destinations and decides on it.
func decideNow(t *testing.T, e *env, it receipt.Item) decision {
	t.Helper()
	ctx := testContext(t)
	targets, refused := e.runner.preflight(ctx, e.runner.newReceipt())
	if refused != nil {
		t.Fatal(refused)
	}
	return e.runner.decide(ctx, serverName, "MSSQLSERVER", it, targets)
}

const (
	labelHR  = "database master key HR"
	labelTDE = "certificate master/TDECert"
)

func TestChangeDetection(t *testing.T) {
	e, second := hierEnv(t)
	first, items := hierRun(t, e)
	if first.Instance != "MSSQLSERVER" {
		t.Fatalf("instance %q", first.Instance)
	}
	hr, tde := items[labelHR], items[labelTDE]
	if hr.Action != receipt.ItemArchived || tde.Action != receipt.ItemArchived || len(tde.Destinations) != 2 || tde.Destinations[1].PrivateKey == nil {
		t.Fatalf("first run: %+v\n%+v", hr, tde)
	}

	t.Run("new: no copy anywhere", func(t *testing.T) {
		it := hr.Item
		it.Database = "Payroll"
		if d := decideNow(t, e, it); d.unchanged || d.reason != "new" {
			t.Fatalf("%+v", d)
		}
	})

	t.Run("unchanged: every destination holds the live key", func(t *testing.T) {
		for _, it := range []receipt.ItemResult{hr, tde} {
			d := decideNow(t, e, it.Item)
			if !d.unchanged || d.reason != "unchanged since run "+first.RunID+" (0s)" || d.newest == nil || d.newest.RunID != first.RunID || len(d.newest.Destinations) != 2 {
				t.Fatalf("%s: %+v", it.Label(), d)
			}
			for i, p := range d.newest.Destinations {
				if want := it.Destinations[i]; p.Name != want.Name || p.Location != want.Location || p.VersionID != want.VersionID {
					t.Errorf("%s: newest copy at %+v, want %+v", it.Label(), p, want)
				}
			}
		}
		// Copies filed under the host's name in another case are found
		// too (SQL Server reports a machine name in capitals).
		ctx := testContext(t)
		targets, _ := e.runner.preflight(ctx, e.runner.newReceipt())
		if d := e.runner.decide(ctx, strings.ToLower(serverName), "mssqlserver", hr.Item, targets); !d.unchanged {
			t.Fatalf("the host in lower case: %+v", d)
		}
		// The next run archives neither.
		_, items := hierRun(t, e)
		if items[labelHR].Action != receipt.ItemUnchanged || items[labelTDE].Action != receipt.ItemUnchanged {
			t.Fatalf("second run: %+v %+v", items[labelHR], items[labelTDE])
		}
	})

	t.Run("changed: another key_guid, modify_date or thumbprint", func(t *testing.T) {
		it := hr.Item
		it.KeyGUID = "00000000-0000-0000-0000-000000000001"
		if d := decideNow(t, e, it); d.unchanged || !strings.HasPrefix(d.reason, "changed: key_guid 00000000-0000-0000-0000-000000000001, the newest copy has ") {
			t.Fatalf("%+v", d)
		}
		it = hr.Item
		later := it.Modified.Add(time.Second)
		it.Modified = &later
		if d := decideNow(t, e, it); d.unchanged || !strings.HasPrefix(d.reason, "changed: modify_date ") {
			t.Fatalf("%+v", d)
		}
		it = tde.Item
		it.Thumbprint = strings.Repeat("AB", 20)
		if d := decideNow(t, e, it); d.unchanged || !strings.HasPrefix(d.reason, "changed: thumbprint "+it.Thumbprint) {
			t.Fatalf("%+v", d)
		}
	})

	t.Run("refresh: the newest copy is too old", func(t *testing.T) {
		defer func(c func() time.Time) { e.runner.Clock = c }(e.runner.Clock)
		defer func(r config.Duration) { e.runner.Config.Hierarchy.Refresh = r }(e.runner.Config.Hierarchy.Refresh)
		e.runner.Clock = func() time.Time { return hierNow.Add(11 * 24 * time.Hour) }
		e.runner.Config.Hierarchy.Refresh = config.Duration(10 * 24 * time.Hour)
		if d := decideNow(t, e, hr.Item); d.unchanged || d.reason != "refresh: newest copy is 11d old (hierarchy.refresh 10d)" {
			t.Fatalf("%+v", d)
		}
	})

	t.Run("a copy whose lock ended does not count", func(t *testing.T) {
		defer func(c func() time.Time, r config.Duration) { e.runner.Clock, e.runner.Config.Hierarchy.Refresh = c, r }(e.runner.Clock, e.runner.Config.Hierarchy.Refresh)
		e.runner.Clock = func() time.Time { return hierNow.Add(31 * 24 * time.Hour) }
		e.runner.Config.Hierarchy.Refresh = config.Duration(90 * 24 * time.Hour)
		if d := decideNow(t, e, hr.Item); d.unchanged || !strings.HasPrefix(d.reason, "missing at "+memName+": the newest copy (") || !strings.HasSuffix(d.reason, "is no longer locked") {
			t.Fatalf("%+v", d)
		}
	})

	t.Run("missing at one destination", func(t *testing.T) {
		// A .cer whose .pvk is gone is not a copy.
		d := tde.Destinations[1]
		if err := second.Delete(context.Background(), strings.TrimPrefix(d.PrivateKey.Location, "mem://second/"), d.PrivateKey.VersionID, true); err != nil {
			t.Fatal(err)
		}
		if dec := decideNow(t, e, tde.Item); dec.unchanged || !strings.HasPrefix(dec.reason, "missing at second: its private key file (") || !strings.Contains(dec.reason, "is no longer stored") {
			t.Fatalf("%+v", dec)
		}
		// The next run archives it again, at both destinations.
		_, items := hierRun(t, e)
		if it := items[labelTDE]; it.Action != receipt.ItemArchived || !strings.HasPrefix(it.Reason, "missing at second: ") || len(it.Destinations) != 2 {
			t.Fatalf("the next run: %+v", it)
		}
		if it := items[labelHR]; it.Action != receipt.ItemUnchanged {
			t.Fatalf("the next run: %+v", it)
		}
		if dec := decideNow(t, e, tde.Item); !dec.unchanged {
			t.Fatalf("after the run: %+v", dec)
		}
		// A destination added since holds nothing.
		dests := e.runner.Destinations
		third, err := memstore.New(memstore.Options{Versioning: true, ObjectLock: true, Region: "ap-south-1", Name: "third", Clock: func() time.Time { return hierNow }})
		if err != nil {
			t.Fatal(err)
		}
		e.runner.Destinations = append(e.runner.Destinations, Destination{Config: config.Destination{Name: "third", Type: config.TypeS3, Bucket: "third",
			Region: "ap-south-1", Prefix: memPrefix, Retention: &config.Retention{Mode: "COMPLIANCE", Days: 30}}, Backend: third})
		defer func() { e.runner.Destinations = dests }()
		if dec := decideNow(t, e, hr.Item); dec.unchanged || dec.reason != "missing at third" {
			t.Fatalf("%+v", dec)
		}
	})
}

// TestChangeDetectionCountsOnlyGenuineCopies: a copy whose receipt is not
// the agent's (unsigned while keys are pinned, or naming another item) is
// never taken for the newest copy, so it cannot hide a changed key.
func TestChangeDetectionCountsOnlyGenuineCopies(t *testing.T) {
	e, _ := hierEnv(t)
	e.runner.Destinations = e.runner.Destinations[:1] // the in-memory store alone
	a := &archive{t: t, runner: e.runner}
	a.signWith()
	_, items := hierRun(t, e)
	hr, tde := items[labelHR], items[labelTDE]

	// The key changed; someone plants a newer copy that claims it.
	live := hr.Item
	later := live.Modified.Add(time.Hour)
	live.Modified = &later
	plant := func(it receipt.Item, name string) {
		t.Helper()
		hierNow = hierNow.Add(time.Minute) // newer than the genuine copy
		ctx := context.Background()
		key := itemObjectKey(memPrefix, serverName, "MSSQLSERVER", it, name)
		content := []byte("forged key file")
		obj, err := e.mem.Put(ctx, key, content, storage.PutOptions{SHA256: sha(t, string(content)),
			Retention: &storage.Retention{Mode: "COMPLIANCE", Until: testNow.Add(40 * 24 * time.Hour)}})
		if err != nil {
			t.Fatal(err)
		}
		rec := receipt.Receipt{Status: receipt.StatusProven, Tool: "keyescrow", RunID: "ffffffffffffffff", Host: serverName, Instance: "MSSQLSERVER",
			Kind: live.Kind, Item: &live, File: &receipt.File{Name: name, Bytes: int64(len(content)), SHA256: hex.EncodeToString(sha(t, string(content)))},
			Destinations: []receipt.Destination{{Name: memName, Location: e.mem.Location(key), VersionID: obj.VersionID, Status: receipt.DestVerified}}}
		doc, _ := json.Marshal(rec)
		if _, err := e.mem.Put(ctx, key+receiptSuffix, doc, storage.PutOptions{SHA256: sha(t, string(doc))}); err != nil {
			t.Fatal(err)
		}
	}
	plant(live, "HR-masterkey-20261128T050000Z-ffffffff.key")
	// Unsigned while keys are pinned: not counted, the key is changed.
	if d := decideNow(t, e, live); d.unchanged || !strings.HasPrefix(d.reason, "changed: modify_date ") {
		t.Fatalf("an unsigned copy was counted: %+v", d)
	}
	if !strings.Contains(e.logs.String(), "does not count for change detection") {
		t.Errorf("the log does not say why the planted copy was passed over")
	}
	// The same copy, with no keys pinned, would have hidden the change:
	// the test above can fail.
	trust := e.runner.Trust
	e.runner.Trust = nil
	if d := decideNow(t, e, live); !d.unchanged {
		t.Fatalf("control: the planted copy should count without pinned keys: %+v", d)
	}
	e.runner.Trust = trust

	// A receipt naming another item (master's TDE certificate's receipt
	// under HR's folder) is forged whatever the keys.
	e.runner.Trust = nil
	wrong := tde.Item
	plantAs := func() {
		hierNow = hierNow.Add(time.Minute)
		ctx := context.Background()
		name := "HR-masterkey-20261128T060000Z-eeeeeeee.key"
		key := itemObjectKey(memPrefix, serverName, "MSSQLSERVER", live, name)
		content := []byte("forged again")
		obj, err := e.mem.Put(ctx, key, content, storage.PutOptions{SHA256: sha(t, string(content)),
			Retention: &storage.Retention{Mode: "COMPLIANCE", Until: testNow.Add(40 * 24 * time.Hour)}})
		if err != nil {
			t.Fatal(err)
		}
		rec := receipt.Receipt{Status: receipt.StatusProven, Tool: "keyescrow", RunID: "eeeeeeeeeeeeeeee", Host: serverName, Instance: "MSSQLSERVER",
			Kind: receipt.KindDatabaseMasterKey, Item: &wrong, File: &receipt.File{Name: name, Bytes: int64(len(content)), SHA256: hex.EncodeToString(sha(t, string(content)))},
			Destinations: []receipt.Destination{{Name: memName, Location: e.mem.Location(key), VersionID: obj.VersionID, Status: receipt.DestVerified}}}
		doc, _ := json.Marshal(rec)
		if _, err := e.mem.Put(ctx, key+receiptSuffix, doc, storage.PutOptions{SHA256: sha(t, string(doc))}); err != nil {
			t.Fatal(err)
		}
	}
	plantAs()
	// The newest copy in HR's folder names TDECert: passed over; the one
	// before it (planted above, unsigned but trusted now) is taken.
	if d := decideNow(t, e, live); !d.unchanged || d.newest.RunID != "ffffffffffffffff" {
		t.Fatalf("a copy naming another item was counted: %+v", d)
	}
}

// TestChangeDetectionWithinOneSecond: listings give whole seconds, so two
// runs in one second list their copies at the same time; the copy whose
// receipt was written last is the newest, whatever the names' order.
func TestChangeDetectionWithinOneSecond(t *testing.T) {
	for range 4 { // the names' order is random (run ids): try both ways
		e, _ := hierEnv(t)
		_, items := hierRun(t, e)
		if err := e.srv.RegenerateMasterKey("HR"); err != nil {
			t.Fatal(err)
		}
		// The same second at the stores, half a second later for the runner.
		e.runner.RunID = NewRunID()
		e.runner.Clock = func() time.Time { return hierNow.Add(500 * time.Millisecond) }
		rec, err := e.backup()
		if err != nil {
			t.Fatal(err)
		}
		var hr receipt.ItemResult
		for _, it := range rec.Items {
			if it.Label() == labelHR {
				hr = it
			}
		}
		if hr.Action != receipt.ItemArchived || !strings.HasPrefix(hr.Reason, "changed: ") || hr.Item.Same(items[labelHR].Item) {
			t.Fatalf("after the regeneration: %+v", hr)
		}
		if d := decideNow(t, e, hr.Item); !d.unchanged || d.newest.RunID != rec.RunID {
			t.Fatalf("the copy of the same second written last is not the newest: %+v", d)
		}
	}
}

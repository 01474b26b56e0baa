package escrow

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// The hierarchy's copies are written here the way backup writes them: each
// item under its own folders, proven at every destination, with a stored
// receipt naming the item (and a certificate's .pvk proven beside its
// .cer); the service master key's receipt carries the inventory.

const (
	itemHost = "SQLA"
	itemInst = "MSSQLSERVER"
)

var (
	masterDMK = receipt.Item{Kind: receipt.KindDatabaseMasterKey, Database: "master", Name: receipt.MasterKeyName,
		KeyGUID: "0A1B2C3D-0000-4000-8000-000000000001", Modified: timePtr(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), ProtectedByServiceMasterKey: boolPtr(true)}
	hrDMK = receipt.Item{Kind: receipt.KindDatabaseMasterKey, Database: "HR", Name: receipt.MasterKeyName,
		KeyGUID: "0A1B2C3D-0000-4000-8000-000000000002", Modified: timePtr(time.Date(2026, 2, 2, 3, 4, 5, 0, time.UTC)), ProtectedByServiceMasterKey: boolPtr(false)}
	tdeCert = receipt.Item{Kind: receipt.KindCertificate, Database: "master", Name: "TDECert", Thumbprint: "00112233445566778899AABBCCDDEEFF00112233",
		PrivateKey: "MK", TDE: []string{"Sales"}, Format: "pvk", Expiry: timePtr(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))}
)

func timePtr(t time.Time) *time.Time { return &t }
func boolPtr(b bool) *bool           { return &b }

// storeCopy archives content as one copy of kind (item for a hierarchy
// item, inv recorded for the service master key) at time at, the way a
// backup run does; pvk, when set, is a certificate's private key file. It
// returns the copy's key at each destination.
func (a *archive) storeCopy(kind string, item *receipt.Item, inv *receipt.Inventory, at time.Time, content, pvk string) map[string]string {
	a.t.Helper()
	a.now = at
	return storeTestCopy(a.t, a.runner, itemHost, itemInst, kind, item, inv, content, pvk)
}

// nextRunID, when set, is the run id of the next stored copy.
var nextRunID string

// storeTestCopy is storeCopy with r's clock and the host and instance given.
func storeTestCopy(t *testing.T, r *Runner, host, instance, kind string, item *receipt.Item, inv *receipt.Inventory, content, pvk string) map[string]string {
	t.Helper()
	ctx := testContext(t)
	at := r.Clock()
	r.RunID = NewRunID()
	if nextRunID != "" {
		r.RunID, nextRunID = nextRunID, ""
	}
	rec := r.newReceipt()
	rec.Host, rec.Instance, rec.Kind, rec.Item, rec.Inventory = host, instance, kind, item, inv
	name := backupFileName(host, at, r.RunID)
	if item != nil {
		name = itemFileName(*item, at, r.RunID)
	}
	kf := newKeyFile("", []byte(content))
	rec.File = &receipt.File{Name: name, Bytes: int64(len(kf.data)), SHA256: hexSum(kf)}
	var pk *keyFile
	if pvk != "" {
		pk = newKeyFile("", []byte(pvk))
		rec.File.PrivateKey = &receipt.File{Name: privateKeyKey(name), Bytes: int64(len(pk.data)), SHA256: hexSum(pk)}
	}
	targets, refused := r.preflight(ctx, rec)
	if refused != nil {
		t.Fatalf("preflight: %v", refused)
	}
	keys := map[string]string{}
	for _, tg := range targets {
		tg.retention = tg.lockUntil(at)
		prefix := r.destConfig(tg.name).Prefix
		key := objectKey(prefix, host, instance, kind, name)
		if item != nil {
			key = itemObjectKey(prefix, host, instance, *item, name)
		}
		d, err := copyAndProve(ctx, tg, key, kf)
		if err != nil {
			t.Fatalf("copy to %s: %v", tg.name, err)
		}
		if pk != nil {
			sd, err := copyAndProve(ctx, tg, privateKeyKey(key), pk)
			if err != nil {
				t.Fatalf("private key to %s: %v", tg.name, err)
			}
			d.PrivateKey = &receipt.Sidecar{Location: sd.Location, VersionID: sd.VersionID, SHA256: sd.Checksum.Local, Bytes: int64(len(pk.data)), Retention: sd.Retention, ReadBack: sd.ReadBack}
		}
		rec.Destinations = append(rec.Destinations, d)
		keys[tg.name] = key
	}
	doc, err := r.storedReceipt(rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		tg.retention = tg.lockUntil(at)
		if err := storeReceipt(ctx, tg, receiptKey(keys[tg.name]), doc); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func hexSum(kf *keyFile) string { return hex.EncodeToString(kf.sha256[:]) }

// hierArchive is an archive whose verify knows hierarchy.refresh 30d and
// max_age 8d.
func hierArchive(t *testing.T) *archive {
	a := newArchive(t, 90)
	a.runner.Config.Hierarchy = config.Hierarchy{Enabled: true, Refresh: config.Duration(30 * 24 * time.Hour)}
	return a
}

// fullBackup stores a copy of every item and then the service master key
// with the inventory of items (as one backup run would).
func (a *archive) fullBackup(at time.Time, items ...receipt.Item) {
	a.t.Helper()
	for _, it := range items {
		pvk := ""
		if it.Kind == receipt.KindCertificate && it.Format == "pvk" {
			pvk = "pvk of " + it.Name
		}
		a.storeCopy(it.Kind, &it, nil, at, "key of "+it.Label()+" "+it.KeyGUID+it.Thumbprint, pvk)
	}
	a.storeCopy(receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true, Items: items}, at, "smk", "")
}

func itemsOf(t *testing.T, aud *Audit, dest string) map[string]AuditedItem {
	t.Helper()
	out := map[string]AuditedItem{}
	for _, d := range aud.Destinations {
		if d.Name == dest {
			for _, it := range d.Items {
				out[it.Label()] = it
			}
		}
	}
	return out
}

func TestVerifyProvesEveryItemOfTheInventory(t *testing.T) {
	a := hierArchive(t)
	a.fullBackup(testNow, masterDMK, hrDMK, tdeCert)
	a.now = testNow.Add(time.Hour)
	aud, err := a.verify(VerifyOptions{Filter: Filter{Host: itemHost}})
	if err != nil || aud.Status != AuditOK {
		t.Fatalf("every item has a fresh proven copy: %v\n%s", err, a.logs.String())
	}
	for _, d := range aud.Destinations {
		if len(d.Items) != 3 {
			t.Errorf("%s: %d items, want 3: %+v", d.Name, len(d.Items), d.Items)
		}
		for _, it := range d.Items {
			if it.Status != ItemOK || it.Newest == nil || it.Newest.VersionID == "" && d.Name == memName || it.MaxAge != "hierarchy.refresh 30d + max_age 8d" || it.Error != nil {
				t.Errorf("%s: %+v", d.Name, it)
			}
		}
		var kinds []string
		for _, g := range d.Groups {
			kinds = append(kinds, g.Kind+":"+g.Database+"/"+g.Name+"="+g.Status)
			if g.Kind == receipt.KindServiceMasterKey && (g.Inventory == nil || g.Inventory.Items != 3 || !g.Inventory.Complete) {
				t.Errorf("%s: the service master key group names no inventory: %+v", d.Name, g.Inventory)
			}
			if g.Kind == receipt.KindCertificate && (len(g.Checked) != 1 || !g.Checked[0].ReadBack || g.Checked[0].privateKey == nil) {
				t.Errorf("%s: the certificate's copy and its .pvk are not read back: %+v", d.Name, g.Checked)
			}
		}
		want := "service-master-key:/=ok certificate:master/TDECert=ok database-master-key:HR/##MS_DatabaseMasterKey##=ok database-master-key:master/##MS_DatabaseMasterKey##=ok"
		if strings.Join(kinds, " ") != want {
			t.Errorf("%s: groups %v, want %s", d.Name, kinds, want)
		}
	}
	doc, _ := json.Marshal(aud)
	for _, s := range []string{`"items":[`, `"tde_databases":["Sales"]`, `"status":"ok"`, `"newest":{"time"`, `"inventory":{"run_id"`} {
		if !strings.Contains(string(doc), s) {
			t.Errorf("the audit's JSON lacks %s:\n%s", s, doc)
		}
	}

	t.Run("older than max_age but within refresh + max_age is fine", func(t *testing.T) {
		// The service master key is archived every run; the items only
		// when they change or every refresh.
		a.storeCopy(receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true, Items: []receipt.Item{masterDMK, hrDMK, tdeCert}}, testNow.Add(20*24*time.Hour), "smk2", "")
		a.now = testNow.Add(21 * 24 * time.Hour)
		// (The folder's copies carry the files' real times: only the
		// in-memory store follows the test's clock.)
		if aud, err := a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: itemHost}}); err != nil {
			t.Errorf("items 21 days old: %v\n%+v", err, aud.Destinations[0].Items)
		}
	})
	t.Run("older than refresh + max_age is stale", func(t *testing.T) {
		a.storeCopy(receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true, Items: []receipt.Item{masterDMK, hrDMK, tdeCert}}, testNow.Add(39*24*time.Hour), "smk3", "")
		a.now = testNow.Add(39*24*time.Hour + time.Hour)
		aud, err := a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: itemHost}})
		if exitcode.Code(err) != exitcode.Stale || aud.Status != AuditStale {
			t.Fatalf("items 39 days old: err %v status %s, want exit 8", err, aud.Status)
		}
		it := itemsOf(t, aud, memName)["database master key HR"]
		if it.Status != ItemStale || it.Error == nil || !strings.Contains(it.Error.Message, "older than hierarchy.refresh 30d + max_age 8d") {
			t.Errorf("HR's master key: %+v", it)
		}
		if !strings.Contains(err.Error(), "certificate master/TDECert protects TDE database Sales: its newest proven copy is from") {
			t.Errorf("the error does not name the TDE certificate: %v", err)
		}
	})
}

func TestVerifyFailsATDECertificateWithoutCopy(t *testing.T) {
	a := hierArchive(t)
	// The run recorded TDECert in its inventory but no copy of it exists
	// (its backup failed).
	a.storeCopy(masterDMK.Kind, &masterDMK, nil, testNow, "master dmk", "")
	a.storeCopy(receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true, Items: []receipt.Item{masterDMK, tdeCert}}, testNow, "smk", "")
	a.now = testNow.Add(time.Hour)
	aud, err := a.verify(VerifyOptions{Filter: Filter{Host: itemHost}})
	if exitcode.Code(err) != exitcode.Stale || aud.Status != AuditStale {
		t.Fatalf("err %v status %s, want exit 8", err, aud.Status)
	}
	for _, d := range []string{memName, fileName} {
		it := itemsOf(t, aud, d)["certificate master/TDECert"]
		if it.Status != ItemMissing || it.Newest != nil || it.Error == nil || it.Error.Code != exitcode.Stale ||
			!strings.Contains(it.Error.Message, "certificate master/TDECert protects TDE database Sales and has no proven copy") {
			t.Errorf("%s: TDECert %+v", d, it)
		}
		if it := itemsOf(t, aud, d)["database master key master"]; it.Status != ItemOK {
			t.Errorf("%s: master's key %+v, want ok", d, it)
		}
	}
	if aud.Error != nil {
		t.Errorf("the items explain the failure; the audit repeats it: %+v", aud.Error)
	}
}

func TestVerifyFailsAnItemWhoseKeyChangedSinceItsCopy(t *testing.T) {
	a := hierArchive(t)
	a.fullBackup(testNow, masterDMK, hrDMK)
	// HR's master key is regenerated; the next run records the new key in
	// its inventory but could not archive it.
	regen := hrDMK
	regen.KeyGUID = "0A1B2C3D-0000-4000-8000-0000000000FF"
	regen.Modified = timePtr(testNow.Add(12 * time.Hour))
	a.storeCopy(receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true, Items: []receipt.Item{masterDMK, regen}}, testNow.Add(24*time.Hour), "smk2", "")
	a.now = testNow.Add(25 * time.Hour)
	aud, err := a.verify(VerifyOptions{Filter: Filter{Host: itemHost}})
	if exitcode.Code(err) != exitcode.Stale {
		t.Fatalf("err %v, want exit 8", err)
	}
	it := itemsOf(t, aud, memName)["database master key HR"]
	if it.Status != ItemOutdated || it.Newest == nil || !strings.Contains(it.Changed, "key_guid 0A1B2C3D-0000-4000-8000-0000000000FF, the newest copy has 0A1B2C3D-0000-4000-8000-000000000002") ||
		!strings.Contains(it.Error.Message, "the current key has no proven copy") {
		t.Errorf("HR: %+v", it)
	}

	// The next run archives the new key: all good again.
	a.storeCopy(regen.Kind, &regen, nil, testNow.Add(26*time.Hour), "new hr key", "")
	a.now = testNow.Add(27 * time.Hour)
	if aud, err := a.verify(VerifyOptions{Filter: Filter{Host: itemHost}}); err != nil {
		t.Errorf("after the new key is archived: %v\n%+v", err, aud.Destinations[0].Items)
	}
}

func TestVerifyProvesACertificatesPrivateKeyFile(t *testing.T) {
	a := hierArchive(t)
	// Two runs archived the certificate (the second after refresh).
	a.storeCopy(tdeCert.Kind, &tdeCert, nil, testNow, "cer", "pvk bytes")
	keys := a.storeCopy(tdeCert.Kind, &tdeCert, nil, testNow.Add(time.Hour), "cer", "pvk bytes")
	a.storeCopy(receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true, Items: []receipt.Item{tdeCert}}, testNow.Add(time.Hour), "smk", "")
	a.now = testNow.Add(2 * time.Hour)
	if _, err := a.verify(VerifyOptions{Filter: Filter{Host: itemHost}}); err != nil {
		t.Fatalf("intact: %v", err)
	}
	pvkKey := privateKeyKey(keys[memName])
	st, err := a.mem.Stat(testContext(t), pvkKey, "")
	if err != nil {
		t.Fatal(err)
	}
	a.mem.Corrupt(pvkKey, st.VersionID)
	aud, err := a.verify(VerifyOptions{Filter: Filter{Host: itemHost}})
	if exitcode.Code(err) != exitcode.Verify || aud.Status != AuditFailed {
		t.Fatalf("a damaged .pvk: err %v status %s, want exit 6", err, aud.Status)
	}
	if !strings.Contains(err.Error(), "the private key of") || !strings.Contains(err.Error(), "damaged or was replaced") {
		t.Errorf("the error does not name the private key: %v", err)
	}
	// The older copy still proves the current key: the item is proven,
	// and the damaged copy fails the audit.
	if it := itemsOf(t, aud, memName)["certificate master/TDECert"]; it.Status != ItemFailed || it.Newest == nil || !it.Newest.Time.Equal(testNow) {
		t.Errorf("TDECert at %s: %+v, want failed with the older copy as the newest proven", memName, it)
	}
	if it := itemsOf(t, aud, fileName)["certificate master/TDECert"]; it.Status != ItemOK {
		t.Errorf("TDECert at %s: %+v, want ok", fileName, it)
	}

	t.Run("a missing .pvk", func(t *testing.T) {
		b := hierArchive(t)
		keys := b.storeCopy(tdeCert.Kind, &tdeCert, nil, testNow, "cer", "pvk bytes")
		b.storeCopy(receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true, Items: []receipt.Item{tdeCert}}, testNow, "smk", "")
		// The folder destination: someone removes the .pvk file.
		if err := os.Remove(filepath.Join(b.dir, "usb", filepath.FromSlash(privateKeyKey(keys[fileName])))); err != nil {
			t.Fatal(err)
		}
		aud, err := b.verify(VerifyOptions{Destination: fileName, Filter: Filter{Host: itemHost}})
		if exitcode.Code(err) != exitcode.Stale || !strings.Contains(err.Error(), "the private key of") || !strings.Contains(err.Error(), "is missing") {
			t.Fatalf("a removed .pvk: err %v, want exit 8 (no proven copy of the TDE certificate) naming the missing private key", err)
		}
		if it := itemsOf(t, aud, fileName)["certificate master/TDECert"]; it.Status != ItemMissing || !strings.Contains(it.Error.Message, "protects TDE database Sales and has no proven copy") {
			t.Errorf("TDECert: %+v", it)
		}
	})
}

func TestVerifyDoesNotCountAForgedItemCopy(t *testing.T) {
	a := hierArchive(t)
	keys := a.storeCopy(hrDMK.Kind, &hrDMK, nil, testNow, "hr key", "")
	sales := receipt.Item{Kind: receipt.KindDatabaseMasterKey, Database: "Sales", Name: receipt.MasterKeyName, KeyGUID: "0A1B2C3D-0000-4000-8000-000000000003", Modified: timePtr(testNow)}
	a.storeCopy(receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true, Items: []receipt.Item{hrDMK, sales}}, testNow, "smk", "")
	// Someone with write access copies HR's copy and its receipt into
	// Sales' folder: the receipt names HR.
	ctx := testContext(t)
	src := keys[memName]
	forged := strings.Replace(src, "/database-master-key/HR/", "/database-master-key/Sales/", 1)
	for _, k := range []string{"", receiptSuffix} {
		data := readAll(t, mustOpen(t, a, src+k))
		if _, err := a.mem.Put(ctx, forged+k, data, storage.PutOptions{SHA256: sha256Of(data)}); err != nil {
			t.Fatal(err)
		}
	}
	a.now = testNow.Add(time.Hour)
	aud, err := a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: itemHost}})
	if exitcode.Code(err) != exitcode.Stale {
		// The forgery is evidence (6), and Sales has no genuine copy (8):
		// the larger code wins.
		t.Fatalf("err %v, want exit 8", err)
	}
	if !strings.Contains(err.Error(), "it names database master key HR") {
		t.Errorf("the forgery is not reported: %v", err)
	}
	if it := itemsOf(t, aud, memName)["database master key Sales"]; it.Status != ItemMissing || it.Newest != nil {
		t.Errorf("Sales: %+v, want missing (the forged copy is not counted)", it)
	}
	var forgedSeen bool
	for _, g := range aud.Destinations[0].Groups {
		for _, s := range g.Skipped {
			if s.Reason == receipt.SkipForged && s.Evidence && g.Database == "Sales" {
				forgedSeen = true
			}
		}
	}
	if !forgedSeen {
		t.Errorf("the forged copy is not among the skipped: %+v", aud.Destinations[0].Groups)
	}
}

func TestVerifyDoesNotAgeItemsNoInventoryLists(t *testing.T) {
	a := hierArchive(t)
	// A certificate archived long ago, since dropped: the newest inventory
	// does not list it. Its copies stay (WORM) and are still proven; their
	// age is not a failure.
	dropped := receipt.Item{Kind: receipt.KindCertificate, Database: "Ops", Name: "Old Cert", Thumbprint: "AA", Format: "pfx"}
	a.storeCopy(dropped.Kind, &dropped, nil, testNow, "old pfx", "")
	a.storeCopy(receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true, Items: []receipt.Item{}}, testNow.Add(90*24*time.Hour), "smk", "")
	a.now = testNow.Add(90*24*time.Hour + time.Hour)
	aud, err := a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: itemHost}})
	if err != nil {
		t.Fatalf("a dropped item's old copies: %v", err)
	}
	var g *AuditedGroup
	for i, x := range aud.Destinations[0].Groups {
		if x.Kind == receipt.KindCertificate {
			g = &aud.Destinations[0].Groups[i]
		}
	}
	if g == nil || g.Name != "Old Cert" || g.Database != "Ops" || g.MaxAge != "none" || g.Stale || len(g.Checked) != 1 || g.Checked[0].Status != receipt.DestVerified {
		t.Fatalf("the dropped certificate's group: %+v", g)
	}
	// Its lock ran out (90 days): a warning, as its copies are not renewed.
	if len(g.Warnings) != 1 || !strings.Contains(g.Warnings[0], "no longer locked") {
		t.Errorf("warnings %v, want the lapsed lock", g.Warnings)
	}
	if len(aud.Destinations[0].Items) != 0 {
		t.Errorf("items %+v, want none (the inventory is empty)", aud.Destinations[0].Items)
	}
}

func TestVerifyNeedsTheServiceMasterKeyBesideItems(t *testing.T) {
	a := hierArchive(t)
	a.storeCopy(hrDMK.Kind, &hrDMK, nil, testNow, "hr key", "")
	a.now = testNow.Add(time.Hour)
	aud, err := a.verify(VerifyOptions{Filter: Filter{Host: itemHost}})
	if exitcode.Code(err) != exitcode.Stale {
		t.Fatalf("item copies without a service master key copy: err %v, want exit 8", err)
	}
	g := aud.Destinations[0].Groups[0]
	if g.Kind != receipt.KindServiceMasterKey || !g.Stale || g.Newest != nil || g.Instance != itemInst {
		t.Errorf("first group %+v, want the missing service master key of %s", g, itemInst)
	}

	t.Run("fleet mode lists the items' ages without judging them", func(t *testing.T) {
		a.storeCopy(receipt.KindServiceMasterKey, nil, nil, testNow.Add(60*24*time.Hour), "smk", "")
		a.now = testNow.Add(60*24*time.Hour + time.Hour)
		aud, err := a.verify(VerifyOptions{Destination: memName, AllHosts: true})
		if err != nil {
			t.Fatalf("fleet: %v", err)
		}
		var got []string
		for _, g := range aud.Destinations[0].Groups {
			got = append(got, g.Kind+"="+g.Status+"/"+g.MaxAge)
			if g.Kind == receipt.KindDatabaseMasterKey && (g.Newest == nil || g.NewestAgeSeconds < 60*24*3600) {
				t.Errorf("HR's key age %v", g.NewestAgeSeconds)
			}
		}
		if want := "database-master-key=ok/none service-master-key=ok/"; strings.Join(got, " ") != want {
			t.Errorf("groups %v, want %s", got, want)
		}
	})
}

func mustOpen(t *testing.T, a *archive, key string) io.ReadCloser {
	t.Helper()
	rc, err := a.mem.Open(testContext(t), key, "")
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func sha256Of(b []byte) []byte { return newKeyFile("", b).sha256[:] }

func TestListShowsAndFiltersItemCopies(t *testing.T) {
	a := hierArchive(t)
	odd := receipt.Item{Kind: receipt.KindCertificate, Database: "Sales Db", Name: "Cert/1", Thumbprint: "BB", Format: "pfx"}
	a.fullBackup(testNow, masterDMK, hrDMK, tdeCert, odd)
	var got []string
	for _, c := range a.list(ListOptions{Destination: memName}) {
		got = append(got, c.Kind+":"+c.ItemName())
	}
	want := "certificate:Sales Db/Cert/1 certificate:master/TDECert database-master-key:HR database-master-key:master service-master-key:"
	if strings.Join(got, " ") != want {
		t.Errorf("list: %v, want %s (the .pvk and receipts are not copies)", got, want)
	}
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{Kind: receipt.KindCertificate}, "Sales Db/Cert/1 master/TDECert"},
		{Filter{Kind: receipt.KindDatabaseMasterKey, Database: "hr"}, "HR"},
		{Filter{Database: "master"}, "master/TDECert master"},
		{Filter{Name: "cert/1"}, "Sales Db/Cert/1"},
		{Filter{Kind: receipt.KindServiceMasterKey}, ""},
	} {
		var names []string
		for _, c := range a.list(ListOptions{Destination: memName, Filter: tc.f}) {
			names = append(names, c.ItemName())
		}
		if strings.Join(names, " ") != tc.want {
			t.Errorf("filter %+v: %q, want %q", tc.f, strings.Join(names, " "), tc.want)
		}
	}
	if err := CheckKind("smk"); exitcode.Code(err) != exitcode.Usage {
		t.Errorf("--kind smk: %v, want exit 2", err)
	}
}

// secondsListing lists times in whole seconds, as S3 services do.
type secondsListing struct{ storage.Backend }

func (s secondsListing) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	return s.Backend.List(ctx, prefix, func(o storage.Object) error {
		o.LastModified = o.LastModified.Truncate(time.Second)
		return fn(o)
	})
}

func TestVerifyTakesTheLastReceiptOfOneSecondAsTheNewest(t *testing.T) {
	a := hierArchive(t)
	a.runner.Destinations = a.runner.Destinations[:1]
	a.runner.Destinations[0].Backend = secondsListing{a.mem}
	// Two runs in one second: the first archived HR's key, the second
	// the regenerated one. The listing cannot tell them apart by time,
	// and the first's name sorts after the second's.
	regen := hrDMK
	regen.KeyGUID = "0A1B2C3D-0000-4000-8000-0000000000EE"
	nextRunID = "ffffffff00000001"
	a.storeCopy(hrDMK.Kind, &hrDMK, nil, testNow.Add(100*time.Millisecond), "hr key", "")
	nextRunID = "0000000000000002"
	a.storeCopy(regen.Kind, &regen, nil, testNow.Add(900*time.Millisecond), "regenerated hr key", "")
	a.storeCopy(receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true, Items: []receipt.Item{regen}}, testNow.Add(950*time.Millisecond), "smk", "")
	a.now = testNow.Add(time.Hour)
	aud, err := a.verify(VerifyOptions{Filter: Filter{Host: itemHost}})
	if err != nil {
		t.Fatalf("the regenerated key was archived last: %v", err)
	}
	if it := aud.Destinations[0].Items[0]; it.Status != ItemOK || it.Newest == nil || it.Newest.RunID != "0000000000000002" {
		t.Errorf("HR: %+v, want the second run's copy", it)
	}
}

func TestVerifyKeepsTheLastInventoryWhenALaterRunCouldNotReadIt(t *testing.T) {
	a := hierArchive(t)
	// A run recorded TDECert but could not archive it; the next run could
	// not read the inventory at all (its service master key copy records
	// none). TDECert must still be required.
	a.storeCopy(masterDMK.Kind, &masterDMK, nil, testNow, "master dmk", "")
	a.storeCopy(receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true, Items: []receipt.Item{masterDMK, tdeCert}}, testNow, "smk", "")
	a.storeCopy(receipt.KindServiceMasterKey, nil, nil, testNow.Add(time.Hour), "smk2", "")
	a.now = testNow.Add(2 * time.Hour)
	aud, err := a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: itemHost}})
	if exitcode.Code(err) != exitcode.Stale {
		t.Fatalf("err %v, want exit 8: the TDE certificate of the last inventory has no copy", err)
	}
	if it := itemsOf(t, aud, memName)["certificate master/TDECert"]; it.Status != ItemMissing {
		t.Errorf("TDECert %+v, want missing", it)
	}
	var warned bool
	for _, g := range aud.Destinations[0].Groups {
		for _, w := range g.Warnings {
			warned = warned || strings.Contains(w, "records no inventory of the hierarchy: the inventory of run")
		}
	}
	if !warned {
		t.Errorf("no warning says an older inventory is used: %+v", aud.Destinations[0].Groups)
	}

	t.Run("with the hierarchy off, no inventory is required", func(t *testing.T) {
		a.runner.Config.Hierarchy.Enabled = false
		defer func() { a.runner.Config.Hierarchy.Enabled = true }()
		if _, err := a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: itemHost}}); exitcode.Code(err) == exitcode.Stale {
			t.Errorf("hierarchy off: err %v, want the older inventory not to count", err)
		}
	})
}

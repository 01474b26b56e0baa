package main_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/sealed"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// Black-box tests of backup below the service master key: every selected
// database master key and certificate archived as a copy of its own, with
// its own stored receipt, and again only when it changed.

// hierBackup runs backup --json and returns the exit code and receipt.
func hierBackup(t *testing.T, e *env, args ...string) (result, receipt) {
	t.Helper()
	r := e.run(append([]string{"backup", "--config", e.cfgPath, "--json"}, args...)...)
	return r, parseReceipt(t, r.stdout)
}

// itemKey names an item in tests: kind/database/name.
func itemKey(it hierItem) string { return it.Kind + "/" + it.Database + "/" + it.Name }

// byItem indexes a receipt's items.
func byItem(rec receipt) map[string]hierItemResult {
	m := map[string]hierItemResult{}
	for _, it := range rec.Items {
		m[itemKey(it.hierItem)] = it
	}
	return m
}

const (
	dmkMaster = "database-master-key/master/##MS_DatabaseMasterKey##"
	dmkHR     = "database-master-key/HR/##MS_DatabaseMasterKey##"
	dmkOps    = "database-master-key/Ops/##MS_DatabaseMasterKey##"
	certTDE   = "certificate/master/TDECert"
	certPay   = "certificate/HR/Payroll"
	certSign  = "certificate/HR/Signing"
	certOps   = "certificate/Ops/OpsCert"
	certPart  = "certificate/Ops/Partner"
)

// hierSelected are the fixture's items that backup escrows, in inventory
// order (databases by name, each one's master key, then its certificates
// by name).
var hierSelected = []string{dmkHR, certPay, certSign, dmkMaster, certTDE, dmkOps, certOps}

// itemFolder is the folder of an item's copies under the file destination.
func itemFolder(e *env, key string) string {
	kind, rest, _ := strings.Cut(key, "/")
	db, name, _ := strings.Cut(rest, "/")
	if kind == "database-master-key" {
		return filepath.Join(e.usbDir, "SQLHOST01", "INST1", kind, db)
	}
	return filepath.Join(e.usbDir, "SQLHOST01", "INST1", kind, db, name)
}

// checkArchived checks an archived item: one verified copy at the item's
// folder, its bytes as recorded, its stored receipt (strict) naming the
// item, and for a .cer its .pvk proven beside it. It returns the stored
// receipt.
func checkArchived(t *testing.T, e *env, key string, it hierItemResult) storedReceipt {
	t.Helper()
	if it.Action != "archived" || it.File == nil || len(it.Destinations) != 1 || it.Error != nil {
		t.Fatalf("%s: %+v", key, it)
	}
	d := it.Destinations[0]
	if d.Status != "verified" || !d.ReadBack || !d.Checksum.Match || d.Checksum.Local != it.File.SHA256 {
		t.Fatalf("%s: destination %+v", key, d)
	}
	if want := filepath.Join(itemFolder(e, key), it.File.Name); d.Location != want {
		t.Fatalf("%s: copy at %s, want %s", key, d.Location, want)
	}
	data, err := os.ReadFile(d.Location)
	if err != nil || sha(data) != it.File.SHA256 || int64(len(data)) != it.File.Bytes {
		t.Fatalf("%s: the stored copy is not what the receipt records: %v", key, err)
	}
	doc, err := os.ReadFile(d.Location + ".receipt.json")
	if err != nil {
		t.Fatal(err)
	}
	st := parseStored(t, string(doc))
	if st.Kind != it.Kind || st.Item == nil || itemKey(*st.Item) != key || st.File == nil || st.File.SHA256 != it.File.SHA256 || st.Inventory != nil {
		t.Fatalf("%s: stored receipt %s", key, doc)
	}
	if st.Item.Kind == "certificate" && st.Item.Thumbprint != it.Thumbprint || st.Item.KeyGUID != it.KeyGUID {
		t.Fatalf("%s: the stored receipt's item differs from the live one: %+v", key, st.Item)
	}
	return st
}

func TestHierBackupFirstRunArchivesEveryItem(t *testing.T) {
	e := newHierEnv(t, "")
	e.writeConfig(hierPasswords)
	// An export an earlier failed run kept: reported, never removed.
	earlier := filepath.Join(e.keyDir, "HR-Payroll-20261101T000000Z-00000000.pfx")
	if err := os.WriteFile(earlier, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, rec := hierBackup(t, e, "--log-level", "debug")
	if r.code != 0 || rec.Status != "ok" || rec.Error != nil {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// The top-level fields describe the service master key's copy.
	if rec.Kind != "service-master-key" || rec.Item != nil || !strings.Contains(rec.File.Name, "-servicemasterkey-") || len(rec.Destinations) != 1 {
		t.Fatalf("top-level receipt: %+v", rec)
	}
	items := byItem(rec)
	var order []string
	for _, it := range rec.Items {
		order = append(order, itemKey(it.hierItem))
	}
	// Every item, in inventory order; SQL Server's own certificates are
	// listed as never escrowed.
	var escrowed []string
	for _, k := range order {
		if !strings.Contains(k, "##MS_") || strings.HasPrefix(k, "database-master-key") {
			escrowed = append(escrowed, k)
		}
	}
	if want := append(slices.Clone(hierSelected), certPart); !slices.Equal(escrowed, want) {
		t.Fatalf("items %v, want %v (and ##MS_ certificates)", order, want)
	}
	for _, k := range hierSelected {
		checkArchived(t, e, k, items[k])
		if it := items[k]; it.Reason != "new" || it.Format != "" && it.Format != "pfx" {
			t.Errorf("%s: reason %q format %q", k, it.Reason, it.Format)
		}
	}
	if p := items[certPart]; p.Action != "excluded" || !strings.Contains(p.Reason, "no private key") || p.File != nil {
		t.Errorf("Partner: %+v", p)
	}
	for k, it := range items {
		if strings.Contains(k, "##MS_") && it.Kind == "certificate" && (it.Action != "excluded" || it.File != nil) {
			t.Errorf("%s: %+v", k, it)
		}
	}
	if tde := items[certTDE]; !slices.Equal(tde.TDE, []string{"Sales"}) || !strings.HasSuffix(tde.File.Name, ".pfx") || tde.File.PrivateKey != nil {
		t.Errorf("TDECert: %+v", tde)
	}
	// No certificate folder holds anything but .pfx copies and receipts,
	// and nothing was written for Partner or an ##MS_ certificate.
	certs, _ := os.ReadDir(filepath.Join(e.usbDir, "SQLHOST01", "INST1", "certificate", "Ops"))
	if len(certs) != 1 || certs[0].Name() != "OpsCert" {
		t.Errorf("Ops certificate folders: %v", certs)
	}
	if _, err := os.Stat(filepath.Join(e.usbDir, "SQLHOST01", "INST1", "certificate", "master")); err != nil {
		t.Fatal(err)
	}
	if ms, _ := os.ReadDir(filepath.Join(e.usbDir, "SQLHOST01", "INST1", "certificate", "master")); len(ms) != 1 {
		t.Errorf("master certificate folders: %v", ms)
	}
	// The service master key's stored receipt carries the inventory.
	doc, err := os.ReadFile(rec.Destinations[0].Location + ".receipt.json")
	if err != nil {
		t.Fatal(err)
	}
	smk := parseStored(t, string(doc))
	if smk.Inventory == nil || !smk.Inventory.Complete || len(smk.Inventory.Items) != len(hierSelected) || smk.Item != nil || len(smk.Items) != 0 {
		t.Fatalf("the service master key's stored receipt: %s", doc)
	}
	for i, it := range smk.Inventory.Items {
		if itemKey(it) != hierSelected[i] {
			t.Errorf("inventory item %d is %s, want %s", i, itemKey(it), hierSelected[i])
		}
	}
	if rec.Inventory == nil || len(rec.Inventory.Items) != len(hierSelected) {
		t.Errorf("run receipt inventory: %+v", rec.Inventory)
	}
	// The key folder holds only the earlier export again: every export
	// was removed once proven.
	if left := files(t, e.keyDir); !slices.Equal(left, []string{earlier}) {
		t.Errorf("key folder holds %v", left)
	}
	if !strings.Contains(r.stderr, "exports kept by earlier failed runs") || !strings.Contains(r.stderr, filepath.Base(earlier)) {
		t.Errorf("the earlier export is not reported:\n%s", r.stderr)
	}
	if n := strings.Count(r.stderr, "hierarchy item archived"); n != len(hierSelected) {
		t.Errorf("%d log lines for archived items, want %d:\n%s", n, len(hierSelected), r.stderr)
	}
	// The key passwords' variables are configuration, not unknown overrides.
	if strings.Contains(r.stderr, "matches no configuration key") {
		t.Errorf("a key password's variable is reported unknown:\n%s", r.stderr)
	}
}

// checkActions checks every selected item's action, and for an unchanged
// one its newest copy (the run and the copy first archived), and returns
// the run receipt's items.
func checkActions(t *testing.T, rec receipt, want map[string]string) map[string]hierItemResult {
	t.Helper()
	items := byItem(rec)
	for _, k := range hierSelected {
		w := want[k]
		if w == "" {
			w = "unchanged"
		}
		it, ok := items[k]
		if !ok {
			t.Errorf("%s is not in the receipt", k)
			continue
		}
		if it.Action != w {
			t.Errorf("%s: action %s (%s), want %s", k, it.Action, it.Reason, w)
		}
		if it.Action == "unchanged" && (it.Newest == nil || it.File != nil || len(it.Destinations) != 0 || !strings.HasPrefix(it.Reason, "unchanged since run ")) {
			t.Errorf("%s: unchanged without its newest copy: %+v", k, it)
		}
	}
	return items
}

// objects lists the files under the file destination.
func objects(t *testing.T, e *env) []string {
	t.Helper()
	var out []string
	for _, f := range files(t, e.usbDir) {
		rel, _ := filepath.Rel(e.usbDir, f)
		out = append(out, filepath.ToSlash(rel))
	}
	slices.Sort(out)
	return out
}

// newObjects are the objects in after that are not in before.
func newObjects(before, after []string) []string {
	var out []string
	for _, o := range after {
		if !slices.Contains(before, o) {
			out = append(out, o)
		}
	}
	return out
}

// smkOnly reports whether every new object is the service master key's
// copy or its receipt.
func smkOnly(objs []string) bool {
	for _, o := range objs {
		if !strings.Contains(o, "/service-master-key/") {
			return false
		}
	}
	return len(objs) == 2
}

func TestHierBackupArchivesOnlyWhatChanged(t *testing.T) {
	e := newHierEnv(t, "")
	e.writeConfig(hierPasswords)
	r, first := hierBackup(t, e)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	firstItems := byItem(first)

	t.Run("the second run archives none", func(t *testing.T) {
		before := objects(t, e)
		r, rec := hierBackup(t, e)
		if r.code != 0 || rec.Status != "ok" {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		items := checkActions(t, rec, nil)
		for _, k := range hierSelected {
			n, f := items[k].Newest, firstItems[k]
			if n == nil || n.RunID != first.RunID || len(n.Destinations) != 1 || n.Destinations[0].Name != "usb" ||
				n.Destinations[0].Location != f.Destinations[0].Location || n.StoredAt.IsZero() {
				t.Errorf("%s: newest copy %+v, want the first run's %s", k, n, f.Destinations[0].Location)
			}
		}
		if added := newObjects(before, objects(t, e)); !smkOnly(added) {
			t.Errorf("the second run wrote %v", added)
		}
		if strings.Count(r.stderr, "hierarchy item unchanged") != len(hierSelected) {
			t.Errorf("want one log line per unchanged item:\n%s", r.stderr)
		}
		// The text receipt has one short line per item.
		tr := e.run("backup", "--config", e.cfgPath)
		if tr.code != 0 || !strings.Contains(tr.stdout, "database master key HR: unchanged (unchanged since run "+first.RunID) ||
			!strings.Contains(tr.stdout, "certificate Ops/Partner: excluded (no private key") {
			t.Errorf("text receipt:\n%s", tr.stdout)
		}
	})

	t.Run("a regenerated master key is archived, nothing else", func(t *testing.T) {
		if err := e.srv.RegenerateMasterKey("HR"); err != nil {
			t.Fatal(err)
		}
		before := objects(t, e)
		r, rec := hierBackup(t, e)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		items := checkActions(t, rec, map[string]string{dmkHR: "archived"})
		if hr := items[dmkHR]; !strings.HasPrefix(hr.Reason, "changed: modify_date ") {
			t.Errorf("HR master key: reason %q", hr.Reason)
		}
		st := checkArchived(t, e, dmkHR, items[dmkHR])
		if st.Item.Modified == nil || st.Item.Modified.Equal(*firstItems[dmkHR].Modified) {
			t.Errorf("the new copy records the old modify_date: %+v", st.Item)
		}
		added := newObjects(before, objects(t, e))
		if len(added) != 4 || !slices.ContainsFunc(added, func(o string) bool { return strings.Contains(o, "/database-master-key/HR/HR-masterkey-") }) {
			t.Errorf("the run wrote %v", added)
		}
	})

	t.Run("a new certificate is archived, nothing else", func(t *testing.T) {
		if err := e.srv.AddCertificate("Ops", mssqltest.Certificate{Name: "Backups"}); err != nil {
			t.Fatal(err)
		}
		before := objects(t, e)
		r, rec := hierBackup(t, e)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		items := checkActions(t, rec, nil)
		const k = "certificate/Ops/Backups"
		if it := items[k]; it.Reason != "new" {
			t.Errorf("Backups: %+v", it)
		}
		checkArchived(t, e, k, items[k])
		if added := newObjects(before, objects(t, e)); len(added) != 4 {
			t.Errorf("the run wrote %v", added)
		}
	})
}

func TestHierBackupExcludedDatabaseIsSkipped(t *testing.T) {
	e := newHierEnv(t, "")
	e.writeConfig(hierPasswords + "  databases:\n    exclude: [ops]\n")
	r, rec := hierBackup(t, e)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	items := byItem(rec)
	for _, k := range []string{dmkOps, certOps} {
		if it := items[k]; it.Action != "excluded" || !strings.Contains(it.Reason, `hierarchy.databases.exclude "ops"`) || it.File != nil {
			t.Errorf("%s: %+v", k, it)
		}
	}
	for _, k := range []string{dmkHR, certPay, certSign, dmkMaster, certTDE} {
		checkArchived(t, e, k, items[k])
	}
	if _, err := os.Stat(filepath.Join(e.usbDir, "SQLHOST01", "INST1", "database-master-key", "Ops")); !os.IsNotExist(err) {
		t.Errorf("an object was written for the excluded database: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.usbDir, "SQLHOST01", "INST1", "certificate", "Ops")); !os.IsNotExist(err) {
		t.Errorf("an object was written for the excluded database: %v", err)
	}
	if rec.Inventory == nil || len(rec.Inventory.Items) != 5 {
		t.Errorf("the inventory records the selection: %+v", rec.Inventory)
	}
	if !strings.Contains(r.stderr, "hierarchy item excluded") {
		t.Errorf("no log line for the excluded items:\n%s", r.stderr)
	}
}

func TestHierBackupKeyPasswords(t *testing.T) {
	t.Run("missing: those items fail with exit 2, the rest is archived", func(t *testing.T) {
		e := newHierEnv(t, "")
		r, rec := hierBackup(t, e)
		if r.code != 2 || rec.Status != "failed" || rec.ExitCode != 2 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		// The service master key's copy is proven; the failure is the
		// hierarchy's and says so.
		if rec.Destinations[0].Status != "verified" || rec.Error == nil || rec.Error.Code != 2 ||
			!strings.HasPrefix(rec.Error.Message, "3 of 7 hierarchy items failed: database master key HR is not protected by the service master key") {
			t.Fatalf("receipt: %+v %+v", rec.Destinations, rec.Error)
		}
		items := byItem(rec)
		for k, want := range map[string]string{
			dmkHR:    "- database: HR, password_env:",
			certPay:  "database HR's master key",
			certSign: "- database: HR, certificate: Signing, password_env:",
		} {
			it := items[k]
			if it.Action != "failed" || it.Error == nil || it.Error.Code != 2 || !strings.Contains(it.Error.Message, want) ||
				!strings.Contains(it.Error.Message, "hierarchy.passwords") || it.File != nil {
				t.Errorf("%s: %+v %+v", k, it, it.Error)
			}
		}
		for _, k := range []string{dmkMaster, certTDE, dmkOps, certOps} {
			checkArchived(t, e, k, items[k])
		}
		// Nothing half-written: no SQL ran for them, nothing is in the key
		// folder or at the destination.
		count := map[mssqltest.StatementKind]int{}
		for _, k := range e.srv.Statements() {
			count[k]++
		}
		if count[mssqltest.KindBackupMasterKey] != 2 || count[mssqltest.KindBackupCertificate] != 2 || count[mssqltest.KindOpenMasterKey] != 0 {
			t.Errorf("SQL ran for a key without its password: %v", count)
		}
		if left := files(t, e.keyDir); len(left) != 0 {
			t.Errorf("key folder: %v", left)
		}
		if objs := objects(t, e); slices.ContainsFunc(objs, func(o string) bool { return strings.Contains(o, "/HR/") }) {
			t.Errorf("objects for HR: %v", objs)
		}
		if strings.Count(r.stderr, "hierarchy item failed") != 3 {
			t.Errorf("want one log line per failed item:\n%s", r.stderr)
		}
	})

	t.Run("wrong: SQL Server refuses those items (exit 3), the rest is archived", func(t *testing.T) {
		e := newHierEnv(t, "")
		const wrong = "Wr0ng-Dmk-Pa55!"
		e.vars["KEYESCROW_HR_DMK_PASSWORD"] = wrong
		e.secrets = append(e.secrets, wrong)
		e.writeConfig(hierPasswords)
		r, rec := hierBackup(t, e)
		if r.code != 3 || rec.ExitCode != 3 || rec.Error == nil || !strings.Contains(rec.Error.Message, "2 of 7 hierarchy items failed") {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		items := byItem(rec)
		for _, k := range []string{dmkHR, certPay} {
			if it := items[k]; it.Action != "failed" || it.Error == nil || it.Error.Code != 3 || !strings.Contains(it.Error.Message, "15313") {
				t.Errorf("%s: %+v %+v", k, it, it.Error)
			}
		}
		for _, k := range []string{certSign, dmkMaster, certTDE, dmkOps, certOps} {
			checkArchived(t, e, k, items[k])
		}
		if left := files(t, e.keyDir); len(left) != 0 {
			t.Errorf("key folder: %v", left)
		}
	})
}

func TestHierBackupRefresh(t *testing.T) {
	e := newHierEnv(t, "")
	e.writeConfig(hierPasswords + "  refresh: 2s\n")
	if r, _ := hierBackup(t, e); r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	time.Sleep(2100 * time.Millisecond)
	r, rec := hierBackup(t, e)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	items := byItem(rec)
	for _, k := range hierSelected {
		it := items[k]
		if !strings.HasPrefix(it.Reason, "refresh: newest copy is ") || !strings.HasSuffix(it.Reason, "old (hierarchy.refresh 2s)") {
			t.Errorf("%s: reason %q", k, it.Reason)
		}
		checkArchived(t, e, k, it)
	}
}

func TestHierBackupCertificateFormats(t *testing.T) {
	t.Run("SQL Server 2019: .cer and its .pvk, both proven", func(t *testing.T) {
		e := newHierEnv(t, "15.0.4355.3")
		e.writeConfig(hierPasswords)
		r, rec := hierBackup(t, e)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		items := byItem(rec)
		for _, k := range []string{certTDE, certPay, certSign, certOps} {
			it := items[k]
			st := checkArchived(t, e, k, it)
			pk, d := it.File.PrivateKey, it.Destinations[0]
			if it.Format != "pvk" || !strings.HasSuffix(it.File.Name, ".cer") || pk == nil || pk.Name != strings.TrimSuffix(it.File.Name, ".cer")+".pvk" {
				t.Fatalf("%s: file %+v", k, it.File)
			}
			if d.PrivateKey == nil || !d.PrivateKey.ReadBack || d.PrivateKey.SHA256 != pk.SHA256 || d.PrivateKey.Location != strings.TrimSuffix(d.Location, ".cer")+".pvk" {
				t.Fatalf("%s: destination private key %+v", k, d.PrivateKey)
			}
			data, err := os.ReadFile(d.PrivateKey.Location)
			if err != nil || sha(data) != pk.SHA256 || int64(len(data)) != pk.Bytes {
				t.Fatalf("%s: the stored .pvk: %v", k, err)
			}
			if st.File.PrivateKey == nil || st.File.PrivateKey.SHA256 != pk.SHA256 || st.Destinations[0].PrivateKey == nil {
				t.Fatalf("%s: the stored receipt does not record the .pvk", k)
			}
		}
		if left := files(t, e.keyDir); len(left) != 0 {
			t.Errorf("key folder: %v", left)
		}
		// The second run finds both files of every certificate.
		r, rec = hierBackup(t, e)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		checkActions(t, rec, nil)
	})
	t.Run("SQL Server 2022: one .pfx", func(t *testing.T) {
		e := newHierEnv(t, "16.0.4135.4")
		e.writeConfig(hierPasswords)
		r, rec := hierBackup(t, e)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		for _, k := range []string{certTDE, certPay, certSign, certOps} {
			it := byItem(rec)[k]
			checkArchived(t, e, k, it)
			if it.Format != "pfx" || !strings.HasSuffix(it.File.Name, ".pfx") || it.File.PrivateKey != nil || it.Destinations[0].PrivateKey != nil {
				t.Errorf("%s: %+v", k, it.File)
			}
		}
	})
}

func TestHierBackupDisabled(t *testing.T) {
	e := newHierEnv(t, "")
	e.writeConfig("hierarchy:\n  enabled: false\n")
	r, rec := hierBackup(t, e)
	if r.code != 0 || rec.Inventory != nil || len(rec.Items) != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	doc, err := os.ReadFile(rec.Destinations[0].Location + ".receipt.json")
	if err != nil {
		t.Fatal(err)
	}
	if st := parseStored(t, string(doc)); st.Inventory != nil {
		t.Errorf("stored receipt: %s", doc)
	}
	if objs := objects(t, e); !smkOnly(objs) {
		t.Errorf("objects: %v", objs)
	}
	if slices.Contains(e.srv.Statements(), mssqltest.KindCatalog) {
		t.Errorf("the inventory was read: %v", e.srv.Statements())
	}
}

func TestHierBackupInventoryDenied(t *testing.T) {
	e := newHierEnv(t, "")
	e.writeConfig(hierPasswords)
	e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindCatalog, Error: &mssqltest.Error{Number: 300, Class: 14, State: 1,
		Message: "VIEW SERVER STATE permission was denied on object 'server', database 'master'."}})
	r, rec := hierBackup(t, e)
	if r.code != 3 || rec.ExitCode != 3 || rec.Error == nil || rec.Error.Code != 3 || !strings.Contains(rec.Error.Message, "the hierarchy was not escrowed") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// The service master key is still archived and proven.
	if d := rec.Destinations[0]; d.Status != "verified" || !d.ReadBack {
		t.Fatalf("destination: %+v", d)
	}
	if rec.Inventory != nil || len(rec.Items) != 0 || !smkOnly(objects(t, e)) {
		t.Errorf("receipt %+v, objects %v", rec.Inventory, objects(t, e))
	}
	if !strings.Contains(r.stderr, "the hierarchy was not escrowed") || !strings.Contains(r.stderr, "300") {
		t.Errorf("the log does not say why:\n%s", r.stderr)
	}
}

// TestHierBackupS3ObjectLock runs the hierarchy on versitygw with Object
// Lock: every item's copy (and its stored receipt) is a locked version, and
// change detection works through the S3 listing.
func TestHierBackupS3ObjectLock(t *testing.T) {
	srv := s3srv.Start(t, s3srv.VersityGW, s3Region)
	e := &s3Env{env: newHierEnv(t, "15.0.4355.3"), srv: srv, proxy: s3srv.NewProxy(t, srv), bucket: srv.NewBucket(t, lockBucket())}
	e.vars["AWS_ACCESS_KEY_ID"] = srv.AccessKey
	e.vars["AWS_SECRET_ACCESS_KEY"] = srv.SecretKey
	e.secrets = append(e.secrets, srv.SecretKey)
	e.writeS3(s3Dest{extra: hierPasswords})
	start := time.Now()
	r, rec := hierBackup(t, e.env)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	admin, ctx := srv.Admin(""), context.Background()
	items := byItem(rec)
	for _, k := range hierSelected {
		it := items[k]
		if it.Action != "archived" || len(it.Destinations) != 1 {
			t.Fatalf("%s: %+v", k, it)
		}
		d := it.Destinations[0]
		kind, rest, _ := strings.Cut(k, "/")
		db, name, _ := strings.Cut(rest, "/")
		folder := "sqlkeys/SQLHOST01/INST1/" + kind + "/" + db + "/"
		if kind == "certificate" {
			folder += name + "/"
		}
		if d.Status != "verified" || d.VersionID == "" || d.Retention == nil || d.Retention.Mode != "COMPLIANCE" ||
			d.Retention.Until.Before(start.Add(24*time.Hour-time.Second)) || d.Location != "s3://"+e.bucket+"/"+folder+it.File.Name {
			t.Fatalf("%s: destination %+v", k, d)
		}
		keys := []string{folder + it.File.Name, folder + it.File.Name + ".receipt.json"}
		if kind == "certificate" {
			if d.PrivateKey == nil || d.PrivateKey.VersionID == "" || d.PrivateKey.Retention == nil {
				t.Fatalf("%s: private key %+v", k, d.PrivateKey)
			}
			keys = append(keys, folder+strings.TrimSuffix(it.File.Name, ".cer")+".pvk")
		}
		for _, key := range keys {
			h, err := admin.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)})
			if err != nil || h.ObjectLockMode != "COMPLIANCE" || aws.ToString(h.VersionId) == "" {
				t.Fatalf("%s: %s is not a locked version: %v %+v", k, key, err, h)
			}
		}
		got, err := admin.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(keys[1])})
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := io.ReadAll(got.Body)
		got.Body.Close()
		if st := parseStored(t, string(doc)); st.Item == nil || itemKey(*st.Item) != k || st.Destinations[0].VersionID != d.VersionID {
			t.Fatalf("%s: stored receipt %s", k, doc)
		}
	}

	before := e.versions()
	sent := len(e.proxy.Requests())
	began := time.Now()
	r, rec = hierBackup(t, e.env)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("a run with %d unchanged items took %v and %d S3 requests (%d for the first run)", len(hierSelected), time.Since(began).Round(time.Millisecond), len(e.proxy.Requests())-sent, sent)
	items = checkActions(t, rec, nil)
	if n := items[dmkHR].Newest; n == nil || n.Destinations[0].VersionID == "" || n.RunID == rec.RunID {
		t.Errorf("HR: newest copy %+v", n)
	}
	if added := newObjects(before, e.versions()); !smkOnly(added) {
		t.Errorf("the second run wrote %v", added)
	}

	// A regenerated key is found changed through the listing.
	if err := e.env.srv.RegenerateMasterKey("Ops"); err != nil {
		t.Fatal(err)
	}
	before = e.versions()
	r, rec = hierBackup(t, e.env)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	items = checkActions(t, rec, map[string]string{dmkOps: "archived"})
	if !strings.HasPrefix(items[dmkOps].Reason, "changed: ") {
		t.Errorf("Ops: reason %q", items[dmkOps].Reason)
	}
	if added := newObjects(before, e.versions()); len(added) != 4 {
		t.Errorf("the third run wrote %v", added)
	}
}

// TestHierBackupSealedPasswords: with backup.seal_to every item's copy gets
// a fresh password of its own, sealed and proven beside it, and the second
// run finds each copy whole (its sealed password included).
func TestHierBackupSealedPasswords(t *testing.T) {
	e := newHierEnv(t, "15.0.4355.3")
	e.writeConfig(hierPasswords)
	idPath, rcpt := newIdentity(t, t.TempDir(), "security-team.txt")
	e.sealTo(rcpt)
	r, rec := hierBackup(t, e)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	idFile, err := os.Open(idPath)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := sealed.ParseIdentities(idFile)
	idFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	items := byItem(rec)
	for _, k := range hierSelected {
		it := items[k]
		st := checkArchived(t, e, k, it)
		sp := it.Destinations[0].SealedPassword
		if st.Password == nil || st.Password.Mode != "sealed" || sp == nil || !sp.ReadBack || sp.Location != it.Destinations[0].Location+".password.age" {
			t.Fatalf("%s: password %+v sealed %+v", k, st.Password, sp)
		}
		if k == certPay && it.Destinations[0].PrivateKey == nil {
			t.Fatalf("%s: no .pvk beside the sealed copy", k)
		}
		blob, err := os.ReadFile(sp.Location)
		if err != nil {
			t.Fatal(err)
		}
		pw, _, err := sealed.Open(blob, sealed.Copy{Name: it.File.Name, Bytes: it.File.Bytes, SHA256: it.File.SHA256}, ids)
		if err != nil {
			t.Fatalf("%s: the sealed password does not open for its copy: %v", k, err)
		}
		if other, dup := seen[pw.Reveal()]; dup {
			t.Fatalf("%s and %s share a password", k, other)
		}
		seen[pw.Reveal()] = k
		e.secrets = append(e.secrets, pw.Reveal())
	}
	if pw := rec.Destinations[0].SealedPassword; pw == nil {
		t.Fatalf("the service master key's copy has no sealed password")
	}
	// The second run finds every copy whole; no generated password shows.
	r, rec = hierBackup(t, e)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	checkActions(t, rec, nil)
}

// TestHierBackupRemote: with backup.remote every item's export is read back
// over the connection and removed from the server once proven; the agent
// writes nothing on its own disk.
func TestHierBackupRemote(t *testing.T) {
	e := newRemoteEnv(t, ciUser, func(c *mssqltest.Config) {
		c.Databases, c.ProductVersion = hierDatabases(), "15.0.4355.3"
	})
	e.vars["KEYESCROW_HR_DMK_PASSWORD"], e.vars["KEYESCROW_SIGNING_KEY_PASSWORD"] = hrDMKPassword, payrollKeyPW
	e.secrets = append(e.secrets, masterDMKPassword, hrDMKPassword, payrollKeyPW, "0ps-Dmk-Pa55!")
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cfgPath, append(cfg, hierPasswords...), 0o600); err != nil {
		t.Fatal(err)
	}
	r, rec := hierBackup(t, e)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	items := byItem(rec)
	for _, k := range hierSelected {
		checkArchived(t, e, k, items[k])
	}
	if left := files(t, e.keyDir); len(left) != 0 {
		t.Errorf("exports are still on the server's disk: %v", left)
	}
	if got := e.agentFiles(); !slices.Equal(got, []string{e.cfgPath}) {
		t.Errorf("the agent wrote on its own disk: %v", got)
	}
	count := map[mssqltest.StatementKind]int{}
	for _, k := range e.srv.Statements() {
		count[k]++
	}
	// Each file read back and removed: the SMK, 3 master keys, 4
	// certificates with their .pvk.
	if count[mssqltest.KindReadFile] < 12 || count[mssqltest.KindDeleteFiles] != 12 {
		t.Errorf("statements: %v", count)
	}
}

// TestHierCheck: check reads the inventory as backup will and names the
// keys whose password is needed and not configured (exit 2); it writes
// nothing.
func TestHierCheck(t *testing.T) {
	type report struct {
		SQLServer struct {
			Hierarchy *struct {
				Status           string   `json:"status"`
				Items            int      `json:"items"`
				Excluded         int      `json:"excluded"`
				MissingPasswords []string `json:"missing_passwords"`
				Error            *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			} `json:"hierarchy"`
		} `json:"sqlserver"`
	}
	parse := func(t *testing.T, r result) report {
		t.Helper()
		var rep report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.SQLServer.Hierarchy == nil {
			t.Fatalf("check report: %v\n%s\n%s", err, r.stdout, r.stderr)
		}
		return rep
	}
	e := newHierEnv(t, "")
	r := e.run("check", "--config", e.cfgPath, "--json")
	h := parse(t, r).SQLServer.Hierarchy
	if r.code != 2 || h.Status != "failed" || len(h.MissingPasswords) != 3 || h.Error == nil || h.Error.Code != 2 ||
		!strings.Contains(h.MissingPasswords[0], "database master key HR") || !strings.Contains(h.MissingPasswords[2], "certificate: Signing") {
		t.Fatalf("exit %d %+v\n%s", r.code, h, r.stderr)
	}
	e.writeConfig(hierPasswords + "  databases:\n    exclude: [Ops]\n")
	r = e.run("check", "--config", e.cfgPath, "--json")
	if h := parse(t, r).SQLServer.Hierarchy; r.code != 0 || h.Status != "ok" || h.Items != 5 || h.Excluded != 2 || len(h.MissingPasswords) != 0 {
		t.Fatalf("exit %d %+v\n%s", r.code, h, r.stderr)
	}
	if tr := e.run("check", "--config", e.cfgPath); tr.code != 0 || !strings.Contains(tr.stdout, "hierarchy: ok items=5 excluded=2") {
		t.Fatalf("text check:\n%s", tr.stdout)
	}
	e.srv.Inject(mssqltest.Fault{Kind: mssqltest.KindCatalog, Error: &mssqltest.Error{Number: 300, Class: 14, State: 1,
		Message: "VIEW SERVER STATE permission was denied on object 'server', database 'master'."}})
	r = e.run("check", "--config", e.cfgPath, "--json")
	if h := parse(t, r).SQLServer.Hierarchy; r.code != 3 || h.Error == nil || !strings.Contains(h.Error.Message, "300") {
		t.Fatalf("exit %d %+v\n%s", r.code, h, r.stderr)
	}
	if objs := objects(t, e); len(objs) != 0 {
		t.Errorf("check wrote %v", objs)
	}
}

// TestHierBackupOfflineDatabase: an offline database's keys cannot be
// read. The run escrows everything else, records the database in the
// inventory's problems (complete: false) and warns; it does not fail, so
// a database kept offline on purpose does not fail every run (verify and
// inventory report the incomplete inventory).
func TestHierBackupOfflineDatabase(t *testing.T) {
	dbs := append(hierDatabases(), mssqltest.Database{Name: "Archive", Offline: true, MasterKey: &mssqltest.MasterKey{Password: "Arch1ve-Dmk-Pa55"}})
	e := newEnv(t, mssqltest.Config{Databases: dbs})
	e.vars["KEYESCROW_HR_DMK_PASSWORD"], e.vars["KEYESCROW_SIGNING_KEY_PASSWORD"] = hrDMKPassword, payrollKeyPW
	e.secrets = append(e.secrets, masterDMKPassword, hrDMKPassword, payrollKeyPW, "0ps-Dmk-Pa55!", "Arch1ve-Dmk-Pa55")
	e.writeConfig(hierPasswords)
	r, rec := hierBackup(t, e)
	if r.code != 0 || rec.Status != "ok" {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	inv := rec.Inventory
	if inv == nil || inv.Complete || len(inv.Problems) != 1 || inv.Problems[0].Database != "Archive" || !strings.Contains(inv.Problems[0].Message, "OFFLINE") {
		t.Fatalf("inventory %+v", inv)
	}
	doc, err := os.ReadFile(rec.Destinations[0].Location + ".receipt.json")
	if err != nil {
		t.Fatal(err)
	}
	if st := parseStored(t, string(doc)); st.Inventory == nil || st.Inventory.Complete || len(st.Inventory.Problems) != 1 {
		t.Errorf("the stored receipt's inventory: %s", doc)
	}
	items := byItem(rec)
	for _, k := range hierSelected {
		checkArchived(t, e, k, items[k])
	}
	if !strings.Contains(r.stderr, "level=WARN") || !strings.Contains(r.stderr, "database=Archive") {
		t.Errorf("no warning for the offline database:\n%s", r.stderr)
	}
}

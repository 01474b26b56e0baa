package main_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
	// The key folder is empty again: every export was removed once proven.
	if left := files(t, e.keyDir); len(left) != 0 {
		t.Errorf("key folder holds %v", left)
	}
	for _, k := range hierSelected {
		if !strings.Contains(r.stderr, "hierarchy item archived") {
			t.Errorf("no log line for %s", k)
		}
	}
}

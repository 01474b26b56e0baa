package main_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// Black-box tests of the hierarchy's read side: inventory, verify per item,
// list of item copies, and the metrics verify writes per item.

// auditItem is an item of `verify --json` (destinations[].items[]).
type auditItem struct {
	Host     string `json:"host"`
	Instance string `json:"instance"`
	hierItem
	Status string `json:"status"`
	Newest *struct {
		Time      time.Time `json:"time"`
		RunID     string    `json:"run_id"`
		Location  string    `json:"location"`
		VersionID string    `json:"version_id"`
	} `json:"newest"`
	NewestAgeSeconds float64 `json:"newest_age_seconds"`
	MaxAge           string  `json:"max_age"`
	Changed          string  `json:"changed"`
	Error            *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// inventoryKey is a key of `inventory --json`.
type inventoryKey struct {
	hierItem
	LastBackup         *time.Time `json:"pvt_key_last_backup_date"`
	PasswordNeeded     bool       `json:"password_needed"`
	PasswordConfigured bool       `json:"password_configured"`
	Selection          string     `json:"selection"`
	Reason             string     `json:"reason"`
	Required           bool       `json:"required"`
	Status             string     `json:"status"`
	Copies             []struct {
		Destination   string     `json:"destination"`
		Status        string     `json:"status"`
		Time          *time.Time `json:"time"`
		AgeSeconds    float64    `json:"age_seconds"`
		RunID         string     `json:"run_id"`
		Location      string     `json:"location"`
		VersionID     string     `json:"version_id"`
		Authenticated bool       `json:"authenticated"`
		Changed       string     `json:"changed"`
		Error         *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"copies"`
}

// inventoryDoc is `keyescrow inventory --json`, every field of it.
type inventoryDoc struct {
	Status                string        `json:"status"`
	Tool                  string        `json:"tool"`
	Version               string        `json:"version"`
	RunID                 string        `json:"run_id"`
	Command               string        `json:"command"`
	StartedAt             time.Time     `json:"started_at"`
	FinishedAt            time.Time     `json:"finished_at"`
	Host                  string        `json:"host"`
	Instance              string        `json:"instance"`
	Server                string        `json:"server"`
	ProductVersion        string        `json:"product_version"`
	CertificateFormat     string        `json:"certificate_format"`
	HierarchyEnabled      bool          `json:"hierarchy_enabled"`
	Refresh               string        `json:"refresh"`
	ReceiptsAuthenticated bool          `json:"receipts_authenticated"`
	ServiceMasterKey      *inventoryKey `json:"service_master_key"`
	Databases             []struct {
		Name    string `json:"name"`
		State   string `json:"state"`
		Problem string `json:"problem"`
		TDE     *struct {
			State         int    `json:"encryption_state"`
			EncryptorType string `json:"encryptor_type"`
			Thumbprint    string `json:"encryptor_thumbprint"`
			Certificate   string `json:"certificate"`
		} `json:"tde"`
		MasterKey    *inventoryKey  `json:"master_key"`
		Certificates []inventoryKey `json:"certificates"`
	} `json:"databases"`
	Summary struct {
		Keys        int `json:"keys"`
		Selected    int `json:"selected"`
		Excluded    int `json:"excluded"`
		NotEscrowed int `json:"not_escrowed"`
		Required    int `json:"required"`
		Current     int `json:"current"`
		Outdated    int `json:"outdated"`
		Missing     int `json:"missing"`
		Unknown     int `json:"unknown"`
	} `json:"summary"`
	Destinations []struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		Status string `json:"status"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"destinations"`
	Warnings []string `json:"warnings"`
	Error    *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	ExitCode int `json:"exit_code"`
}

// keys indexes the report's keys by kind/database/name ("smk" for the
// service master key), leaving SQL Server's own certificates out.
func (d inventoryDoc) keys() map[string]inventoryKey {
	m := map[string]inventoryKey{}
	if d.ServiceMasterKey != nil {
		m["smk"] = *d.ServiceMasterKey
	}
	for _, db := range d.Databases {
		if db.MasterKey != nil {
			m[itemKey(db.MasterKey.hierItem)] = *db.MasterKey
		}
		for _, c := range db.Certificates {
			if !strings.HasPrefix(c.Name, "##MS_") {
				m[itemKey(c.hierItem)] = c
			}
		}
	}
	return m
}

func (e *env) inventory(t *testing.T) (result, inventoryDoc) {
	t.Helper()
	r := e.run("inventory", "--config", e.cfgPath, "--json")
	var d inventoryDoc
	decodeStrict(t, r.stdout, &d)
	if d.ExitCode != r.code || d.Command != "inventory" || d.Tool != "keyescrow" {
		t.Fatalf("exit %d, report's exit_code %d command %q\n%s", r.code, d.ExitCode, d.Command, r.stdout)
	}
	return r, d
}

func (e *env) verifyJSON(t *testing.T, args ...string) (result, auditDoc) {
	t.Helper()
	r := e.run(append([]string{"verify", "--config", e.cfgPath, "--json"}, args...)...)
	var a auditDoc
	decodeStrict(t, r.stdout, &a)
	if a.ExitCode != r.code {
		t.Fatalf("exit %d, audit's exit_code %d\n%s", r.code, a.ExitCode, r.stdout)
	}
	return r, a
}

func TestHierInventoryShowsEveryKeyAndItsProvenCopy(t *testing.T) {
	e := newHierEnv(t, "15.0.4355.3") // SQL Server 2019: certificates as .cer and .pvk
	e.writeConfig(hierPasswords)

	// Before any backup: every required key lacks a copy (exit 8).
	r, d := e.inventory(t)
	if r.code != 8 || d.Status != "missing" || d.Error == nil ||
		!strings.Contains(d.Error.Message, "certificate master/TDECert protects TDE database Sales and has no proven copy at usb") {
		t.Fatalf("before any backup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if d.Host != "SQLHOST01" || d.Instance != "INST1" || d.CertificateFormat != "pvk" || !d.HierarchyEnabled || d.Refresh != "30d" {
		t.Errorf("header: %+v", d)
	}
	keys := d.keys()
	for _, k := range append([]string{"smk"}, hierSelected...) {
		if keys[k].Selection != "selected" || !keys[k].Required || keys[k].Status != "missing" || len(keys[k].Copies) != 1 || keys[k].Copies[0].Status != "missing" {
			t.Errorf("%s before any backup: %+v", k, keys[k])
		}
	}
	if p := keys[certPart]; p.Selection != "not-escrowed" || p.Required || p.Status != "not-escrowed" || !strings.Contains(p.Reason, "no private key") {
		t.Errorf("Partner: %+v", p)
	}
	if tde := keys[certTDE]; len(tde.TDE) != 1 || tde.TDE[0] != "Sales" || tde.Thumbprint == "" || tde.PrivateKey != "MK" {
		t.Errorf("TDECert: %+v", tde)
	}
	if hr := keys[dmkHR]; !hr.PasswordNeeded || !hr.PasswordConfigured || hr.ProtectedByServiceMasterKey == nil || *hr.ProtectedByServiceMasterKey {
		t.Errorf("HR's master key: %+v", hr)
	}
	var sales bool
	for _, db := range d.Databases {
		if db.Name == "Sales" {
			sales = db.TDE != nil && db.TDE.Certificate == "master/TDECert" && db.TDE.State == 3
		}
	}
	if !sales {
		t.Errorf("Sales is not shown as protected by master/TDECert:\n%s", r.stdout)
	}
	if s := d.Summary; s.Required != 8 || s.Missing != 8 || s.Current != 0 || s.Selected != 8 {
		t.Errorf("summary %+v", s)
	}
	// The text form: a tree naming what protects what.
	txt := e.run("inventory", "--config", e.cfgPath)
	for _, want := range []string{"missing inventory host=SQLHOST01 instance=INST1", "database Sales (ONLINE), TDE-encrypted: its encryption key is protected by certificate master/TDECert",
		"certificate TDECert: thumbprint=", "protects TDE database Sales", "protected by its password only, password configured", "not-escrowed (no private key: nothing secret to escrow)"} {
		if !strings.Contains(txt.stdout, want) {
			t.Errorf("the text lacks %q:\n%s", want, txt.stdout)
		}
	}
	if txt.code != 8 {
		t.Errorf("text form: exit %d, want 8", txt.code)
	}

	// After a backup every required key has a proven copy of its current key.
	if br, rec := hierBackup(t, e); br.code != 0 || rec.Status != "ok" {
		t.Fatalf("backup: exit %d\n%s", br.code, br.stderr)
	}
	r, d = e.inventory(t)
	if r.code != 0 || d.Status != "ok" || d.Error != nil {
		t.Fatalf("after backup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	keys = d.keys()
	if keys["smk"].Status != "present" {
		t.Errorf("the service master key: %+v", keys["smk"])
	}
	for _, k := range hierSelected {
		c := keys[k].Copies
		if keys[k].Status != "current" || len(c) != 1 || c[0].Status != "current" || c[0].Time == nil || c[0].RunID == "" || !strings.HasPrefix(c[0].Location, e.usbDir) {
			t.Errorf("%s after backup: %+v", k, keys[k])
		}
	}
	if s := d.Summary; s.Current != 8 || s.Missing != 0 {
		t.Errorf("summary %+v", s)
	}

	// HR's master key is regenerated: its copies hold the earlier key.
	if err := e.srv.RegenerateMasterKey("HR"); err != nil {
		t.Fatal(err)
	}
	r, d = e.inventory(t)
	if r.code != 8 || d.Status != "missing" || !strings.Contains(d.Error.Message, "database master key HR changed since its newest proven copy at usb") {
		t.Fatalf("after HR's key was regenerated: exit %d\n%s", r.code, r.stdout)
	}
	keys = d.keys()
	if hr := keys[dmkHR]; hr.Status != "outdated" || !strings.Contains(hr.Copies[0].Changed, "modify_date") {
		t.Errorf("HR: %+v", hr)
	}
	for _, k := range hierSelected {
		if k != dmkHR && keys[k].Status != "current" {
			t.Errorf("%s: %s, want current", k, keys[k].Status)
		}
	}
	// The next backup archives the new key.
	if br, _ := hierBackup(t, e); br.code != 0 {
		t.Fatalf("backup: exit %d\n%s", br.code, br.stderr)
	}
	if r, d = e.inventory(t); r.code != 0 || d.keys()[dmkHR].Status != "current" {
		t.Errorf("after the second backup: exit %d\n%s", r.code, r.stdout)
	}
}

func TestHierInventoryFailsWithoutSQLServerAndNeedsItsSection(t *testing.T) {
	e := newHierEnv(t, "")
	e.vars["KEYESCROW_SQLSERVER_DSN"] = strings.Replace(e.vars["KEYESCROW_SQLSERVER_DSN"], loginUser, "nobody", 1)
	if r, d := e.inventory(t); r.code != 3 || d.Status != "failed" || d.Error == nil {
		t.Errorf("a refused login: exit %d\n%s", r.code, r.stdout)
	}
	if r := e.run("inventory", "--config", e.cfgPath, "extra"); r.code != 2 {
		t.Errorf("an argument: exit %d", r.code)
	}
}

func TestHierVerifyChecksEveryItemOfTheInventory(t *testing.T) {
	e := newHierEnv(t, "15.0.4355.3")
	prom := filepath.Join(e.root, "keyescrow.prom")
	e.writeConfig(hierPasswords + "metrics_file: " + prom + "\n")
	if br, _ := hierBackup(t, e); br.code != 0 {
		t.Fatalf("backup: exit %d\n%s", br.code, br.stderr)
	}
	r, a := e.verifyJSON(t)
	if r.code != 0 || a.Status != "ok" {
		t.Fatalf("verify after backup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	d := a.Destinations[0]
	items := map[string]auditItem{}
	for _, it := range d.Items {
		items[itemKey(it.hierItem)] = it
	}
	for _, k := range hierSelected {
		it := items[k]
		if it.Status != "ok" || it.Newest == nil || it.Newest.RunID == "" || it.MaxAge != "hierarchy.refresh 30d + max_age 8d" || it.Host != "SQLHOST01" || it.Instance != "INST1" {
			t.Errorf("%s: %+v", k, it)
		}
	}
	if len(d.Items) != len(hierSelected) {
		t.Errorf("%d items, want %d", len(d.Items), len(hierSelected))
	}
	var smkInv bool
	for _, g := range d.Groups {
		if g.Kind == "service-master-key" {
			smkInv = g.Inventory != nil && g.Inventory.Items == len(hierSelected) && g.Inventory.Complete
		}
		if g.Kind == "certificate" && g.Status != "ok" {
			t.Errorf("certificate group %s/%s: %+v", g.Database, g.Name, g)
		}
	}
	if !smkInv {
		t.Errorf("the service master key group names no inventory: %+v", d.Groups)
	}
	b, _ := os.ReadFile(prom)
	metrics := string(b)
	for _, want := range []string{
		`keyescrow_item_missing{host="SQLHOST01",instance="INST1",kind="certificate",database="master",name="TDECert",tde="true"} 0`,
		`keyescrow_item_missing{host="SQLHOST01",instance="INST1",kind="database-master-key",database="HR",name="##MS_DatabaseMasterKey##",tde="false"} 0`,
		`keyescrow_item_stale{destination="usb",host="SQLHOST01",instance="INST1",kind="certificate",database="HR",name="Signing"} 0`,
		`keyescrow_item_newest_timestamp_seconds{destination="usb",host="SQLHOST01",instance="INST1",kind="certificate",database="master",name="TDECert"} 1`,
		`keyescrow_copy_newest_timestamp_seconds{destination="usb",host="SQLHOST01",instance="INST1"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("the metrics lack %s:\n%s", want, metrics)
		}
	}

	// TDECert's copies are removed from the folder.
	dir := filepath.Join(e.usbDir, "SQLHOST01", "INST1", "certificate", "master", "TDECert")
	makeWritable(t, dir)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	r, a = e.verifyJSON(t)
	if r.code != 8 || a.Status != "stale" || !strings.Contains(r.stdout, "certificate master/TDECert protects TDE database Sales and has no proven copy") {
		t.Fatalf("without TDECert's copies: exit %d\n%s", r.code, r.stdout)
	}
	for _, it := range a.Destinations[0].Items {
		if want := map[bool]string{true: "missing", false: "ok"}[it.Name == "TDECert"]; it.Status != want {
			t.Errorf("%s: %s, want %s", itemKey(it.hierItem), it.Status, want)
		}
	}
	b, _ = os.ReadFile(prom)
	if !strings.Contains(string(b), `keyescrow_item_missing{host="SQLHOST01",instance="INST1",kind="certificate",database="master",name="TDECert",tde="true"} 1`) ||
		!strings.Contains(string(b), `keyescrow_item_newest_timestamp_seconds{destination="usb",host="SQLHOST01",instance="INST1",kind="certificate",database="master",name="TDECert"} 0`) {
		t.Errorf("the metrics do not show TDECert missing:\n%s", b)
	}
	txt := e.run("verify", "--config", e.cfgPath)
	if txt.code != 8 || !strings.Contains(txt.stdout, "item SQLHOST01/INST1 certificate master/TDECert (protects TDE Sales): missing, no proven copy") {
		t.Errorf("verify's text: exit %d\n%s", txt.code, txt.stdout)
	}
	// The inventory agrees.
	if r, inv := e.inventory(t); r.code != 8 || inv.keys()[certTDE].Status != "missing" {
		t.Errorf("inventory: exit %d\n%s", r.code, r.stdout)
	}
	// The next backup archives it again (it has no proven copy): all good.
	if br, _ := hierBackup(t, e); br.code != 0 {
		t.Fatalf("backup: exit %d\n%s", br.code, br.stderr)
	}
	if r, _ := e.verifyJSON(t); r.code != 0 {
		t.Errorf("verify after the backup: exit %d\n%s", r.code, r.stdout)
	}
}

// An excluded TDE certificate: backup records only what it selects, so
// verify (which checks what backup recorded) passes; inventory, which
// reads the server, still fails it: without the certificate the TDE
// database cannot be restored elsewhere.
func TestHierAnExcludedTDECertificateFailsInventoryNotVerify(t *testing.T) {
	e := newHierEnv(t, "")
	e.writeConfig(hierPasswords + "  certificates:\n    exclude: [TDECert]\n")
	br, rec := hierBackup(t, e)
	if br.code != 0 || byItem(rec)[certTDE].Action != "excluded" {
		t.Fatalf("backup: exit %d %+v\n%s", br.code, byItem(rec)[certTDE], br.stderr)
	}
	if r, a := e.verifyJSON(t); r.code != 0 || len(a.Destinations[0].Items) != len(hierSelected)-1 {
		t.Errorf("verify: exit %d\n%s", r.code, r.stdout)
	}
	r, d := e.inventory(t)
	tde := d.keys()[certTDE]
	if r.code != 8 || tde.Selection != "excluded" || !tde.Required || tde.Status != "missing" || !strings.Contains(tde.Reason, `hierarchy.certificates.exclude "TDECert"`) {
		t.Errorf("inventory: exit %d TDECert %+v\n%s", r.code, tde, r.stdout)
	}
	if !strings.Contains(strings.Join(d.Warnings, "\n"), "certificate master/TDECert protects TDE database Sales but is not selected") {
		t.Errorf("no warning: %v", d.Warnings)
	}
}

func TestHierListShowsAndFiltersItemCopies(t *testing.T) {
	e := newHierEnv(t, "15.0.4355.3")
	e.writeConfig(hierPasswords)
	if br, _ := hierBackup(t, e); br.code != 0 {
		t.Fatalf("backup: exit %d\n%s", br.code, br.stderr)
	}
	r := e.run("list", "--config", e.cfgPath, "--kind", "certificate", "--database", "hr", "--json")
	if r.code != 0 {
		t.Fatalf("list: exit %d\n%s", r.code, r.stderr)
	}
	var got []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(line, `"kind":"`) {
			for _, want := range []string{`"kind":"certificate"`, `"database":"HR"`} {
				if !strings.Contains(line, want) {
					t.Errorf("a copy without %s: %s", want, line)
				}
			}
			got = append(got, line)
		}
	}
	if len(got) != 2 || !strings.Contains(strings.Join(got, ""), `"item":"Payroll"`) || !strings.Contains(strings.Join(got, ""), `"item":"Signing"`) {
		t.Errorf("HR's certificates: %v", got)
	}
	txt := e.run("list", "--config", e.cfgPath)
	for _, want := range []string{"ITEM", "master/TDECert", "HR/Payroll", "database-master-key  HR"} {
		if !strings.Contains(txt.stdout, want) {
			t.Errorf("list's text lacks %q:\n%s", want, txt.stdout)
		}
	}
	if strings.Contains(txt.stdout, ".pvk") {
		t.Errorf("a .pvk is listed as a copy:\n%s", txt.stdout)
	}
	if r := e.run("list", "--config", e.cfgPath, "--kind", "cert"); r.code != 2 || !strings.Contains(r.stdout+r.stderr, "certificate") {
		t.Errorf("--kind cert: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// makeWritable lets the test remove a folder keyescrow made read-only.
func makeWritable(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			_ = os.Chmod(p, fi.Mode().Perm()|0o700)
		}
		return nil
	})
}

// With receipts signed and the key pinned, only copies a pinned key signed
// count: an agent with the same write access but its own key archives
// HR's regenerated master key; inventory still finds no proven copy of the
// current key, and verify names the unpinned copies as evidence.
func TestHierSignedCopiesOnlyCountWhenAPinnedKeySignedThem(t *testing.T) {
	e := newHierEnv(t, "")
	e.writeConfig(hierPasswords)
	plain, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, key := e.initKey("etc")
	e.pin(key, pub)
	if br, _ := hierBackup(t, e); br.code != 0 {
		t.Fatalf("backup: exit %d\n%s", br.code, br.stderr)
	}
	r, d := e.inventory(t)
	if r.code != 0 || !d.ReceiptsAuthenticated {
		t.Fatalf("inventory: exit %d\n%s", r.code, r.stdout)
	}
	for k, v := range d.keys() {
		if v.Status != "not-escrowed" && (len(v.Copies) != 1 || !v.Copies[0].Authenticated) {
			t.Errorf("%s: %+v, want an authenticated copy", k, v)
		}
	}

	if err := e.srv.RegenerateMasterKey("HR"); err != nil {
		t.Fatal(err)
	}
	// The other agent: the same destination, its own signing key.
	otherPub, otherKey := e.initKey("other")
	other := filepath.Join(e.root, "other.yaml")
	doc := string(plain) + "signing:\n  key_file: " + otherKey + "\ntrust:\n  public_keys: [\"" + otherPub + "\"]\n"
	if err := os.WriteFile(other, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if br := e.run("backup", "--config", other, "--json"); br.code != 0 {
		t.Fatalf("the other agent's backup: exit %d\n%s", br.code, br.stderr)
	}
	r, d = e.inventory(t)
	hr := d.keys()[dmkHR]
	if r.code != 8 || hr.Status != "outdated" || !hr.Copies[0].Authenticated {
		t.Errorf("inventory: exit %d HR %+v\n%s", r.code, hr, r.stdout)
	}
	if !strings.Contains(strings.Join(d.Warnings, "\n"), "not counted") {
		t.Errorf("no warning names the copies not counted: %v", d.Warnings)
	}
	vr, a := e.verifyJSON(t)
	if vr.code != 6 || a.Status != "failed" {
		t.Errorf("verify: exit %d, want 6 (copies signed by an unpinned key)\n%s", vr.code, vr.stdout)
	}
}

// TestHierReadOnS3ObjectLock: on versitygw (listings give whole seconds),
// a regenerated key archived by the next run counts as current for
// inventory and verify, the copies and .pvk files are read back by
// version id, and a version written over a .pvk changes nothing.
func TestHierReadOnS3ObjectLock(t *testing.T) {
	srv := s3srv.Start(t, s3srv.VersityGW, s3Region)
	e := &s3Env{env: newHierEnv(t, "15.0.4355.3"), srv: srv, proxy: s3srv.NewProxy(t, srv), bucket: srv.NewBucket(t, lockBucket())}
	e.vars["AWS_ACCESS_KEY_ID"] = srv.AccessKey
	e.vars["AWS_SECRET_ACCESS_KEY"] = srv.SecretKey
	e.secrets = append(e.secrets, srv.SecretKey)
	e.writeS3(s3Dest{extra: hierPasswords})
	if r, _ := hierBackup(t, e.env); r.code != 0 {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	if err := e.env.srv.RegenerateMasterKey("HR"); err != nil {
		t.Fatal(err)
	}
	r, rec := hierBackup(t, e.env)
	if r.code != 0 || byItem(rec)[dmkHR].Action != "archived" {
		t.Fatalf("second backup: exit %d\n%s", r.code, r.stderr)
	}
	r, d := e.env.inventory(t)
	if r.code != 0 {
		t.Fatalf("inventory: exit %d\n%s", r.code, r.stdout)
	}
	if c := d.keys()[dmkHR].Copies; len(c) != 1 || c[0].Status != "current" || c[0].RunID != rec.RunID || c[0].VersionID == "" {
		t.Errorf("HR's copy: %+v, want the second run's", c)
	}

	// A new version over TDECert's .pvk: the receipt names the first.
	var pvk string
	for _, v := range e.versions() {
		if k, _, _ := strings.Cut(v, "@"); strings.Contains(k, "/certificate/master/TDECert/") && strings.HasSuffix(k, ".pvk") {
			pvk = k
		}
	}
	if pvk == "" {
		t.Fatalf("no .pvk of TDECert in %v", e.versions())
	}
	if _, err := srv.Admin("").PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(pvk), Body: strings.NewReader("forged")}); err != nil {
		t.Fatal(err)
	}
	vr, a := e.env.verifyJSON(t)
	if vr.code != 0 {
		t.Fatalf("verify: exit %d\n%s", vr.code, vr.stdout)
	}
	for _, it := range a.Destinations[0].Items {
		if it.Status != "ok" || it.Newest == nil || it.Newest.VersionID == "" {
			t.Errorf("%s: %+v", itemKey(it.hierItem), it)
		}
	}
}

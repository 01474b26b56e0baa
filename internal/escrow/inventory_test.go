package escrow

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// hierServer is a server with the whole hierarchy: master's master key and
// the TDE certificate protecting Sales, HR's password-only master key with
// a certificate under it and one with its own password, Ops with a
// certificate, a public-only certificate and one expiring soon.
func hierServer(s *setup) {
	s.server.Databases = []mssqltest.Database{
		{Name: "master", MasterKey: &mssqltest.MasterKey{Password: "Master-Dmk-Pa55!"},
			Certificates: []mssqltest.Certificate{{Name: "TDECert", Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{Name: "Sales", TDECertificate: "TDECert"},
		{Name: "HR", MasterKey: &mssqltest.MasterKey{Password: "Hr-Dmk-Pa55!", NoServiceMasterKey: true},
			Certificates: []mssqltest.Certificate{{Name: "Payroll", Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)},
				{Name: "Signing", PrivateKey: mssqltest.ByPassword, Password: "Sign-Pa55!word", Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{Name: "Ops", MasterKey: &mssqltest.MasterKey{Password: "0ps-Dmk-Pa55!"},
			Certificates: []mssqltest.Certificate{{Name: "OpsCert", Expiry: time.Now().Add(10 * 24 * time.Hour)}, {Name: "Partner", PrivateKey: mssqltest.NoPrivateKey}}},
	}
	s.server.ProductVersion = "15.0.4355.3"
}

func (e *env) inventory() (*InventoryReport, error) {
	e.t.Helper()
	rep, err := e.runner.Inventory(testContext(e.t))
	if rep == nil {
		e.t.Fatalf("no report (err %v)", err)
	}
	if exitcode.Code(err) != rep.ExitCode {
		e.t.Errorf("report exit_code %d, err's %d", rep.ExitCode, exitcode.Code(err))
	}
	return rep, err
}

func keysOf(rep *InventoryReport) map[string]*InventoryKey {
	out := map[string]*InventoryKey{"smk": rep.ServiceMasterKey}
	for i := range rep.Databases {
		d := &rep.Databases[i]
		if d.MasterKey != nil {
			out[d.MasterKey.Label()] = d.MasterKey
		}
		for j := range d.Certificates {
			out[d.Certificates[j].Label()] = &d.Certificates[j]
		}
	}
	return out
}

func TestInventoryShowsEveryKeyAndWhetherItHasAProvenCopy(t *testing.T) {
	e := newEnv(t, hierServer)
	e.runner.Config.Hierarchy = config.Hierarchy{Enabled: true, Refresh: config.DefaultRefresh,
		Certificates: config.Selection{Exclude: []string{"Ops/OpsCert"}},
		Passwords:    []config.KeyPassword{{Database: "HR", PasswordEnv: "X"}}}

	rep, err := e.inventory()
	if exitcode.Code(err) != exitcode.Stale || rep.Status != InventoryMissing {
		t.Fatalf("before any backup: err %v status %s, want exit 8", err, rep.Status)
	}
	if !strings.Contains(err.Error(), "certificate master/TDECert protects TDE database Sales and has no proven copy at usb, offsite") ||
		!strings.Contains(err.Error(), "the service master key has no proven copy") {
		t.Errorf("the error does not name what is missing: %v", err)
	}
	if rep.Host != serverName || rep.Instance != sqlserver.DefaultInstance || rep.CertificateFormat != "pvk" || rep.Server != serverName {
		t.Errorf("host %q instance %q format %q server %q", rep.Host, rep.Instance, rep.CertificateFormat, rep.Server)
	}
	keys := keysOf(rep)
	want := map[string]string{ // label → selection/required/status
		"smk":                        "selected/true/missing",
		"database master key master": "selected/true/missing",
		"certificate master/TDECert": "selected/true/missing",
		"database master key HR":     "selected/true/missing",
		"certificate HR/Payroll":     "selected/true/missing",
		"certificate HR/Signing":     "selected/true/missing",
		"database master key Ops":    "selected/true/missing",
		"certificate Ops/OpsCert":    "excluded/false/missing",
		"certificate Ops/Partner":    "not-escrowed/false/not-escrowed",
	}
	for label, w := range want {
		k := keys[label]
		if k == nil {
			t.Errorf("%s is not listed", label)
			continue
		}
		if got := k.Selection + "/" + map[bool]string{true: "true", false: "false"}[k.Required] + "/" + k.Status; got != w {
			t.Errorf("%s: %s, want %s (%+v)", label, got, w, k)
		}
	}
	system := 0
	for label, k := range keys {
		if strings.Contains(label, "/##MS_") {
			system++
			if k.Selection != SelNotEscrowed || k.Status != KeyNotEscrowed || !strings.Contains(k.Reason, "SQL Server's own certificate") {
				t.Errorf("%s: %+v", label, k)
			}
		}
	}
	if len(keys)-system != len(want) {
		t.Errorf("%d keys listed (%d of SQL Server's own), want %d", len(keys), system, len(want))
	}
	if k := keys["certificate master/TDECert"]; len(k.TDE) != 1 || k.TDE[0] != "Sales" || k.Thumbprint == "" || len(k.Copies) != 2 {
		t.Errorf("TDECert: %+v", k)
	}
	if k := keys["database master key HR"]; !k.PasswordNeeded || !k.PasswordConfigured || k.ProtectedByServiceMasterKey == nil || *k.ProtectedByServiceMasterKey {
		t.Errorf("HR's master key: %+v", k)
	}
	if k := keys["certificate HR/Signing"]; !k.PasswordNeeded || k.PasswordConfigured {
		t.Errorf("Signing: %+v", k)
	}
	if k := keys["certificate Ops/OpsCert"]; !strings.Contains(k.Reason, `hierarchy.certificates.exclude "Ops/OpsCert"`) {
		t.Errorf("OpsCert's reason %q", k.Reason)
	}
	var sales *InventoryDatabase
	for i := range rep.Databases {
		if rep.Databases[i].Name == "Sales" {
			sales = &rep.Databases[i]
		}
	}
	if sales == nil || sales.TDE == nil || sales.TDE.Certificate != "master/TDECert" || sales.MasterKey != nil || sales.State != "ONLINE" {
		t.Errorf("Sales: %+v", sales)
	}
	warns := strings.Join(rep.Warnings, "\n")
	for _, w := range []string{"the private key of certificate HR/Signing has a password of its own", "certificate Ops/OpsCert expires on"} {
		if !strings.Contains(warns, w) {
			t.Errorf("no warning says %q:\n%s", w, warns)
		}
	}
	if s := rep.Summary; s.Keys != 9+system || s.Selected != 7 || s.Excluded != 1 || s.NotEscrowed != 1+system || s.Required != 7 || s.Missing != 7 || s.Current != 0 {
		t.Errorf("summary %+v", s)
	}

	// Copies of every selected key as it is now (and the service master
	// key): all current.
	var items []receipt.Item
	for _, k := range keys {
		if k.Selection == SelSelected && k.Kind != receipt.KindServiceMasterKey {
			items = append(items, k.Item)
		}
	}
	for _, it := range items {
		pvk := ""
		if it.Kind == receipt.KindCertificate {
			pvk = "pvk"
		}
		storeTestCopy(t, e.runner, serverName, sqlserver.DefaultInstance, it.Kind, &it, nil, "key "+it.Label(), pvk)
	}
	storeTestCopy(t, e.runner, serverName, sqlserver.DefaultInstance, receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true, Items: items}, "smk", "")
	rep, err = e.inventory()
	if err != nil || rep.Status != InventoryOK {
		t.Fatalf("after copies of everything: %v", err)
	}
	keys = keysOf(rep)
	for label, k := range keys {
		want := KeyCurrent
		switch {
		case label == "smk":
			want = KeyPresent
		case k.Selection == SelNotEscrowed:
			want = KeyNotEscrowed
		case k.Selection == SelExcluded:
			want = KeyMissing // OpsCert: excluded, never archived, not required
		}
		if k.Status != want {
			t.Errorf("%s: %s, want %s", label, k.Status, want)
		}
		if k.Status == KeyCurrent {
			for _, c := range k.Copies {
				if c.Status != KeyCurrent || c.Time == nil || c.RunID == "" || c.Location == "" {
					t.Errorf("%s at %s: %+v", label, c.Destination, c)
				}
			}
		}
	}

	// HR's master key is regenerated: its copies hold the old key.
	if err := e.srv.RegenerateMasterKey("HR"); err != nil {
		t.Fatal(err)
	}
	rep, err = e.inventory()
	if exitcode.Code(err) != exitcode.Stale || !strings.Contains(err.Error(), "database master key HR changed since its newest proven copy at usb, offsite") {
		t.Fatalf("after HR's key was regenerated: %v", err)
	}
	hr := keysOf(rep)["database master key HR"]
	if hr.Status != KeyOutdated || !strings.Contains(hr.Copies[0].Changed, "modify_date") || rep.Summary.Outdated != 1 || rep.Summary.Current != 6 {
		t.Errorf("HR: %+v; summary %+v", hr, rep.Summary)
	}
	doc, _ := json.Marshal(rep)
	for _, s := range []string{`"command":"inventory"`, `"status":"outdated"`, `"tde":{"encryption_state":3`, `"certificate":"master/TDECert"`, `"password_needed":true`} {
		if !strings.Contains(string(doc), s) {
			t.Errorf("the report's JSON lacks %s", s)
		}
	}
	if strings.Contains(string(doc), "Hr-Dmk-Pa55!") || strings.Contains(e.logs.String(), "Hr-Dmk-Pa55!") {
		t.Error("a key password leaked")
	}
}

func TestInventoryRequiresAnExcludedTDECertificate(t *testing.T) {
	e := newEnv(t, hierServer)
	e.runner.Config.Hierarchy = config.Hierarchy{Enabled: true, Refresh: config.DefaultRefresh, Databases: config.Selection{Include: []string{"Ops"}}}
	rep, err := e.inventory()
	if exitcode.Code(err) != exitcode.Stale {
		t.Fatalf("err %v, want 8", err)
	}
	k := keysOf(rep)["certificate master/TDECert"]
	if k.Selection != SelExcluded || !k.Required || k.Status != KeyMissing {
		t.Errorf("TDECert: %+v", k)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "certificate master/TDECert protects TDE database Sales but is not selected (its database is not in hierarchy.databases.include)") {
		t.Errorf("warnings: %v", rep.Warnings)
	}
	if hr := keysOf(rep)["database master key HR"]; hr.Required || hr.Selection != SelExcluded {
		t.Errorf("HR: %+v", hr)
	}

	// With the hierarchy off, only the service master key and the TDE
	// certificate are required.
	e.runner.Config.Hierarchy = config.Hierarchy{Enabled: false, Refresh: config.DefaultRefresh}
	rep, err = e.inventory()
	if exitcode.Code(err) != exitcode.Stale || rep.Summary.Required != 2 || rep.Summary.Selected != 1 || rep.HierarchyEnabled {
		t.Fatalf("hierarchy off: err %v summary %+v", err, rep.Summary)
	}
	if k := keysOf(rep)["certificate master/TDECert"]; !k.Required || !strings.Contains(k.Reason, "hierarchy.enabled is false") {
		t.Errorf("TDECert with the hierarchy off: %+v", k)
	}
}

func TestInventoryFailsWithSQLServer(t *testing.T) {
	e := newEnv(t, hierServer, func(s *setup) { s.pass = "wrong-Pa55word!" })
	rep, err := e.inventory()
	if exitcode.Code(err) != exitcode.SQLServer || rep.Status != InventoryFailed || rep.Error == nil {
		t.Fatalf("a refused login: err %v status %s, want exit 3", err, rep.Status)
	}
}

// failingList refuses every listing, as an unreachable service would.
type failingList struct{ storage.Backend }

func (failingList) List(context.Context, string, func(storage.Object) error) error {
	return fmt.Errorf("dial tcp: connection refused: %w", storage.ErrUnavailable)
}

func TestInventoryOfAnUnreadableDestinationIsExit5(t *testing.T) {
	e := newEnv(t, hierServer)
	e.runner.Config.Hierarchy = config.Hierarchy{Enabled: true, Refresh: config.DefaultRefresh, Databases: config.Selection{Include: []string{"Ops"}},
		Certificates: config.Selection{Exclude: []string{"OpsCert"}}}
	rep, _ := e.inventory()
	// Copies of everything required: the service master key, Ops' master
	// key and TDECert (required though not selected).
	for _, k := range keysOf(rep) {
		if k.Required && k.Kind != receipt.KindServiceMasterKey {
			it := k.Item
			storeTestCopy(t, e.runner, serverName, sqlserver.DefaultInstance, it.Kind, &it, nil, "key", map[bool]string{true: "pvk"}[it.Kind == receipt.KindCertificate])
		}
	}
	storeTestCopy(t, e.runner, serverName, sqlserver.DefaultInstance, receipt.KindServiceMasterKey, nil, &receipt.Inventory{Complete: true}, "smk", "")
	if rep, err := e.inventory(); err != nil {
		t.Fatalf("every required key has a copy: %v\n%+v", err, rep.Summary)
	}
	e.runner.Destinations[1].Backend = failingList{e.mem}
	rep, err := e.inventory()
	if exitcode.Code(err) != exitcode.Transfer || rep.Status != InventoryFailed || rep.Summary.Unknown != 3 || rep.Summary.Current != 0 {
		t.Fatalf("an unreadable destination: err %v status %s summary %+v", err, rep.Status, rep.Summary)
	}
	if d := rep.Destinations[1]; d.Status != "failed" || d.Error == nil || d.Error.Code != exitcode.Transfer {
		t.Errorf("destination %+v", d)
	}
	if c := rep.ServiceMasterKey.Copies; c[0].Status != KeyPresent || c[1].Status != KeyUnknown {
		t.Errorf("the service master key's copies %+v", c)
	}
}

package escrow

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
)

func testHierarchy(major int) sqlserver.Hierarchy {
	at := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	cert := func(name, pk string) sqlserver.Certificate {
		return sqlserver.Certificate{Name: name, Thumbprint: []byte{0xab, 0x01, byte(len(name))}, Subject: "CN=" + name, Expiry: at.AddDate(3, 0, 0), PrivateKey: pk}
	}
	return sqlserver.Hierarchy{MajorVersion: major, Databases: []sqlserver.Database{
		{Name: "master", State: "ONLINE", MasterKey: &sqlserver.MasterKey{GUID: "0a1b", Modified: at, ServiceMasterKey: true},
			Certificates: []sqlserver.Certificate{cert("##MS_AgentSigningCertificate##", sqlserver.KeyByMasterKey), cert("TDECert", sqlserver.KeyByMasterKey), cert("Public", sqlserver.KeyNone)}},
		{Name: "Sales", State: "ONLINE", Encryption: &sqlserver.Encryption{State: 3, Certificate: "tdecert"}},
		{Name: "Sales2", State: "ONLINE", Encryption: &sqlserver.Encryption{State: 3, Certificate: "TDECert"}},
		{Name: "HR", State: "ONLINE", MasterKey: &sqlserver.MasterKey{GUID: "ff00", Modified: at},
			Certificates: []sqlserver.Certificate{cert("Payroll", sqlserver.KeyByMasterKey), cert("Signing", sqlserver.KeyByPassword)}},
		{Name: "Archive", State: "OFFLINE", Problem: "the database is OFFLINE: its keys cannot be read"},
	}}
}

func labels(items []receipt.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Label())
	}
	return out
}

func TestSelectItemsTakesEveryKeyWithAPrivatePartByDefault(t *testing.T) {
	s := SelectItems(testHierarchy(16), config.Hierarchy{Enabled: true})
	want := []string{"database master key master", "certificate master/TDECert", "database master key HR", "certificate HR/Payroll", "certificate HR/Signing"}
	if got := labels(s.Items); !slices.Equal(got, want) {
		t.Fatalf("selected %q, want %q", got, want)
	}
	if len(s.Excluded) != 0 || len(s.Others) != 2 {
		t.Fatalf("excluded %+v, others %+v", s.Excluded, s.Others)
	}
	tde := s.Items[1]
	if !slices.Equal(tde.TDE, []string{"Sales", "Sales2"}) || tde.Format != "pfx" || tde.Thumbprint != "AB0107" || tde.PrivateKey != "MK" {
		t.Errorf("TDE certificate %+v", tde)
	}
	hr := s.Items[2]
	if hr.KeyGUID != "FF00" || hr.ProtectedByServiceMasterKey == nil || *hr.ProtectedByServiceMasterKey || hr.Modified == nil {
		t.Errorf("HR's master key %+v", hr)
	}
	if s.Inventory.Complete || len(s.Inventory.Problems) != 1 || s.Inventory.Problems[0].Database != "Archive" || len(s.Inventory.Items) != len(s.Items) {
		t.Errorf("inventory %+v", s.Inventory)
	}
	if f := SelectItems(testHierarchy(15), config.Hierarchy{}).Items[1].Format; f != "pvk" {
		t.Errorf("SQL Server 2019 format %q, want pvk", f)
	}
}

func TestSelectItemsExcludesWithTheReason(t *testing.T) {
	s := SelectItems(testHierarchy(16), config.Hierarchy{
		Databases:    config.Selection{Exclude: []string{"h*"}},
		Certificates: config.Selection{Exclude: []string{"master/tde*"}},
	})
	if got := labels(s.Items); !slices.Equal(got, []string{"database master key master"}) {
		t.Fatalf("selected %q", got)
	}
	reasons := map[string]string{}
	for _, x := range s.Excluded {
		if x.Action != receipt.ItemExcluded {
			t.Errorf("%s: action %s", x.Label(), x.Action)
		}
		reasons[x.Label()] = x.Reason
	}
	for label, want := range map[string]string{
		"certificate master/TDECert": `hierarchy.certificates.exclude "master/tde*"`,
		"database master key HR":     `hierarchy.databases.exclude "h*"`,
		"certificate HR/Payroll":     `hierarchy.databases.exclude "h*"`,
		"certificate HR/Signing":     `hierarchy.databases.exclude "h*"`,
	} {
		if !strings.Contains(reasons[label], want) {
			t.Errorf("%s excluded because %q, want it to name %s", label, reasons[label], want)
		}
	}
	only := SelectItems(testHierarchy(16), config.Hierarchy{Databases: config.Selection{Include: []string{"master"}}})
	if got := labels(only.Items); !slices.Equal(got, []string{"database master key master", "certificate master/TDECert"}) {
		t.Errorf("include master: %q", got)
	}
}

func TestItemKeysAndNames(t *testing.T) {
	at := time.Date(2026, 12, 3, 4, 5, 6, 0, time.UTC)
	dmk := receipt.Item{Kind: receipt.KindDatabaseMasterKey, Database: "HR Data", Name: receipt.MasterKeyName}
	cert := receipt.Item{Kind: receipt.KindCertificate, Database: "master", Name: "TDE/Cert", Format: "pvk"}
	dn, cn := itemFileName(dmk, at, "0123456789abcdef"), itemFileName(cert, at, "0123456789abcdef")
	if dn != "HR_Data-masterkey-20261203T040506Z-01234567.key" || cn != "TDE_Cert-20261203T040506Z-01234567.cer" {
		t.Fatalf("names %s %s", dn, cn)
	}
	if k := itemObjectKey("p/", `H\1`, "I", dmk, dn); k != "p/H%5C1/I/database-master-key/HR%20Data/"+dn {
		t.Errorf("master key's key %s", k)
	}
	ck := itemObjectKey("", "H", "I", cert, cn)
	if ck != "H/I/certificate/master/TDE%2FCert/"+cn || privateKeyKey(ck) != strings.TrimSuffix(ck, ".cer")+".pvk" {
		t.Errorf("certificate's keys %s %s", ck, privateKeyKey(ck))
	}
	cert.Format = "pfx"
	if n := itemFileName(cert, at, "0123456789abcdef"); !strings.HasSuffix(n, ".pfx") {
		t.Errorf("pfx name %s", n)
	}
	if runIDFromName(cn) != "01234567" || runIDFromName(dn) != "01234567" {
		t.Errorf("run ids from names: %q %q", runIDFromName(cn), runIDFromName(dn))
	}
}

func TestItemSameAndChanged(t *testing.T) {
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	later := at.Add(time.Hour)
	a := receipt.Item{Kind: receipt.KindDatabaseMasterKey, Database: "HR", Name: receipt.MasterKeyName, KeyGUID: "AA", Modified: &at}
	b := a
	b.Database = "hr"
	if !a.Same(b) || a.Changed(b) != "" {
		t.Errorf("the same key in another case is not Same")
	}
	b.Modified = &later
	if a.Same(b) || !strings.Contains(a.Changed(b), "modify_date") {
		t.Errorf("a later modify_date: %q", a.Changed(b))
	}
	b = a
	b.KeyGUID = "BB"
	if a.Same(b) || !strings.Contains(a.Changed(b), "key_guid") {
		t.Errorf("another key_guid: %q", a.Changed(b))
	}
	c1 := receipt.Item{Kind: receipt.KindCertificate, Database: "master", Name: "TDECert", Thumbprint: "AB"}
	c2 := c1
	c2.Thumbprint = "CD"
	if c1.Same(c2) || !strings.Contains(c1.Changed(c2), "thumbprint") {
		t.Errorf("another thumbprint: %q", c1.Changed(c2))
	}
	c2 = c1
	c2.Name = "Other"
	if c1.Same(c2) {
		t.Errorf("another certificate is Same")
	}
}

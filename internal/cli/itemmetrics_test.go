package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/escrow"
	"github.com/keyescrow/keyescrow/internal/metrics"
	"github.com/keyescrow/keyescrow/internal/receipt"
)

func TestAuditMetricsCarryEveryItem(t *testing.T) {
	at := time.Unix(1_800_000_000, 0).UTC()
	old := at.Add(-40 * 24 * time.Hour)
	tde := receipt.Item{Kind: receipt.KindCertificate, Database: "master", Name: "TDECert", TDE: []string{"Sales"}}
	hr := receipt.Item{Kind: receipt.KindDatabaseMasterKey, Database: "HR", Name: receipt.MasterKeyName}
	pay := receipt.Item{Kind: receipt.KindCertificate, Database: "HR", Name: "Payroll"}
	smk := escrow.AuditedGroup{Host: "SQLA", Instance: "MSSQLSERVER", Kind: receipt.KindServiceMasterKey, Newest: &at, Status: escrow.AuditOK}
	dest := func(name string, tdeStatus string) escrow.AuditedDest {
		d := escrow.AuditedDest{Name: name, Type: "s3", Status: escrow.AuditStale, Groups: []escrow.AuditedGroup{smk,
			{Host: "SQLA", Instance: "MSSQLSERVER", Kind: receipt.KindDatabaseMasterKey, Database: "hr", Name: receipt.MasterKeyName, Newest: &old, Status: escrow.AuditStale},
			{Host: "SQLA", Instance: "MSSQLSERVER", Kind: receipt.KindCertificate, Database: "Ops", Name: "Dropped", Newest: &old, Status: escrow.AuditOK},
		}}
		d.Items = []escrow.AuditedItem{
			{Host: "SQLA", Instance: "MSSQLSERVER", Item: tde, Status: tdeStatus},
			{Host: "SQLA", Instance: "MSSQLSERVER", Item: hr, Status: escrow.ItemStale, Newest: &escrow.ItemCopyRef{Time: old}},
			{Host: "SQLA", Instance: "MSSQLSERVER", Item: pay, Status: escrow.ItemOK, Newest: &escrow.ItemCopyRef{Time: at}},
		}
		if tdeStatus == escrow.ItemOK {
			d.Items[0].Newest = &escrow.ItemCopyRef{Time: at}
		}
		return d
	}
	a := &escrow.Audit{Status: escrow.AuditStale, Mode: "host", StartedAt: at, FinishedAt: at, ExitCode: 8,
		Destinations: []escrow.AuditedDest{dest("offsite", escrow.ItemMissing), dest("usb", escrow.ItemOK)}}
	rec, extra := auditMetrics(a)
	path := filepath.Join(t.TempDir(), "keyescrow.prom")
	if err := metrics.Write(path, "verify", rec, extra...); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	text := string(b)
	for _, want := range []string{
		`keyescrow_item_newest_timestamp_seconds{destination="offsite",host="SQLA",instance="MSSQLSERVER",kind="certificate",database="master",name="TDECert"} 0`,
		`keyescrow_item_newest_timestamp_seconds{destination="usb",host="SQLA",instance="MSSQLSERVER",kind="certificate",database="master",name="TDECert"} 1800000000`,
		`keyescrow_item_newest_timestamp_seconds{destination="offsite",host="SQLA",instance="MSSQLSERVER",kind="database-master-key",database="HR",name="##MS_DatabaseMasterKey##"} 1796544000`,
		`keyescrow_item_newest_timestamp_seconds{destination="offsite",host="SQLA",instance="MSSQLSERVER",kind="certificate",database="Ops",name="Dropped"} 1796544000`,
		`keyescrow_item_stale{destination="offsite",host="SQLA",instance="MSSQLSERVER",kind="database-master-key",database="HR",name="##MS_DatabaseMasterKey##"} 1`,
		`keyescrow_item_stale{destination="usb",host="SQLA",instance="MSSQLSERVER",kind="certificate",database="HR",name="Payroll"} 0`,
		// Missing at one destination is missing.
		`keyescrow_item_missing{host="SQLA",instance="MSSQLSERVER",kind="certificate",database="master",name="TDECert",tde="true"} 1`,
		`keyescrow_item_missing{host="SQLA",instance="MSSQLSERVER",kind="database-master-key",database="HR",name="##MS_DatabaseMasterKey##",tde="false"} 0`,
		`keyescrow_copy_newest_timestamp_seconds{destination="offsite",host="SQLA",instance="MSSQLSERVER"} 1800000000`,
		"# TYPE keyescrow_item_missing gauge",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}
	// One series per item and destination: HR's group (folder "hr") and
	// its inventory entry are one item.
	if n := strings.Count(text, `keyescrow_item_newest_timestamp_seconds{destination="offsite",host="SQLA",instance="MSSQLSERVER",kind="database-master-key"`); n != 1 {
		t.Errorf("%d series for HR's master key at offsite, want 1:\n%s", n, text)
	}
	// The service master key's series carry no item.
	if strings.Count(text, "keyescrow_copy_newest_timestamp_seconds{") != 2 {
		t.Errorf("keyescrow_copy_newest_timestamp_seconds has item series:\n%s", text)
	}
}

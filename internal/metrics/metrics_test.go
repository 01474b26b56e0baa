package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/receipt"
)

func rec(status string, at time.Time, dests ...receipt.Destination) *receipt.Receipt {
	return &receipt.Receipt{Status: status, StartedAt: at.Add(-2 * time.Second), FinishedAt: at,
		File: &receipt.File{Bytes: 151}, Destinations: dests, ExitCode: map[string]int{"ok": 0, "failed": 5}[status]}
}

func TestAFailedRunKeepsTheLastSuccessAndNewestEscrowTimes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyescrow.prom")
	t1 := time.Unix(1_800_000_000, 0)
	ok := receipt.Destination{Name: "usb", Type: "file", Status: receipt.DestVerified}
	if err := Write(path, "backup", rec("ok", t1, ok)); err != nil {
		t.Fatal(err)
	}
	bad := receipt.Destination{Name: "usb", Type: "file", Status: receipt.DestFailed}
	if err := Write(path, "backup", rec("failed", t1.Add(time.Hour), bad)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	text := string(b)
	for _, want := range []string{
		`keyescrow_last_success_timestamp_seconds{command="backup"} 1800000000.000`,
		`keyescrow_newest_verified_escrow_timestamp_seconds{destination="usb"} 1800000000.000`,
		`keyescrow_destination_up{destination="usb",type="file"} 0`,
		`keyescrow_last_run_exit_code{command="backup"} 5`,
		`keyescrow_last_run_timestamp_seconds{command="backup"} 1800003600.000`,
		`keyescrow_last_run_duration_seconds{command="backup"} 2.000`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	if strings.Count(text, "# TYPE keyescrow_last_success_timestamp_seconds gauge") != 1 {
		t.Errorf("duplicate TYPE lines:\n%s", text)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".keyescrow-metrics-*"))
	if len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func TestAnUnwritableMetricsFolderIsAnError(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "missing", "x.prom"), "backup", rec("ok", time.Now()))
	if err == nil || !strings.Contains(err.Error(), "metrics_file") {
		t.Fatalf("got %v", err)
	}
}

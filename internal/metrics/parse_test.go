package metrics

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/keyescrow/keyescrow/internal/receipt"
)

// parse reads the file with Prometheus' own text-format parser (what
// node_exporter's textfile collector uses) and returns every sample as
// family → "label=value,…" → value.
func parse(t *testing.T, path string) map[string]map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("the metrics file does not parse: %v", err)
	}
	out := map[string]map[string]float64{}
	for name, fam := range fams {
		if fam.GetType() != dto.MetricType_GAUGE || fam.GetHelp() == "" {
			t.Errorf("%s: type %v help %q, want a gauge with help", name, fam.GetType(), fam.GetHelp())
		}
		out[name] = map[string]float64{}
		for _, m := range fam.GetMetric() {
			key := ""
			for i, l := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=" + l.GetValue()
			}
			out[name][key] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestTheFileParsesAndFollowsSuccessesAndFailures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyescrow.prom")
	t0 := time.Unix(1_800_000_000, 0)
	verified := func(name string) receipt.Destination {
		return receipt.Destination{Name: name, Type: "s3", Status: receipt.DestVerified}
	}
	failed := func(name string, code int) receipt.Destination {
		return receipt.Destination{Name: name, Type: "s3", Status: receipt.DestFailed, Error: &receipt.Error{Code: code}}
	}
	steps := []struct {
		name    string
		command string
		rec     *receipt.Receipt
		want    map[string]map[string]float64
		absent  map[string]string // family → series that must be gone
	}{
		{"a good backup", "backup", rec("ok", t0, verified("east"), verified("west")), map[string]map[string]float64{
			"keyescrow_last_run_success":                         {"command=backup": 1},
			"keyescrow_last_run_exit_code":                       {"command=backup": 0},
			"keyescrow_last_run_bytes":                           {"command=backup": 151},
			"keyescrow_last_run_duration_seconds":                {"command=backup": 2},
			"keyescrow_last_success_timestamp_seconds":           {"command=backup": 1_800_000_000},
			"keyescrow_destination_up":                           {"destination=east,type=s3": 1, "destination=west,type=s3": 1},
			"keyescrow_newest_verified_escrow_timestamp_seconds": {"destination=east": 1_800_000_000, "destination=west": 1_800_000_000},
		}, nil},
		{"a backup that fails at one destination", "backup", rec("failed", t0.Add(time.Hour), verified("east"), failed("west", 6)), map[string]map[string]float64{
			"keyescrow_last_run_success":                         {"command=backup": 0},
			"keyescrow_last_run_exit_code":                       {"command=backup": 5},
			"keyescrow_last_run_timestamp_seconds":               {"command=backup": 1_800_003_600},
			"keyescrow_last_success_timestamp_seconds":           {"command=backup": 1_800_000_000},
			"keyescrow_destination_up":                           {"destination=east,type=s3": 1, "destination=west,type=s3": 0},
			"keyescrow_destination_exit_code":                    {"destination=east,type=s3": 0, "destination=west,type=s3": 6},
			"keyescrow_newest_verified_escrow_timestamp_seconds": {"destination=east": 1_800_003_600, "destination=west": 1_800_000_000},
		}, nil},
		{"an archive run keeps the backup's figures", "archive", rec("ok", t0.Add(2*time.Hour), verified("east")), map[string]map[string]float64{
			"keyescrow_last_run_success":               {"command=backup": 0, "command=archive": 1},
			"keyescrow_last_success_timestamp_seconds": {"command=backup": 1_800_000_000, "command=archive": 1_800_007_200},
			"keyescrow_destination_up":                 {"destination=east,type=s3": 1},
		}, map[string]string{"keyescrow_destination_up": "destination=west,type=s3"}},
		{"the backup succeeds again", "backup", rec("ok", t0.Add(3*time.Hour), verified("east"), verified("west")), map[string]map[string]float64{
			"keyescrow_last_run_success":                         {"command=backup": 1, "command=archive": 1},
			"keyescrow_last_success_timestamp_seconds":           {"command=backup": 1_800_010_800},
			"keyescrow_newest_verified_escrow_timestamp_seconds": {"destination=west": 1_800_010_800},
		}, nil},
	}
	for _, st := range steps {
		if err := Write(path, st.command, st.rec); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := parse(t, path)
		for fam, series := range st.want {
			for s, v := range series {
				if g, ok := got[fam][s]; !ok || g != v {
					t.Errorf("%s: %s{%s} = %v (present %v), want %v", st.name, fam, s, g, ok, v)
				}
			}
		}
		for fam, s := range st.absent {
			if _, ok := got[fam][s]; ok {
				t.Errorf("%s: %s{%s} is still there", st.name, fam, s)
			}
		}
		if len(got["keyescrow_build_info"]) != 1 {
			t.Errorf("%s: build_info %v, want one series", st.name, got["keyescrow_build_info"])
		}
	}
}

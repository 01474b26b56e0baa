// Package metrics owns the Prometheus textfile-collector output (config key
// metrics_file), read by node_exporter's and windows_exporter's textfile
// collectors. The file is replaced atomically (temp file, fsync, rename), and
// the "last success" and "newest verified escrow" times carry over from the
// previous file, so a failed run never erases when the key was last proven.
package metrics

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/keyescrow/keyescrow/internal/receipt"
)

const (
	lastSuccess = "keyescrow_last_success_timestamp_seconds"
	newest      = "keyescrow_newest_verified_escrow_timestamp_seconds"
)

// Write records the run's receipt in the textfile at path.
func Write(path, command string, rec *receipt.Receipt) error {
	prev := readPrevious(path)
	var b strings.Builder
	gauge := func(name, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	}
	cmd := `command="` + escape(command) + `"`
	end := float64(rec.FinishedAt.UnixNano()) / 1e9

	gauge("keyescrow_last_run_timestamp_seconds", "When the last run finished (Unix time).")
	fmt.Fprintf(&b, "keyescrow_last_run_timestamp_seconds{%s} %.3f\n", cmd, end)
	gauge("keyescrow_last_run_exit_code", "Exit code of the last run (0 = every destination verified).")
	fmt.Fprintf(&b, "keyescrow_last_run_exit_code{%s} %d\n", cmd, rec.ExitCode)
	gauge("keyescrow_last_run_duration_seconds", "How long the last run took.")
	fmt.Fprintf(&b, "keyescrow_last_run_duration_seconds{%s} %.3f\n", cmd, rec.FinishedAt.Sub(rec.StartedAt).Seconds())

	gauge(lastSuccess, "When a run last ended with every destination verified (Unix time).")
	if rec.Status == receipt.StatusOK {
		prev[lastSuccess+"{"+cmd+"}"] = end
	}
	writeSeries(&b, prev, lastSuccess)

	gauge("keyescrow_destination_up", "1 when the last run verified the copy at this destination, else 0.")
	for _, d := range rec.Destinations {
		up := 0
		if d.Status == receipt.DestVerified {
			up = 1
			prev[newest+`{destination="`+escape(d.Name)+`"}`] = end
		}
		fmt.Fprintf(&b, "keyescrow_destination_up{destination=\"%s\",type=\"%s\"} %d\n", escape(d.Name), escape(d.Type), up)
	}
	gauge("keyescrow_last_run_bytes", "Size of the key file archived by the last run.")
	if rec.File != nil {
		fmt.Fprintf(&b, "keyescrow_last_run_bytes{%s} %d\n", cmd, rec.File.Bytes)
	}
	gauge(newest, "When a copy at this destination was last written and verified (Unix time).")
	writeSeries(&b, prev, newest)
	return writeAtomic(path, []byte(b.String()))
}

func writeSeries(b *strings.Builder, m map[string]float64, name string) {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, name+"{") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "%s %.3f\n", k, m[k])
	}
}

// readPrevious reads the carried-over series of an earlier file.
func readPrevious(path string) map[string]float64 {
	out := map[string]float64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, lastSuccess+"{") && !strings.HasPrefix(line, newest+"{") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); i > 0 && err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".keyescrow-metrics-*")
	if err != nil {
		return fmt.Errorf("writing metrics_file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err = tmp.Write(data); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing metrics_file %s: %w", path, err)
	}
	return nil
}

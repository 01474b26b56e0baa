// Package metrics owns the Prometheus textfile-collector output (config key
// metrics_file), read by node_exporter's and windows_exporter's textfile
// collectors. The file is replaced atomically (temp file, fsync, rename).
//
// Each run rewrites the series it owns and carries the others over from the
// previous file: the series of other commands (a backup run keeps the last
// verify run's figures), and the "last success" and "newest verified escrow"
// times, so a failed run never erases when the key was last proven.
package metrics

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/keyescrow/keyescrow/internal/receipt"
)

// family is one metric: its name, help text and whether its samples carry
// over from the previous file (keep) and by which label they belong to a
// run (owner: "command" or "destination").
type family struct {
	name, help string
	owner      string
	keep       bool
}

const (
	lastSuccess = "keyescrow_last_success_timestamp_seconds"
	newest      = "keyescrow_newest_verified_escrow_timestamp_seconds"
)

var families = []family{
	{name: "keyescrow_build_info", help: "keyescrow's version (the value is always 1)."},
	{name: "keyescrow_last_run_timestamp_seconds", help: "When the last run of the command finished (Unix time).", owner: "command"},
	{name: "keyescrow_last_run_success", help: "1 when the last run of the command verified every destination, else 0.", owner: "command"},
	{name: "keyescrow_last_run_exit_code", help: "Exit code of the last run of the command (0 = every destination verified).", owner: "command"},
	{name: "keyescrow_last_run_duration_seconds", help: "How long the last run of the command took.", owner: "command"},
	{name: "keyescrow_last_run_bytes", help: "Size of the key file the last run of the command archived.", owner: "command"},
	{name: lastSuccess, help: "When a run of the command last ended with every destination verified (Unix time).", owner: "command", keep: true},
	{name: "keyescrow_destination_up", help: "1 when the last run verified the copy at this destination, else 0.", owner: "destination"},
	{name: "keyescrow_destination_exit_code", help: "Exit code of the last run at this destination (0 = verified; 4 refused by policy, 5 transfer, 6 verification).", owner: "destination"},
	{name: newest, help: "When the newest copy at this destination that a run proved was written (Unix time): set by backup and archive, and by verify of this host.", owner: "destination", keep: true},
	{name: "keyescrow_copy_newest_timestamp_seconds", help: "verify: when the newest proven copy of the host/instance at the destination was stored (Unix time; 0 when there is none).", owner: "family"},
	{name: "keyescrow_copy_stale", help: "verify: 1 when the host/instance has no proven copy younger than max_age at the destination.", owner: "family"},
	{name: "keyescrow_item_newest_timestamp_seconds", help: "verify: when the newest proven copy of the hierarchy item (a database master key or certificate; name is ##MS_DatabaseMasterKey## for a master key) at the destination was stored (Unix time; 0 when there is none).", owner: "family"},
	{name: "keyescrow_item_stale", help: "verify: 1 when the newest proven copy of the item's current key at the destination is older than hierarchy.refresh + max_age, else 0 (items of the newest inventory only).", owner: "family"},
	{name: "keyescrow_item_missing", help: "verify: 1 when an item of the newest inventory has no proven copy of its current key at some destination (none at all, or only of an earlier key), else 0; tde is true for a certificate that protects a TDE database.", owner: "family"},
	{name: "keyescrow_copies_checked", help: "verify: copies read back and re-hashed at the destination by the last verify run.", owner: "family"},
	{name: "keyescrow_copies_failed", help: "verify: copies at the destination that did not verify in the last verify run.", owner: "family"},
	{name: "keyescrow_copies_forged", help: "verify: copies and receipt versions at the destination that are evidence of tampering (a forged or unpinned signature, a receipt naming another copy, a second receipt version, an unsigned copy newer than the newest authenticated one) in the last verify run.", owner: "family"},
	{name: "keyescrow_copies_skipped", help: "verify: copies at the destination not counted without being evidence of tampering (no receipt: a run that died after the write or is running; unsigned copies older than the newest authenticated one; delete markers) in the last verify run.", owner: "family"},
}

// Names lists every metric keyescrow writes, in the file's order.
func Names() []string {
	out := make([]string, len(families))
	for i, f := range families {
		out[i] = f.name
	}
	return out
}

// Sample is one extra series value a command records (verify's per-host
// ages, say). Labels are name, value pairs in order.
type Sample struct {
	Name   string
	Labels [][2]string
	Value  float64
}

// sample is one line: labels rendered in order, and the value.
type sample struct {
	labels string
	value  string
}

// Write records the run's receipt, and the command's extra samples, in the
// textfile at path. A family of owner "family" is replaced as a whole when
// the run writes any sample of it, and kept otherwise.
func Write(path, command string, rec *receipt.Receipt, extra ...Sample) error {
	prev := readPrevious(path)
	cur := map[string][]sample{}
	set := func(name, labels, value string) {
		cur[name] = append(cur[name], sample{labels, value})
	}
	cmd := label("command", command)
	end := seconds(rec.FinishedAt.UnixNano())
	set("keyescrow_build_info", label("version", rec.Version)+","+label("goversion", runtime.Version()), "1")
	set("keyescrow_last_run_timestamp_seconds", cmd, end)
	set("keyescrow_last_run_success", cmd, boolValue(rec.Status == receipt.StatusOK))
	set("keyescrow_last_run_exit_code", cmd, strconv.Itoa(rec.ExitCode))
	set("keyescrow_last_run_duration_seconds", cmd, seconds(rec.FinishedAt.Sub(rec.StartedAt).Nanoseconds()))
	if rec.File != nil {
		set("keyescrow_last_run_bytes", cmd, strconv.FormatInt(rec.File.Bytes, 10))
	}
	if rec.Status == receipt.StatusOK {
		set(lastSuccess, cmd, end)
	}
	for _, d := range rec.Destinations {
		dl := label("destination", d.Name) + "," + label("type", d.Type)
		code := 0
		if d.Error != nil {
			code = d.Error.Code
		}
		set("keyescrow_destination_up", dl, boolValue(d.Status == receipt.DestVerified))
		set("keyescrow_destination_exit_code", dl, strconv.Itoa(code))
		if d.Status == receipt.DestVerified && (command == "backup" || command == "archive") {
			set(newest, label("destination", d.Name), end)
		}
	}
	for _, x := range extra {
		var ls []string
		for _, l := range x.Labels {
			ls = append(ls, label(l[0], l[1]))
		}
		set(x.Name, strings.Join(ls, ","), strconv.FormatFloat(x.Value, 'f', -1, 64))
	}

	var b strings.Builder
	for _, f := range families {
		samples := cur[f.name]
		for _, s := range prev[f.name] {
			if carriesOver(f, s, command, samples) {
				samples = append(samples, s)
			}
		}
		slices.SortFunc(samples, func(a, b sample) int { return strings.Compare(a.labels, b.labels) })
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", f.name, f.help, f.name)
		for _, s := range samples {
			fmt.Fprintf(&b, "%s{%s} %s\n", f.name, s.labels, s.value)
		}
	}
	return writeAtomic(path, []byte(b.String()))
}

// carriesOver decides whether an earlier sample stays: never when this run
// wrote the same series; a command's series when another command wrote it
// (or when it is a kept time); a destination's only when it is a kept time.
func carriesOver(f family, s sample, command string, cur []sample) bool {
	if slices.ContainsFunc(cur, func(c sample) bool { return c.labels == s.labels }) {
		return false
	}
	switch f.owner {
	case "command":
		return f.keep || !strings.Contains(s.labels, label("command", command))
	case "destination":
		return f.keep
	case "family":
		return len(cur) == 0
	}
	return false
}

func label(k, v string) string { return k + `="` + escape(v) + `"` }

func boolValue(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func seconds(ns int64) string { return strconv.FormatFloat(float64(ns)/1e9, 'f', 3, 64) }

// readPrevious reads the samples of an earlier file, by family.
func readPrevious(path string) map[string][]sample {
	out := map[string][]sample{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		open, end := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}')
		if strings.HasPrefix(line, "#") || open <= 0 || end < open || end+2 > len(line) {
			continue
		}
		v := strings.TrimSpace(line[end+1:])
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			continue
		}
		name := line[:open]
		out[name] = append(out[name], sample{labels: line[open+1 : end], value: v})
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

//go:build unix

// Command benchrun runs the benchmark's commands side by side and prints one
// markdown table. It reads a JSON plan (see Plan) on standard input, runs
// every row Warmup times, then Rounds rounds in which each row runs once —
// the order rotates each round, so no row always follows the same one — and
// reports the median and min–max of wall time, CPU (user+sys) and peak RSS.
// CPU and peak RSS are the rusage wait4 returns for the process and the
// children it waited for: the figures GNU time prints, at microsecond
// resolution. Rows with a CountArgv then run once more through the counting
// proxy, whose /take answer gives the requests and TCP connections.
//
// In every argument "{n}" becomes a number new to each run, so each run
// writes a new key.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Plan is what benchrun reads.
type Plan struct {
	Warmup int   `json:"warmup"`
	Rounds int   `json:"rounds"`
	Rows   []Row `json:"rows"`
	// Take is the counting proxy's control URL (…/take).
	Take string `json:"take"`
	// Env is added to every command's environment.
	Env []string `json:"env"`
}

// Row is one command measured.
type Row struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	// CountArgv is the same command aimed at the counting proxy; empty
	// means the row's requests are not counted.
	CountArgv []string `json:"count_argv"`
	// Versus names the row this one's ratios are taken to ("" = the first).
	Versus string `json:"versus"`
	// Apart names request kinds reported apart from the rest (e.g. "PUT receipt").
	Apart []string `json:"apart"`
	// Take overrides Plan.Take for this row (another server's proxy).
	Take string `json:"take"`
	// ServerPID is the S3 server's process: its CPU during each run is
	// reported too (it shares the machine's cores with the client).
	ServerPID int `json:"server_pid"`
}

type sample struct {
	wall, cpu, server time.Duration
	rss               int64
}

type result struct {
	Row
	samples []sample
	counts  *counts
}

type counts struct {
	Connections int64          `json:"connections"`
	Peak        int            `json:"peak"`
	Requests    int            `json:"requests"`
	Lines       []string       `json:"lines"`
	ByKind      map[string]int `json:"by_kind"`
}

func main() {
	var p Plan
	if err := json.NewDecoder(os.Stdin).Decode(&p); err != nil {
		fatal("reading the plan: %v", err)
	}
	res := make([]*result, len(p.Rows))
	for i, r := range p.Rows {
		res[i] = &result{Row: r}
	}
	n := 0
	runOne := func(r *result, keep bool) {
		n++
		before := procCPU(r.ServerPID)
		s, err := run(expand(r.Argv, n), p.Env)
		if err != nil {
			fatal("%s: %v", r.Name, err)
		}
		s.server = procCPU(r.ServerPID) - before
		if keep {
			r.samples = append(r.samples, s)
		}
	}
	for w := 0; w < p.Warmup; w++ {
		for _, r := range res {
			runOne(r, false)
		}
	}
	for round := 0; round < p.Rounds; round++ {
		for i := range res {
			runOne(res[(i+round)%len(res)], true)
		}
		fmt.Fprintf(os.Stderr, "\rround %d/%d", round+1, p.Rounds)
	}
	fmt.Fprintln(os.Stderr)
	for _, r := range res {
		url := p.Take
		if r.Take != "" {
			url = r.Take
		}
		if len(r.CountArgv) == 0 || url == "" {
			continue
		}
		{
			if _, err := take(url); err != nil {
				fatal("counting proxy: %v", err)
			}
			n++
			if _, err := run(expand(r.CountArgv, n), p.Env); err != nil {
				fatal("%s through the counting proxy: %v", r.Name, err)
			}
			time.Sleep(100 * time.Millisecond) // let the proxy finish its bookkeeping
			c, err := take(url)
			if err != nil {
				fatal("counting proxy: %v", err)
			}
			r.counts = c
		}
	}
	printTable(os.Stdout, res)
}

func expand(argv []string, n int) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = strings.ReplaceAll(a, "{n}", strconv.Itoa(n))
	}
	return out
}

func run(argv, env []string) (sample, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%v: %v\n%s", argv, err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return sample{wall: wall, cpu: cpu, rss: ru.Maxrss * 1024}, nil
}

// procCPU is the user+system CPU pid has used so far (0 for pid 0 or when
// /proc cannot tell).
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" that ends the command name: state is field 3,
	// utime 14 and stime 15, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

func take(url string) (*counts, error) {
	out, err := exec.Command("curl", "-fsS", url).Output()
	if err != nil {
		return nil, err
	}
	var c counts
	return &c, json.Unmarshal(out, &c)
}

type stat struct{ med, min, max float64 }

func stats(xs []float64) stat {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{m, s[0], s[len(s)-1]}
}

func (r *result) wall() stat {
	return r.pick(func(s sample) float64 { return s.wall.Seconds() * 1000 })
}
func (r *result) cpu() stat { return r.pick(func(s sample) float64 { return s.cpu.Seconds() * 1000 }) }

// serverMean is the server's mean CPU per run: /proc counts in 10 ms
// ticks, too coarse for a median.
func (r *result) serverMean() float64 {
	var sum time.Duration
	for _, s := range r.samples {
		sum += s.server
	}
	return sum.Seconds() * 1000 / float64(len(r.samples))
}
func (r *result) rss() stat {
	return r.pick(func(s sample) float64 { return float64(s.rss) / (1 << 20) })
}

func (r *result) pick(f func(sample) float64) stat {
	xs := make([]float64, len(r.samples))
	for i, s := range r.samples {
		xs[i] = f(s)
	}
	return stats(xs)
}

func printTable(w io.Writer, res []*result) {
	byName := map[string]*result{}
	for _, r := range res {
		byName[r.Name] = r
	}
	fmt.Fprintf(w, "| what | requests | TCP conns | wall ms, median (min–max) | wall × ref | CPU ms, median | CPU × ref | server CPU ms, mean | peak RSS MiB, median (max) | RSS × ref | ref |\n")
	fmt.Fprintf(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range res {
		ref := res[0]
		if r.Versus != "" && byName[r.Versus] != nil {
			ref = byName[r.Versus]
		}
		wl, c, m := r.wall(), r.cpu(), r.rss()
		rw, rc, rm := ref.wall(), ref.cpu(), ref.rss()
		reqs, conns := "–", "–"
		if r.counts != nil {
			reqs = requestCell(r)
			conns = fmt.Sprintf("%d (%d at once)", r.counts.Connections, r.counts.Peak)
		}
		refName := ref.Name
		if ref == r {
			refName = "—"
		}
		srv := "–"
		if r.ServerPID != 0 {
			srv = fmt.Sprintf("%.0f", r.serverMean())
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.1f (%.1f–%.1f) | %.2f | %.1f | %.2f | %s | %.1f (%.1f) | %.2f | %s |\n",
			r.Name, reqs, conns, wl.med, wl.min, wl.max, wl.med/rw.med, c.med, c.med/rc.med, srv, m.med, m.max, m.med/rm.med, refName)
	}
}

// requestCell is the total, with the kinds listed in Apart shown apart and
// the kinds spelled out: "8 = 4 preflight (…) + 3 + 1 PUT receipt".
func requestCell(r *result) string {
	apart := 0
	var parts []string
	for _, k := range r.Apart {
		if n := r.counts.ByKind[k]; n > 0 {
			apart += n
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	kinds := make([]string, 0, len(r.counts.ByKind))
	for k, n := range r.counts.ByKind {
		if contains(r.Apart, k) {
			continue
		}
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(kinds)
	cell := fmt.Sprintf("**%d**: %s", r.counts.Requests-apart, strings.Join(kinds, ", "))
	if apart > 0 {
		cell += " — plus " + strings.Join(parts, ", ")
	}
	return cell
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "benchrun: "+format+"\n", a...)
	os.Exit(1)
}

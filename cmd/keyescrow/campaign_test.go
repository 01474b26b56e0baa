package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	rcpt "github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/testsrv/azurite"
	"github.com/keyescrow/keyescrow/internal/testsrv/faultproxy"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

// The fault-injection campaign (issue 12, "Done when"): at least 1,000
// faults injected between the built binary and versitygw, MinIO and
// Azurite — dropped and reset connections, delays, stalls, drips, 5xx,
// corrupted bytes both ways and lost replies on PUT, HEAD, GET and LIST,
// and kill -9 of the agent while a request of each kind is held — with
// these invariants checked after every run:
//
//   - exit 0 only when the copy the receipt names is really there: read
//     back byte-identical and locked as configured, checked with the SDKs
//     straight against the server (never through the proxy); a restore
//     that exits 0 wrote exactly the archived bytes;
//   - a run that fails never exits 0 and its receipt says "failed";
//   - the next clean run after any fault, kill -9 included, succeeds: no
//     stale lock, no leftover in the way;
//   - verify after a killed run does not report the good archive corrupt;
//   - no secret in any output (every run is scanned, see env.runCtx).
//
// It prints a table of counts (run with -v). KEYESCROW_TEST_CAMPAIGN_FAULTS
// sets how many faults in all (default 1050, a third per backend);
// KEYESCROW_TEST_CAMPAIGN_KINDS=forged-item,5xx-every keeps only those
// kinds in the plan (to work on one; the full plan by default).

// campaignTimeouts are small so stalls cost a second, not minutes.
var campaignTimeouts = [4]string{"1s", "3s", "1s", "20s"} // connect, request, idle, run

// faultKind is one kind of fault of the campaign.
type faultKind struct {
	name  string
	proxy faultproxy.Kind // the proxy's fault; "" for kill -9
	every time.Duration
	// times: the fault fires on that many matching requests from the
	// nth on (0: once).
	times int
	// backupOnly: the kind is planned only under backup.
	backupOnly bool
	kill       bool
	// attack, when set, replaces the proxy: before the run it forges a
	// copy (and a receipt for it) at the destination with the agent's own
	// credentials, through w.forge; the run is a restore, which must not
	// write the forged bytes (see campaignAttacks).
	attack func(w *worker) error
}

// campaignAttacks are the fault kinds that forge instead of disturbing the
// network; each runs once per worker per pass of the plan, under restore,
// and every restore that writes forged bytes counts as a false success. A
// forged copy under a newer name with a matching unsigned receipt is
// accepted as long as receipts are not signed (issue 12 item 1), so the
// list is filled only when the binary signs them (see signingAvailable).
var campaignAttacks []faultKind

// The attacks of campaign_attack_test.go: a forged copy under a newer
// name, and a forged new version over the newest genuine copy and its
// receipt.
var (
	forgedCopy    = faultKind{name: "forged-copy", attack: func(w *worker) error { return w.forge(w, false) }}
	forgedVersion = faultKind{name: "forged-version", attack: func(w *worker) error { return w.forge(w, true) }}
)

var campaignKinds = []faultKind{
	{name: "drop", proxy: faultproxy.Drop},
	{name: "reset", proxy: faultproxy.Reset},
	{name: "lost-reply", proxy: faultproxy.LostReply},
	{name: "5xx", proxy: faultproxy.Status5xx},
	{name: "delay", proxy: faultproxy.Delay, every: 300 * time.Millisecond},
	{name: "delay>idle", proxy: faultproxy.Delay, every: 1500 * time.Millisecond},
	{name: "stall", proxy: faultproxy.Stall},
	{name: "stall-body", proxy: faultproxy.StallBody},
	{name: "trickle", proxy: faultproxy.Trickle, every: 200 * time.Millisecond},
	{name: "corrupt-request", proxy: faultproxy.CorruptRequest},
	{name: "corrupt-response", proxy: faultproxy.CorruptResponse},
	{name: "kill-9", kill: true},
	// Every request of the kind about an item answers 503 from the nth
	// on, retries included: the item cannot be written, proven or
	// judged, and the run must say so.
	{name: "5xx-every", proxy: faultproxy.Status5xx, times: 1000, backupOnly: true},
}

var campaignOps = []faultproxy.Op{faultproxy.OpPut, faultproxy.OpHead, faultproxy.OpGet, faultproxy.OpList}

// spec is one planned fault.
type spec struct {
	kind faultKind
	op   faultproxy.Op
	nth  int
	cmd  string // archive, verify, restore or backup (its faults hit the items' requests only)
	// after: a backup's fault counts only the requests after the first
	// write of an item (OpPut): the proofs of the copies it archives,
	// not change detection's reads before them.
	after faultproxy.Op
}

// plan lists the faults in a fixed order: every kind on every operation,
// at the 1st and 2nd matching request, each under archive, and the read
// operations under verify and restore too; and every kind on every
// operation at the 1st or 2nd request about an item (a database master
// key's or a certificate's folder) under backup.
func plan() []spec {
	var out []spec
	for range 4 {
		for _, k := range campaignAttacks {
			cmd := "restore"
			if k.name == forgedItem.name {
				cmd = "backup"
			}
			out = append(out, spec{kind: k, cmd: cmd})
		}
	}
	for _, nth := range []int{1, 2} {
		for _, op := range campaignOps {
			for i, k := range campaignKinds {
				if k.backupOnly {
					// At the 1st request: change detection's, or
					// (HEAD, GET) the first proof of a written copy.
					if nth == 1 {
						out = append(out, spec{kind: k, op: op, nth: nth, cmd: "backup"})
					} else if op == faultproxy.OpHead || op == faultproxy.OpGet {
						out = append(out, spec{kind: k, op: op, nth: 1, cmd: "backup", after: faultproxy.OpPut})
					}
					continue
				}
				out = append(out, spec{kind: k, op: op, nth: nth, cmd: "archive"})
				if op != faultproxy.OpPut {
					out = append(out, spec{kind: k, op: op, nth: nth, cmd: []string{"verify", "restore"}[(nth+len(out))%2]})
				}
				// Backup (the heavier run) takes each kind on each
				// operation once, at the 1st or the 2nd request in turn;
				// half the kinds' HEADs and GETs are those that prove
				// the copies it writes (after its first PUT), the others
				// change detection's.
				// (A delay under the idle limit changes nothing for
				// backup that archive's does not already show.)
				if (nth+i)%2 == 0 && k.name != "delay" {
					sp := spec{kind: k, op: op, nth: nth, cmd: "backup"}
					if (op == faultproxy.OpHead || op == faultproxy.OpGet) && i%4 >= 2 {
						sp.after = faultproxy.OpPut
					}
					out = append(out, sp)
				}
			}
		}
	}
	if v := os.Getenv("KEYESCROW_TEST_CAMPAIGN_KINDS"); v != "" {
		kinds := strings.Split(v, ",")
		out = slices.DeleteFunc(out, func(s spec) bool { return !slices.Contains(kinds, s.kind.name) })
	}
	return out
}

// tally collects the campaign's counts.
type tally struct {
	mu             sync.Mutex
	faults         map[string]map[string]int // backend → kind → injected
	exits          map[string]map[int]int    // backend → exit code → runs
	ops            map[string]map[string]int // operation → kind → injected
	runs           int
	falseSuccesses int
	forgedAccepted int
	cleanFailures  int
	verifyAlarms   int
	notes          []string
	// backups is the faulted backups per exit code; itemsChecked the
	// items of those that exited 0, per action, checked against the
	// server; itemFalseSuccesses the items among them that were not as
	// claimed (also counted in falseSuccesses); itemForgeriesCounted the
	// unchanged items that relied on a planted forgery.
	backups              map[int]int
	falseFailures        int            // backups that failed with nothing failed in their receipt
	unfired              map[string]int // command → runs whose fault never fired (not counted as faults)
	itemsChecked         map[string]int
	itemFalseSuccesses   int
	itemForgeriesCounted int
	itemForgedRestored   int // restores of TDECert after a forged-item attack that wrote other bytes than a genuine copy's
	itemRestores         int // those restores
}

func newTally() *tally {
	return &tally{faults: map[string]map[string]int{}, exits: map[string]map[int]int{}, ops: map[string]map[string]int{},
		backups: map[int]int{}, itemsChecked: map[string]int{}, unfired: map[string]int{}}
}

func (c *tally) add(backend, kind string, op faultproxy.Op, code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if op == "" {
		op = "-"
	}
	if c.ops[string(op)] == nil {
		c.ops[string(op)] = map[string]int{}
	}
	c.ops[string(op)][kind]++
	if c.faults[backend] == nil {
		c.faults[backend], c.exits[backend] = map[string]int{}, map[int]int{}
	}
	c.faults[backend][kind]++
	c.exits[backend][code]++
	c.runs++
}

func (c *tally) injected(backend string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.faults[backend] {
		n += v
	}
	return n
}

// table renders the counts as Markdown.
func (c *tally) table() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	backends := make([]string, 0, len(c.faults))
	for b := range c.faults {
		backends = append(backends, b)
	}
	sort.Strings(backends)
	var b strings.Builder
	fmt.Fprintf(&b, "| fault | %s | total |\n|---|%s---|\n", strings.Join(backends, " | "), strings.Repeat("---|", len(backends)))
	total := 0
	for _, k := range slices.Concat(campaignKinds, campaignAttacks) {
		row, sum := []string{}, 0
		for _, be := range backends {
			n := c.faults[be][k.name]
			row = append(row, strconv.Itoa(n))
			sum += n
		}
		total += sum
		fmt.Fprintf(&b, "| %s | %s | %d |\n", k.name, strings.Join(row, " | "), sum)
	}
	fmt.Fprintf(&b, "| **all faults** |")
	for _, be := range backends {
		n := 0
		for _, v := range c.faults[be] {
			n += v
		}
		fmt.Fprintf(&b, " %d |", n)
	}
	fmt.Fprintf(&b, " %d |\n\n", total)
	var ops []string
	for op := range c.ops {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	fmt.Fprintf(&b, "| fault | %s |\n|---|%s\n", strings.Join(ops, " | "), strings.Repeat("---|", len(ops)))
	for _, k := range slices.Concat(campaignKinds, campaignAttacks) {
		row := []string{}
		for _, op := range ops {
			row = append(row, strconv.Itoa(c.ops[op][k.name]))
		}
		fmt.Fprintf(&b, "| %s | %s |\n", k.name, strings.Join(row, " | "))
	}
	b.WriteString("\n")
	codes := map[int]bool{}
	for _, be := range backends {
		for code := range c.exits[be] {
			codes[code] = true
		}
	}
	var cs []int
	for code := range codes {
		cs = append(cs, code)
	}
	slices.Sort(cs)
	fmt.Fprintf(&b, "| exit code of the faulted run | %s | total |\n|---|%s---|\n", strings.Join(backends, " | "), strings.Repeat("---|", len(backends)))
	for _, code := range cs {
		row, sum := []string{}, 0
		for _, be := range backends {
			n := c.exits[be][code]
			row = append(row, strconv.Itoa(n))
			sum += n
		}
		name := strconv.Itoa(code)
		if code == 137 {
			name = "137 (kill -9)"
		}
		fmt.Fprintf(&b, "| %s | %s | %d |\n", name, strings.Join(row, " | "), sum)
	}
	fmt.Fprintf(&b, "\nfalse successes: %d; clean runs after a fault that failed: %d\n", c.falseSuccesses, c.cleanFailures)
	if len(campaignAttacks) == 0 {
		fmt.Fprintf(&b, "forged copies accepted: not tested (no attack kind: receipts are not signed yet)\n")
	} else {
		fmt.Fprintf(&b, "forged copies accepted: %d\n", c.forgedAccepted)
	}
	var bc []string
	for _, code := range slices.Sorted(maps.Keys(c.backups)) {
		bc = append(bc, fmt.Sprintf("exit %d: %d", code, c.backups[code]))
	}
	fmt.Fprintf(&b, "faulted backups (faults on the items' requests, and forged items): %s\n", strings.Join(bc, ", "))
	fmt.Fprintf(&b, "items the faulted backups called archived or unchanged, checked on the server: %d archived, %d unchanged; item false successes: %d; unchanged items relying on a forged copy: %d\n",
		c.itemsChecked[rcpt.ItemArchived], c.itemsChecked[rcpt.ItemUnchanged], c.itemFalseSuccesses, c.itemForgeriesCounted)
	fmt.Fprintf(&b, "failed backups whose receipt names nothing that failed: %d\n", c.falseFailures)
	fmt.Fprintf(&b, "runs whose fault never fired (checked, not counted): archive %d, verify %d, restore %d, backup %d\n",
		c.unfired["archive"], c.unfired["verify"], c.unfired["restore"], c.unfired["backup"])
	if restoreItemAvailable() {
		fmt.Fprintf(&b, "restores of TDECert after a forged-item attack: %d, forged bytes written: %d\n", c.itemRestores, c.itemForgedRestored)
	} else {
		fmt.Fprintf(&b, "restore of TDECert after a forged-item attack: not tested (this binary has no restore --kind)\n")
	}
	fmt.Fprintf(&b, "verify after a killed run: %d failed (exit 6) only because of the killed run's copy without a receipt (issue 12 item 5)\n", c.verifyAlarms)
	return b.String()
}

// worker is one agent host of the campaign: its own bucket or container,
// proxy, lock file and host name, runs one fault at a time.
type worker struct {
	t       *testing.T
	e       *env
	backend string
	host    string
	fp      *faultproxy.HTTP
	in      string // the key file archive takes
	data    []byte
	// check independently proves the copy a receipt destination names.
	check func(d campaignDest, since time.Time) error
	// forge plants a forged copy and receipt with the agent's credentials
	// (sameName: as new versions of the newest genuine ones).
	forge func(w *worker, sameName bool) error
	// planted are the names of the copies forged so far; overwritten
	// those of genuine copies the attacks wrote over.
	planted, overwritten []string
	tally                *tally
	outN                 int
	// store reads and writes the bucket or container with the SDK;
	// prefix is the destination's.
	store  store
	prefix string
	// direct points a clean run's destination at the server (see clean).
	direct []string
	// sealTo: backups seal a fresh password per copy to this age
	// recipient (versitygw's agents), else the static password.
	sealTo string
	// backupN counts the faulted backups (hierMode), itemForgeN the item
	// forgeries.
	backupN, itemForgeN int
}

// campaignReceipt is the part of a receipt the campaign reads (decoded
// leniently: other fields may be added).
type campaignReceipt struct {
	Status       string         `json:"status"`
	ExitCode     int            `json:"exit_code"`
	Destinations []campaignDest `json:"destinations"`
}

type campaignDest struct {
	Name      string `json:"name"`
	Location  string `json:"location"`
	VersionID string `json:"version_id"`
	Status    string `json:"status"`
}

func TestFaultCampaign(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault campaign takes minutes; run without -short")
	}
	total := 1050
	if v := os.Getenv("KEYESCROW_TEST_CAMPAIGN_FAULTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KEYESCROW_TEST_CAMPAIGN_FAULTS=%q is not a positive number", v)
		}
		total = n
	}
	if signingAvailable() {
		campaignAttacks = []faultKind{forgedCopy, forgedVersion, forgedItem}
		defer func() { campaignAttacks = nil }()
	}
	const workers = 2
	perWorker := (total + 3*workers - 1) / (3 * workers)
	c := newTally()
	started := time.Now()
	// Every agent runs in its own goroutine (not as a parallel subtest,
	// which -parallel would cap at the number of cores): one server per
	// backend, two agents per server, six runs at once.
	var wg sync.WaitGroup
	for _, kind := range []s3srv.Kind{s3srv.VersityGW, s3srv.MinIO} {
		wg.Go(func() {
			srv := s3srv.Start(t, kind, s3Region)
			var ws sync.WaitGroup
			for i := range workers {
				ws.Go(func() { newS3Worker(t, srv, string(kind), i, c).campaign(perWorker) })
			}
			ws.Wait()
		})
	}
	wg.Go(func() {
		srv := azurite.Start(t, azurite.Options{HTTPS: true})
		var ws sync.WaitGroup
		for i := range workers {
			ws.Go(func() { newAzWorker(t, srv, i, c).campaign(perWorker) })
		}
		ws.Wait()
	})
	wg.Wait()
	t.Logf("fault campaign: %d faulted runs in %v\n%s", c.runs, time.Since(started).Round(time.Second), c.table())
	for _, n := range c.notes {
		t.Log(n)
	}
	if p := os.Getenv("KEYESCROW_TEST_CAMPAIGN_REPORT"); p != "" {
		_ = os.WriteFile(p, []byte(c.table()), 0o600)
	}
	injected := 0
	for _, be := range []string{"versitygw", "minio", "azurite"} {
		injected += c.injected(be)
	}
	if !t.Failed() && injected < total {
		t.Errorf("only %d faults were injected, want at least %d", injected, total)
	}
	if c.falseSuccesses > 0 {
		t.Errorf("%d false successes", c.falseSuccesses)
	}
}

func newS3Worker(t *testing.T, srv *s3srv.Server, backend string, i int, c *tally) *worker {
	e := &s3Env{env: newEnv(t, hierCampaignConfig(backend)), srv: srv, proxy: s3srv.NewProxy(t, srv), bucket: srv.NewBucket(t, lockBucket())}
	e.vars["AWS_ACCESS_KEY_ID"] = srv.AccessKey
	e.vars["AWS_SECRET_ACCESS_KEY"] = srv.SecretKey
	e.secrets = append(e.secrets, srv.SecretKey, masterDMKPassword)
	w := &worker{t: t, e: e.env, backend: backend, host: fmt.Sprintf("w%d", i), tally: c,
		fp: faultproxy.NewHTTP(t, srv.Endpoint, srv.TLS.CA, srv.TLS)}
	e.writeS3(s3Dest{endpoint: w.fp.Endpoint})
	admin := srv.Admin("")
	w.store, w.prefix = s3Store{c: admin, bucket: e.bucket}, "sqlkeys/"
	w.direct = []string{"--set", "destinations.0.endpoint=" + srv.Endpoint}
	if kind := s3srv.Kind(backend); kind == s3srv.VersityGW {
		// Sealed passwords: every item copy has its .password.age.
		_, w.sealTo = newIdentity(t, e.root, "identity.txt")
	}
	w.forge = forgeS3(admin, e.bucket, "sqlkeys/")
	w.check = func(d campaignDest, since time.Time) error {
		key, ok := strings.CutPrefix(d.Location, "s3://"+e.bucket+"/")
		if !ok || d.VersionID == "" {
			return fmt.Errorf("location %q version %q", d.Location, d.VersionID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := admin.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key), VersionId: aws.String(d.VersionID)})
		if err != nil {
			return fmt.Errorf("GetObject: %w", err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(got, w.data) {
			return fmt.Errorf("the stored bytes differ from the key file (%d bytes, %v)", len(got), err)
		}
		h, err := admin.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key), VersionId: aws.String(d.VersionID)})
		if err != nil {
			return fmt.Errorf("HeadObject: %w", err)
		}
		if h.ObjectLockMode != "COMPLIANCE" || h.ObjectLockRetainUntilDate == nil || h.ObjectLockRetainUntilDate.Before(since.Add(24*time.Hour-2*time.Second)) {
			return fmt.Errorf("lock %q until %v, want COMPLIANCE for a day", h.ObjectLockMode, h.ObjectLockRetainUntilDate)
		}
		return nil
	}
	w.setup()
	return w
}

func newAzWorker(t *testing.T, srv *azurite.Server, i int, c *tally) *worker {
	a := &azEnv{env: newEnv(t, hierCampaignConfig("azurite")), srv: srv}
	a.secrets = []string{azurite.AccountKey, masterDMKPassword}
	a.vars["KEYESCROW_TEST_AZ_ACCOUNT_KEY"] = azurite.AccountKey
	name, admin := a.container()
	w := &worker{t: t, e: a.env, backend: "azurite", host: fmt.Sprintf("w%d", i), tally: c,
		fp: faultproxy.NewHTTP(t, strings.TrimSuffix(srv.AccountURL, "/"+azurite.AccountName), srv.CAFile, srv.TLS)}
	a.writeAzConfig(map[string]string{"account_url": w.fp.Endpoint + "/" + azurite.AccountName, "container": name, "auth": "shared-key",
		"account_key_env": "KEYESCROW_TEST_AZ_ACCOUNT_KEY", "ca_file": srv.CAFile}, "region", "versioning", "immutability")
	w.forge = forgeAzure(admin)
	w.store = azStore{c: admin, marker: "/" + azurite.AccountName + "/" + name + "/"}
	w.direct = []string{"--set", "destinations.0.account_url=" + srv.AccountURL}
	w.check = func(d campaignDest, since time.Time) error {
		_, blob, ok := strings.Cut(d.Location, "/"+azurite.AccountName+"/"+name+"/")
		if !ok {
			return fmt.Errorf("location %q", d.Location)
		}
		return azSame(admin, blob, w.data)
	}
	w.setup()
	return w
}

// azSame downloads blob straight from Azurite and compares it with want
// (Azurite has no versions and no locks: both are waived in its config).
func azSame(c *container.Client, blob string, want []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.NewBlobClient(blob).DownloadStream(ctx, nil)
	if err != nil {
		return fmt.Errorf("Get Blob: %w", err)
	}
	defer r.Body.Close()
	got, err := io.ReadAll(r.Body)
	if err != nil || !bytes.Equal(got, want) {
		return fmt.Errorf("the stored bytes differ from the key file (%d bytes, %v)", len(got), err)
	}
	return nil
}

func (w *worker) setup() {
	w.data = []byte("campaign key " + testutil.RandHex(48))
	w.in = filepath.Join(w.e.root, "campaign.key")
	if err := os.WriteFile(w.in, w.data, 0o600); err != nil {
		w.t.Fatal(err)
	}
	smallTimeouts(w.e, campaignTimeouts[0], campaignTimeouts[1], campaignTimeouts[2], campaignTimeouts[3])
	if len(campaignAttacks) > 0 {
		w.enableSigning()
	}
	// One good copy first, so verify and restore have something to read,
	// and one of the hierarchy, so backup has copies to compare with.
	if r := w.archive(); r.code != 0 {
		w.t.Fatalf("%s: the first clean archive: exit %d\n%s", w.backend, r.code, r.stderr)
	}
	if r := w.e.run(w.backupArgs(true)...); r.code != 0 {
		w.t.Fatalf("%s: the first clean backup: exit %d\n%s", w.backend, r.code, r.stderr)
	}
}

// generous puts the default limits back for a clean run: it checks that
// nothing is left in the way, not how fast a loaded machine answers.
var generous = []string{"--set", "timeouts.connect=30s", "--set", "timeouts.request=2m", "--set", "timeouts.idle=30s", "--set", "timeouts.run=10m"}

// clean are a clean run's settings: the default limits, and the server
// itself instead of the proxy (what is left in the way is on the server
// or on the host, not in the proxy; the proxy's TLS and copying, in this
// race-instrumented process, would only slow the campaign).
func (w *worker) clean() []string { return slices.Concat(generous, w.direct) }

// archive is a clean run, without faults.
func (w *worker) archive() result {
	return w.e.run(slices.Concat([]string{"archive", "--config", w.e.cfgPath, "--json", "--host", w.host, "--instance", "INST1"}, w.clean(), []string{w.in})...)
}

func (w *worker) args(cmd string) ([]string, string) {
	switch cmd {
	case "verify":
		return []string{"verify", "--config", w.e.cfgPath, "--host", w.host}, ""
	case "restore":
		w.outN++
		out := filepath.Join(w.e.root, fmt.Sprintf("restored-%d.key", w.outN))
		return []string{"restore", "--config", w.e.cfgPath, "--host", w.host, "--instance", "INST1", "--out", out}, out
	case "backup":
		return w.backupArgs(false), ""
	}
	return []string{"archive", "--config", w.e.cfgPath, "--json", "--host", w.host, "--instance", "INST1", w.in}, ""
}

// campaign runs faults until n have been injected.
func (w *worker) campaign(n int) {
	specs := plan()
	// Workers start at different places of the plan and walk it with a
	// stride prime to its length, so even a short campaign mixes every
	// kind and operation, and a long one covers the plan evenly.
	start := len(specs) / 2 * (int(w.host[1]-'0') % 2)
	stride := 1
	for _, p := range []int{11, 13, 17, 19, 23} {
		if len(specs)%p != 0 {
			stride = p
			break
		}
	}
	for i, done := 0, 0; done < n; i++ {
		if i > 4*n {
			w.t.Fatalf("%s: only %d of %d faults fired in %d runs", w.backend, done, n, i)
		}
		if w.t.Failed() {
			return
		}
		if w.one(specs[(start+i*stride)%len(specs)]) {
			done++
		}
	}
}

// one runs one fault and checks the invariants; it reports whether the
// fault was injected.
func (w *worker) one(s spec) bool {
	t := w.t
	args, out := w.args(s.cmd)
	var paths []string
	if s.cmd == "backup" {
		paths = itemPaths
		if s.kind.attack == nil {
			args = append(args, w.hierMode(s.op == faultproxy.OpPut || s.after != "")...)
		}
	}
	for len(w.fp.Held) > 0 {
		<-w.fp.Held
	}
	switch {
	case s.kind.attack != nil:
		if err := s.kind.attack(w); err != nil {
			t.Fatalf("%s: forging %s: %v", w.backend, s.kind.name, err)
		}
		w.fp.Arm(nil)
	case s.kind.kill:
		w.fp.Arm(&faultproxy.Fault{Kind: faultproxy.Hold, Op: s.op, Nth: s.nth, Paths: paths, After: s.after})
	default:
		w.fp.Arm(&faultproxy.Fault{Kind: s.kind.proxy, Op: s.op, Nth: s.nth, Every: s.kind.every, Times: s.kind.times, Paths: paths, After: s.after})
	}
	since := time.Now()
	finished := make(chan struct{})
	var killed bool
	r := w.e.runCtx(context.Background(), func(cmd *exec.Cmd) {
		if !s.kind.kill {
			return
		}
		go func() {
			select {
			case <-w.fp.Held:
				_ = cmd.Process.Kill()
			case <-finished:
			}
		}()
	}, args...)
	close(finished)
	fired := w.fp.Fired() > 0 || s.kind.attack != nil
	if s.cmd == "backup" && s.op != faultproxy.OpList {
		// (A listing names its folder in the query, which FiredPaths
		// leaves out.)
		for _, p := range w.fp.FiredPaths() {
			if !slices.ContainsFunc(itemPaths, func(ip string) bool { return strings.Contains(p, ip) }) {
				t.Errorf("%s: a backup's fault fired on %s, not an item's request", w.backend, p)
			}
		}
	}
	keyCorrupted := slices.ContainsFunc(w.fp.FiredPaths(), func(p string) bool { return strings.HasSuffix(p, ".key") })
	w.fp.Arm(nil)
	killed = s.kind.kill && r.code == 137
	if s.kind.kill && fired && !killed {
		// The held request was let go by the process ending first: the
		// kill came too late to count.
		fired = false
	}
	label := fmt.Sprintf("%s %s on %s #%d under %s", w.backend, s.kind.name, s.op, s.nth, s.cmd)
	if s.after != "" {
		label = fmt.Sprintf("%s %s on %s #%d after the first %s under %s", w.backend, s.kind.name, s.op, s.nth, s.after, s.cmd)
	}
	if r.code == 137 && !s.kind.kill {
		// Nothing of the campaign kills it: runCtx did, after 60 s,
		// three times its timeouts.run.
		t.Errorf("%s: the run hung and was killed after 60 s\n%s", label, r.stderr)
	}
	if !fired {
		// The run never reached that request: not a fault, but its result
		// must still be honest.
		w.honest(label, s, r, out, since, keyCorrupted)
		w.tally.mu.Lock()
		w.tally.unfired[s.cmd]++
		w.tally.mu.Unlock()
		return false
	}
	w.tally.add(w.backend, s.kind.name, s.op, r.code)
	if s.cmd == "backup" {
		w.tally.mu.Lock()
		w.tally.backups[r.code]++
		w.tally.mu.Unlock()
	}
	w.honest(label, s, r, out, since, keyCorrupted)
	if s.kind.name == forgedItem.name && restoreItemAvailable() {
		w.tally.mu.Lock()
		w.tally.itemRestores++
		w.tally.mu.Unlock()
		w.restoreForgedItem(label)
	}

	// The next clean run is not blocked: no stale lock, no leftover.
	clean, host := w.archive, w.host
	if s.cmd == "backup" {
		clean, host = func() result { return w.e.run(w.backupArgs(true)...) }, w.backupHost()
	}
	if c := clean(); c.code != 0 {
		w.tally.mu.Lock()
		w.tally.cleanFailures++
		w.tally.mu.Unlock()
		t.Errorf("%s: the clean %s after it exited %d\n%s\n%s", label, s.cmd, c.code, c.stdout, c.stderr)
	}
	if killed {
		// A killed run may leave a copy without a receipt; verify must
		// not call the archive corrupt because of it.
		v := w.e.run(slices.Concat([]string{"verify", "--config", w.e.cfgPath, "--host", host}, w.clean())...)
		leftovers, expected := w.expectedComplaints(v)
		switch {
		case v.code == 0:
		case expected:
			// Forgeries planted by the attacks are rightly reported. A
			// copy whose run was killed before its receipt was stored
			// was failed (6) by verify before issue 12 item 5 was
			// fixed: counted and reported, not hidden.
			if leftovers > 0 {
				w.tally.mu.Lock()
				w.tally.verifyAlarms++
				w.tally.mu.Unlock()
			}
		default:
			t.Errorf("%s: verify after the killed run exited %d\n%s\n%s", label, v.code, v.stdout, v.stderr)
		}
	}
	return true
}

// expectedComplaints reports whether a failed verify complained (exit 6)
// only about copies this campaign knows are bad: forgeries it planted
// (which verify must report), and copies a killed run left without a
// receipt (issue 12 item 5; leftovers counts those).
func (w *worker) expectedComplaints(v result) (leftovers int, ok bool) {
	if v.code != 6 {
		return 0, false
	}
	n := 0
	for _, line := range strings.Split(v.stdout, "\n") {
		if !strings.Contains(line, "(6)") && !strings.Contains(line, "error(") {
			continue
		}
		switch {
		case strings.Contains(line, "error(6)") && strings.Contains(line, "did not finish proving it"):
			leftovers++
		case slices.ContainsFunc(slices.Concat(w.planted, w.overwritten), func(p string) bool { return strings.Contains(line, p) }):
		default:
			return 0, false
		}
		n++
	}
	return leftovers, n > 0
}

// honest checks what a run claims against what is there.
func (w *worker) honest(label string, s spec, r result, out string, since time.Time, keyFaulted bool) {
	t := w.t
	falseSuccess := func(format string, args ...any) {
		w.tally.mu.Lock()
		w.tally.falseSuccesses++
		w.tally.mu.Unlock()
		t.Errorf("FALSE SUCCESS: %s: "+format, append([]any{label}, args...)...)
	}
	switch s.cmd {
	case "archive", "backup":
		if r.code == 137 {
			return
		}
		var rec campaignReceipt
		if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
			t.Errorf("%s: exit %d without a receipt: %v\n%s", label, r.code, err, r.stderr)
			return
		}
		if r.code != 0 {
			if rec.Status != "failed" || rec.ExitCode != r.code {
				t.Errorf("%s: exit %d but the receipt says %q exit %d", label, r.code, rec.Status, rec.ExitCode)
			}
			if s.cmd == "backup" {
				// A failed run says what failed: a destination of the
				// service master key or an item.
				var smk hierReceipt
				_ = json.Unmarshal([]byte(r.stdout), &smk)
				failed := !slices.ContainsFunc(rec.Destinations, func(d campaignDest) bool { return d.Status == "verified" }) ||
					slices.ContainsFunc(rec.Destinations, func(d campaignDest) bool { return d.Status != "verified" }) ||
					slices.ContainsFunc(smk.Items, func(it rcpt.ItemResult) bool { return it.Action == rcpt.ItemFailed })
				if !failed {
					w.tally.mu.Lock()
					w.tally.falseFailures++
					w.tally.mu.Unlock()
					t.Errorf("%s: exit %d, but every destination and item of its receipt succeeded\n%s\n%s", label, r.code, r.stdout, r.stderr)
				}
				// A failed run still never calls an item archived or
				// unchanged that is not.
				for _, msg := range w.hierHonest(r.stdout, since, false) {
					w.tally.mu.Lock()
					w.tally.itemFalseSuccesses++
					w.tally.mu.Unlock()
					falseSuccess("exit %d and %s", r.code, msg)
				}
			}
			return
		}
		if rec.Status != "ok" || len(rec.Destinations) == 0 {
			falseSuccess("exit 0 with receipt status %q and %d destinations", rec.Status, len(rec.Destinations))
			return
		}
		if s.cmd == "backup" {
			// The service master key's copy holds what the receipt
			// records, and every item is as the receipt says.
			var smk hierReceipt
			_ = json.Unmarshal([]byte(r.stdout), &smk)
			for _, d := range rec.Destinations {
				if d.Status != "verified" || smk.File == nil {
					falseSuccess("exit 0 with %s %s", d.Name, d.Status)
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := w.holds(ctx, w.store.key(d.Location), d.VersionID, smk.File, since); err != nil {
					falseSuccess("exit 0 but the service master key's copy %s: %v", d.Location, err)
				}
				cancel()
			}
			for _, msg := range w.hierHonest(r.stdout, since, true) {
				w.tally.mu.Lock()
				w.tally.itemFalseSuccesses++
				w.tally.mu.Unlock()
				falseSuccess("exit 0 but %s", msg)
			}
			return
		}
		for _, d := range rec.Destinations {
			if d.Status != "verified" {
				falseSuccess("exit 0 with %s %s", d.Name, d.Status)
				continue
			}
			if err := w.check(d, since); err != nil {
				falseSuccess("exit 0 but %s: %v", d.Location, err)
			}
		}
	case "restore":
		if r.code != 0 {
			return
		}
		got, err := os.ReadFile(out)
		if err != nil || !bytes.Equal(got, w.data) {
			if s.kind.attack != nil {
				w.tally.mu.Lock()
				w.tally.forgedAccepted++
				w.tally.mu.Unlock()
			}
			falseSuccess("restore exit 0 but %s holds %d other bytes (%v)", out, len(got), err)
		}
	case "verify":
		// Every copy of this worker holds the same, intact key file, so
		// what matters is that verify never vouches for bytes it did not
		// get intact: a corrupted download it read must fail it.
		if r.code == 0 && !strings.Contains(r.stdout, "ok") {
			falseSuccess("verify exit 0 without saying ok:\n%s", r.stdout)
		}
		if r.code == 0 && s.kind.proxy == faultproxy.CorruptResponse && s.op == faultproxy.OpGet && keyFaulted {
			falseSuccess("verify exit 0 although a copy it downloaded was corrupted on the way:\n%s", r.stdout)
		}
	}
}

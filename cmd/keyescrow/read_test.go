package main_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/testsrv"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

// listDoc is `keyescrow list --json`: the README's contract, strictly.
type listDoc struct {
	Tool    string `json:"tool"`
	Version string `json:"version"`
	Command string `json:"command"`
	Copies  []struct {
		Destination string    `json:"destination"`
		Type        string    `json:"type"`
		Location    string    `json:"location"`
		Host        string    `json:"host"`
		Instance    string    `json:"instance"`
		Kind        string    `json:"kind"`
		Name        string    `json:"name"`
		Key         string    `json:"key"`
		VersionID   string    `json:"version_id"`
		Bytes       int64     `json:"bytes"`
		Time        time.Time `json:"time"`
		Current     bool      `json:"current"`
		Receipt     bool      `json:"receipt"`
		SHA256      string    `json:"sha256"`
		Retention   *struct {
			Mode  string    `json:"mode"`
			Until time.Time `json:"until"`
		} `json:"retention"`
		RetentionInForce bool   `json:"retention_in_force"`
		Authenticated    bool   `json:"authenticated"`
		KeyID            string `json:"key_id"`
		RunID            string `json:"run_id"`
		Note             string `json:"note"`
	} `json:"copies"`
	Destinations []struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		Copies  int    `json:"copies"`
		Foreign int    `json:"foreign_objects"`
		Status  string `json:"status"`
		Error   *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"destinations"`
	ReceiptsAuthenticated bool   `json:"receipts_authenticated"`
	Status                string `json:"status"`
	ExitCode              int    `json:"exit_code"`
	Error                 *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// auditDoc is `keyescrow verify --json`.
type auditDoc struct {
	Status       string    `json:"status"`
	Tool         string    `json:"tool"`
	Version      string    `json:"version"`
	RunID        string    `json:"run_id"`
	Command      string    `json:"command"`
	Mode         string    `json:"mode"`
	StartedAt    time.Time `json:"started_at"`
	FinishedAt   time.Time `json:"finished_at"`
	MaxAge       string    `json:"max_age"`
	Destinations []struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		Status string `json:"status"`
		Groups []struct {
			Host     string `json:"host"`
			Instance string `json:"instance"`
			Kind     string `json:"kind"`
			// Database and Name: a hierarchy item's group.
			Database         string     `json:"database"`
			Name             string     `json:"name"`
			Copies           int        `json:"copies"`
			Newest           *time.Time `json:"newest"`
			NewestAgeSeconds float64    `json:"newest_age_seconds"`
			Stale            bool       `json:"stale"`
			Status           string     `json:"status"`
			Checked          []struct {
				Key       string    `json:"key"`
				Location  string    `json:"location"`
				VersionID string    `json:"version_id"`
				Time      time.Time `json:"time"`
				Bytes     int64     `json:"bytes"`
				Checksum  struct {
					Algorithm string `json:"algorithm"`
					Local     string `json:"local"`
					Remote    string `json:"remote"`
					Match     bool   `json:"match"`
				} `json:"checksum"`
				ReadBack  bool `json:"read_back"`
				Retention *struct {
					Mode  string    `json:"mode"`
					Until time.Time `json:"until"`
				} `json:"retention"`
				RetentionInForce bool   `json:"retention_in_force"`
				Status           string `json:"status"`
				Error            *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
				RunID         string `json:"run_id"`
				Authenticated bool   `json:"authenticated"`
				KeyID         string `json:"key_id"`
			} `json:"checked"`
			Skipped []skipped `json:"skipped"`
			// MaxAge: an item group's age limit ("none": not judged).
			MaxAge string `json:"max_age"`
			// Inventory: where a service master key group's items come from.
			Inventory *struct {
				RunID     string    `json:"run_id"`
				StoredAt  time.Time `json:"stored_at"`
				Location  string    `json:"location"`
				VersionID string    `json:"version_id"`
				Complete  bool      `json:"complete"`
				Items     int       `json:"items"`
			} `json:"inventory"`
			Warnings []string `json:"warnings"`
			Error    *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"groups"`
		// Items: the newest inventory's items at this destination.
		Items []auditItem `json:"items"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"destinations"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	ReceiptsAuthenticated bool `json:"receipts_authenticated"`
	ExitCode              int  `json:"exit_code"`
}

// decodeStrict parses stdout as exactly one JSON document of v's fields.
func decodeStrict(t *testing.T, stdout string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not one JSON document of the contract: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON document:\n%s", stdout)
	}
}

// readWorld is one destination kind under the read commands' scenario.
type readWorld struct {
	e           *env
	destination string
	versioned   bool
	// corrupt changes the stored bytes of a copy behind the agent's back.
	corrupt func(t *testing.T, content []byte, location, versionID string)
}

type archived struct {
	content []byte
	rec     receipt
}

// readScenario is issue 6's proof on one destination: three copies are
// archived; list shows them newest first with their receipts' checksums;
// verify passes, then turns stale, then catches a corrupted copy; restore
// picks by time and by version id, writes owner-only and create-only, and
// refuses the corrupted copy.
func readScenario(t *testing.T, w readWorld) {
	e := w.e
	const host, instance = "SQLHOST07", "MSSQLSERVER"
	metricsFile := filepath.Join(e.root, "keyescrow.prom")
	e.vars["KEYESCROW_METRICS_FILE"] = metricsFile
	var copies []archived
	for i := range 3 {
		if i > 0 {
			time.Sleep(2100 * time.Millisecond) // stored times one second apart at least, whatever the service's precision
		}
		content := make([]byte, 150)
		_, _ = rand.Read(content)
		f := filepath.Join(e.root, "smk.key")
		_ = os.Remove(f)
		if err := os.WriteFile(f, content, 0o600); err != nil {
			t.Fatal(err)
		}
		r := e.run("archive", "--config", e.cfgPath, "--json", "--host", host, "--instance", instance, f)
		if r.code != 0 {
			t.Fatalf("archive %d: exit %d\n%s\n%s", i, r.code, r.stdout, r.stderr)
		}
		copies = append(copies, archived{content, parseReceipt(t, r.stdout)})
	}

	// list: newest first, with what each receipt says.
	r := e.run("list", "--config", e.cfgPath, "--json", "--host", strings.ToLower(host))
	if r.code != 0 {
		t.Fatalf("list: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var l listDoc
	decodeStrict(t, r.stdout, &l)
	if l.Status != "ok" || len(l.Copies) != 3 || l.Destinations[0].Copies != 3 {
		t.Fatalf("list: %+v", l)
	}
	for i, c := range l.Copies {
		want := copies[2-i].rec
		d := want.Destinations[0]
		if c.SHA256 != want.File.SHA256 || c.VersionID != d.VersionID || c.Location != d.Location || !c.Receipt || !c.Current || c.Bytes != 150 || c.Host != host || c.Instance != instance {
			t.Errorf("list row %d: %+v, want the copy of %s", i, c, d.Location)
		}
		if w.versioned && (c.VersionID == "" || c.Retention == nil || !c.RetentionInForce) {
			t.Errorf("list row %d: version %q retention %+v in force %v", i, c.VersionID, c.Retention, c.RetentionInForce)
		}
	}
	if r := e.run("list", "--config", e.cfgPath); r.code != 0 || !strings.Contains(r.stdout, copies[2].rec.File.SHA256) || !strings.Contains(r.stdout, "3 copies") {
		t.Errorf("list as text: exit %d\n%s", r.code, r.stdout)
	}

	// verify: all good, and the metrics say so.
	r = e.run("verify", "--config", e.cfgPath, "--json", "--host", host)
	var a auditDoc
	decodeStrict(t, r.stdout, &a)
	if r.code != 0 || a.Status != "ok" {
		t.Fatalf("verify: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	g := a.Destinations[0].Groups[0]
	if g.Copies != 3 || len(g.Checked) != 3 || g.Stale || g.Newest == nil {
		t.Fatalf("verify group: %+v", g)
	}
	for i, c := range g.Checked {
		if c.Status != "verified" || !c.ReadBack || !c.Checksum.Match || c.Checksum.Local != copies[2-i].rec.File.SHA256 || c.Checksum.Remote != c.Checksum.Local {
			t.Errorf("checked %d: %+v", i, c)
		}
	}
	prom, _ := os.ReadFile(metricsFile)
	for _, want := range []string{`keyescrow_last_run_success{command="verify"} 1`, `keyescrow_copy_stale{destination="` + w.destination + `",host="` + host + `",instance="` + instance + `"} 0`, `keyescrow_copies_checked{destination="` + w.destination + `"} 3`} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("metrics lack %s:\n%s", want, prom)
		}
	}

	// Stale: no proven copy younger than max_age.
	r = e.run("verify", "--config", e.cfgPath, "--host", host, "--set", "max_age=1ms")
	if r.code != 8 || !strings.Contains(r.stdout, "stale") || !strings.Contains(r.stderr, "max_age") {
		t.Errorf("verify with max_age 1ms: exit %d, want 8\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if prom, _ := os.ReadFile(metricsFile); !strings.Contains(string(prom), `keyescrow_last_run_exit_code{command="verify"} 8`) {
		t.Errorf("metrics after the stale run:\n%s", prom)
	}

	// restore --at: the newest copy stored at or before the time.
	at := copies[1].rec.FinishedAt.Add(time.Second).UTC().Format(time.RFC3339Nano)
	out := filepath.Join(e.root, "restored-at.key")
	r = e.run("restore", "--config", e.cfgPath, "--json", "--host", host, "--at", at, "--out", out)
	if r.code != 0 {
		t.Fatalf("restore --at: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertRestored(t, out, copies[1].content)
	rec := parseReceipt(t, r.stdout)
	if rec.Status != "ok" || rec.File.SHA256 != copies[1].rec.File.SHA256 || rec.Destinations[0].Status != "verified" || !rec.Destinations[0].ReadBack || rec.Restore == nil || rec.Restore.Out != out {
		t.Errorf("restore receipt: %+v", rec)
	}
	if w.versioned {
		out := filepath.Join(e.root, "restored-v1.key")
		v1 := copies[0].rec.Destinations[0].VersionID
		if r := e.run("restore", "--config", e.cfgPath, "--host", host, "--version-id", v1, "--destination", w.destination, "--out", out); r.code != 0 {
			t.Fatalf("restore --version-id: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		assertRestored(t, out, copies[0].content)
	}
	// The newest by default; never over an existing file.
	out = filepath.Join(e.root, "restored.key")
	if r := e.run("restore", "--config", e.cfgPath, "--host", host, "--out", out); r.code != 0 {
		t.Fatalf("restore: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertRestored(t, out, copies[2].content)
	if r := e.run("restore", "--config", e.cfgPath, "--host", host, "--out", out); r.code != 2 || !strings.Contains(r.stderr, "never overwrites") {
		t.Errorf("restore over an existing file: exit %d, want 2\n%s", r.code, r.stderr)
	}
	assertRestored(t, out, copies[2].content)

	// A corrupted stored copy: verify catches it, restore refuses it.
	newest := copies[2].rec.Destinations[0]
	w.corrupt(t, copies[2].content, newest.Location, newest.VersionID)
	r = e.run("verify", "--config", e.cfgPath, "--json", "--host", host)
	decodeStrict(t, r.stdout, &a)
	if r.code != 6 || a.Status != "failed" || a.Destinations[0].Groups[0].Checked[0].Status != "failed" {
		t.Fatalf("verify after corruption: exit %d, want 6\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if msg := a.Destinations[0].Groups[0].Checked[0].Error.Message; !strings.Contains(msg, "corrupted") {
		t.Errorf("the failure does not say the copy is corrupted: %s", msg)
	}
	if prom, _ := os.ReadFile(metricsFile); !strings.Contains(string(prom), `keyescrow_copies_failed{destination="`+w.destination+`"} 1`) {
		t.Errorf("metrics after the corruption:\n%s", prom)
	}
	out = filepath.Join(e.root, "refused.key")
	r = e.run("restore", "--config", e.cfgPath, "--json", "--host", host, "--out", out)
	if r.code != 6 || !strings.Contains(r.stderr, "corrupted") {
		t.Errorf("restore of the corrupted copy: exit %d, want 6\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused restore wrote %s (%v)", out, err)
	}

	// Fleet mode sees the host without downloading anything.
	r = e.run("verify", "--config", e.cfgPath, "--json", "--all-hosts")
	decodeStrict(t, r.stdout, &a)
	if r.code != 0 || a.Mode != "all-hosts" || len(a.Destinations[0].Groups) != 1 || a.Destinations[0].Groups[0].Host != host || a.Destinations[0].Groups[0].Copies != 3 {
		t.Errorf("verify --all-hosts: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func assertRestored(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: %v, %d bytes, want the archived %d bytes", path, err, len(got), len(want))
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
}

func corruptInDataDir(dir string) func(t *testing.T, content []byte, _, _ string) {
	return func(t *testing.T, content []byte, _, _ string) {
		t.Helper()
		n, err := testsrv.CorruptStored(dir, content)
		if err != nil || n == 0 {
			t.Fatalf("corrupting the stored copy under %s: %d files, %v", dir, n, err)
		}
	}
}

func TestReadCommandsOnS3(t *testing.T) {
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3srv.Start(t, kind, s3Region)
			e := newS3Env(t, srv, lockBucket())
			w := readWorld{e: e.env, destination: "offsite-s3", versioned: true, corrupt: corruptInDataDir(srv.DataDir)}
			if kind == s3srv.MinIO {
				// MinIO keeps a small object inline in its metadata file,
				// guarded by a bitrot hash, and refuses to serve it when
				// changed there (TestACopyMinIOCannotServeIsNeverGood); a
				// copy altered on the way back (the proxy) stands for a
				// service that returns wrong bytes.
				w.corrupt = func(t *testing.T, _ []byte, location, _ string) {
					e.proxy.TamperKey(e.bucket, strings.TrimPrefix(location, "s3://"+e.bucket+"/"))
				}
			}
			readScenario(t, w)
		})
	}
}

func TestReadCommandsOnAzurite(t *testing.T) {
	a := newAzEnv(t, false)
	name, _ := a.container()
	a.writeAzConfig(map[string]string{"account_url": a.srv.AccountURL, "container": name, "auth": "shared-key",
		"account_key_env": "KEYESCROW_TEST_AZ_ACCOUNT_KEY"}, "region", "versioning", "immutability")
	readScenario(t, readWorld{e: a.env, destination: "offsite-azure", corrupt: corruptInDataDir(a.srv.DataDir)})
}

func TestReadCommandsOnRecordedAzure(t *testing.T) {
	a, srv := newRecordedAzEnv(t)
	readScenario(t, readWorld{e: a.env, destination: "offsite-azure", versioned: true,
		corrupt: func(t *testing.T, _ []byte, location, versionID string) {
			if !srv.Corrupt("sqlkeys", blobName(t, location, "sqlkeys"), versionID) {
				t.Fatalf("no stored version %s of %s", versionID, location)
			}
		}})
}

// Wrong credentials: every read command says so with exit 5, --json stays
// one document, and nothing is written.
func TestReadCommandsWithWrongCredentials(t *testing.T) {
	srv := s3srv.Start(t, s3srv.VersityGW, s3Region)
	e := newS3Env(t, srv, lockBucket())
	wrong := "Wr0ng" + testutil.RandHex(16)
	e.vars["AWS_SECRET_ACCESS_KEY"] = wrong
	e.secrets = append(e.secrets, wrong)

	r := e.run("list", "--config", e.cfgPath, "--json")
	var l listDoc
	decodeStrict(t, r.stdout, &l)
	if r.code != 5 || l.Status != "failed" || l.ExitCode != 5 || l.Destinations[0].Error == nil || !strings.Contains(l.Destinations[0].Error.Message, "credentials") {
		t.Errorf("list: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = e.run("verify", "--config", e.cfgPath, "--json", "--host", "SQLHOST07")
	var a auditDoc
	decodeStrict(t, r.stdout, &a)
	if r.code != 5 || a.Status != "failed" || a.Destinations[0].Error == nil {
		t.Errorf("verify: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	out := filepath.Join(e.root, "smk.key")
	if r := e.run("restore", "--config", e.cfgPath, "--host", "SQLHOST07", "--out", out); r.code != 5 || !strings.Contains(r.stderr, "credentials") {
		t.Errorf("restore: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed restore wrote %s", out)
	}
}

// MinIO guards a small object's bytes on disk with a bitrot hash: a byte
// flipped there makes it refuse the read (503 SlowDownRead) rather than
// serve wrong bytes. Such a copy never counts as proven: verify reports it
// and, with no other copy, the host as stale (exit 8); restore refuses it
// (exit 5) and writes nothing.
func TestACopyMinIOCannotServeIsNeverGood(t *testing.T) {
	srv := s3srv.Start(t, s3srv.MinIO, s3Region)
	e := newS3Env(t, srv, lockBucket())
	content := make([]byte, 150)
	_, _ = rand.Read(content)
	f := filepath.Join(e.root, "smk.key")
	if err := os.WriteFile(f, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.run("archive", "--config", e.cfgPath, "--host", "SQLHOST07", "--instance", "I", f); r.code != 0 {
		t.Fatalf("archive: exit %d\n%s", r.code, r.stderr)
	}
	if n, err := testsrv.CorruptStored(srv.DataDir, content); err != nil || n == 0 {
		t.Fatalf("corrupting MinIO's stored copy: %d files, %v", n, err)
	}
	r := e.run("verify", "--config", e.cfgPath, "--json", "--host", "SQLHOST07")
	var a auditDoc
	decodeStrict(t, r.stdout, &a)
	g := a.Destinations[0].Groups[0]
	if r.code != 8 || g.Newest != nil || g.Checked[0].Status != "failed" || g.Checked[0].Error.Code != 5 {
		t.Errorf("verify: exit %d, want 8 with the copy failed (5)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	out := filepath.Join(e.root, "restored.key")
	if r := e.run("restore", "--config", e.cfgPath, "--host", "SQLHOST07", "--out", out); r.code != 5 {
		t.Errorf("restore: exit %d, want 5\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused restore wrote %s", out)
	}
}

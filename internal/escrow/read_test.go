package escrow

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/filestore"
	"github.com/keyescrow/keyescrow/internal/storage/memstore"
)

// archive is a read test's world: an in-memory S3-like store and a folder,
// filled by the real archive pipeline at times the test chooses.
type archive struct {
	t      *testing.T
	now    time.Time
	mem    *memstore.Store
	file   storage.Backend
	runner *Runner
	logs   *lockedBuffer
	dir    string
}

func newArchive(t *testing.T, retentionDays int) *archive {
	t.Helper()
	a := &archive{t: t, now: testNow, logs: &lockedBuffer{}, dir: t.TempDir()}
	var err error
	a.mem, err = memstore.New(memstore.Options{Versioning: true, ObjectLock: true, Region: "us-east-2", Name: "corp-sql-keys",
		Clock: func() time.Time { return a.now }})
	if err != nil {
		t.Fatal(err)
	}
	usb := filepath.Join(a.dir, "usb")
	if err := os.Mkdir(usb, 0o700); err != nil {
		t.Fatal(err)
	}
	a.file, err = filestore.New(filestore.Options{Path: usb, Clock: func() time.Time { return a.now }})
	if err != nil {
		t.Fatal(err)
	}
	memCfg := config.Destination{Name: memName, Type: config.TypeS3, Bucket: "corp-sql-keys", Region: "us-east-2", Prefix: memPrefix,
		Retention: &config.Retention{Mode: "COMPLIANCE", Days: retentionDays}}
	fileCfg := config.Destination{Name: fileName, Type: config.TypeFile, Path: usb}
	cfg := &config.Config{HomeRegion: homeRegion, MaxAge: config.Duration(8 * 24 * time.Hour), Verify: config.Verify{Copies: 3},
		Destinations: []config.Destination{memCfg, fileCfg}}
	a.runner = &Runner{
		Config:       cfg,
		Destinations: []Destination{{Config: memCfg, Backend: a.mem}, {Config: fileCfg, Backend: a.file}},
		Log:          slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:        func() time.Time { return a.now },
		Version:      "test",
		RunID:        NewRunID(),
		Lock:         func() (func(), error) { return func() {}, nil },
	}
	return a
}

// put archives content as host/instance at time at; it returns the copy's
// SHA-256.
func (a *archive) put(host, instance string, at time.Time, content string) string {
	a.t.Helper()
	a.now = at
	a.runner.RunID = NewRunID()
	a.runner.Hostname = host
	f := filepath.Join(a.dir, "smk.key")
	os.Remove(f)
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		a.t.Fatal(err)
	}
	rec, err := a.runner.Archive(testContext(a.t), f, instance)
	if err != nil {
		a.t.Fatalf("archive %s/%s at %s: %v", host, instance, at, err)
	}
	return rec.File.SHA256
}

func (a *archive) list(opts ListOptions) []Copy {
	a.t.Helper()
	var out []Copy
	if _, err := a.runner.List(testContext(a.t), opts, func(c Copy) error { out = append(out, c); return nil }); err != nil {
		a.t.Fatalf("list: %v", err)
	}
	return out
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestListShowsEveryHostNewestFirstWithWhatTheReceiptsSay(t *testing.T) {
	a := newArchive(t, 30)
	a.put("SQLA", "MSSQLSERVER", testNow, "a1")
	a.put("SQLA", "MSSQLSERVER", testNow.Add(2*time.Hour), "a2")
	a.put("SQLA", "MSSQLSERVER", testNow.Add(time.Hour), "a3") // stored out of name order
	a.put("SQLB", "INST1", testNow.Add(3*time.Hour), "b1")
	a.now = testNow.Add(4 * time.Hour)

	got := a.list(ListOptions{Destination: memName})
	var order []string
	for _, c := range got {
		order = append(order, c.Host+":"+c.SHA256[:8])
		if !c.Receipt || !c.Current || c.VersionID == "" || c.Bytes != 2 || c.Note != "" {
			t.Errorf("copy %+v: want a current, receipted, versioned 2-byte copy without a note", c)
		}
		if c.Retention == nil || c.Retention.Mode != "COMPLIANCE" || !c.RetentionInForce {
			t.Errorf("copy %s: retention %+v in force %v, want COMPLIANCE in force", c.Key, c.Retention, c.RetentionInForce)
		}
	}
	want := []string{"SQLA:" + sum("a2")[:8], "SQLA:" + sum("a3")[:8], "SQLA:" + sum("a1")[:8], "SQLB:" + sum("b1")[:8]}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("order %v, want %v (per host newest first)", order, want)
	}

	if got := a.list(ListOptions{Filter: Filter{Host: "sqla"}, Limit: 1}); len(got) != 2 || got[0].SHA256 != sum("a2") || got[1].Destination != fileName {
		t.Errorf("host sqla, limit 1, both destinations: got %+v", got)
	}
	if got := a.list(ListOptions{Filter: Filter{Instance: "inst1"}, NoReceipts: true}); len(got) != 2 || got[0].SHA256 != "" || got[0].Host != "SQLB" {
		t.Errorf("instance inst1 without receipts: got %+v", got)
	}
	if _, err := a.runner.List(testContext(t), ListOptions{Destination: "nope"}, func(Copy) error { return nil }); exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), memName) {
		t.Errorf("an unknown destination: err %v, want exit 2 naming the configured ones", err)
	}
}

func TestListMarksAVersionNotWrittenByTheReceiptedRun(t *testing.T) {
	a := newArchive(t, 30)
	a.put("SQLA", "MSSQLSERVER", testNow, "good")
	c := a.list(ListOptions{Destination: memName})[0]
	// Someone hides the copy behind a delete marker and writes another
	// version under its key.
	if err := a.mem.Delete(testContext(t), c.Key, "", false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.mem.Put(testContext(t), c.Key, []byte("tampered"), storage.PutOptions{SHA256: sha(t, "tampered")}); err != nil {
		t.Fatal(err)
	}
	got := a.list(ListOptions{Destination: memName})
	if len(got) != 2 {
		t.Fatalf("got %d copies, want both versions: %+v", len(got), got)
	}
	for _, c := range got {
		switch {
		case c.Bytes == 8 && (c.SHA256 != "" || !strings.Contains(c.Note, "not written by keyescrow")):
			t.Errorf("the foreign version: %+v, want no SHA-256 and a note", c)
		case c.Bytes != 8 && (c.Current || c.SHA256 != sum("good")):
			t.Errorf("the hidden original: %+v, want not current and its receipt's SHA-256", c)
		}
	}
}

func sha(t *testing.T, s string) []byte {
	t.Helper()
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func (a *archive) verify(opts VerifyOptions) (*Audit, error) {
	a.t.Helper()
	if opts.Copies == 0 {
		opts.Copies = 3
	}
	aud, err := a.runner.Verify(testContext(a.t), opts)
	if aud == nil {
		a.t.Fatalf("no audit (err %v)", err)
	}
	if got := exitcode.Code(err); got != aud.ExitCode {
		a.t.Errorf("audit exit_code %d, err's %d", aud.ExitCode, got)
	}
	return aud, err
}

func TestVerifyTellsAllGoodFromStaleFromBroken(t *testing.T) {
	a := newArchive(t, 30)
	for i := range 4 {
		a.put("SQLA", "MSSQLSERVER", testNow.Add(time.Duration(i)*24*time.Hour), "key")
	}
	a.now = testNow.Add(4 * 24 * time.Hour)

	aud, err := a.verify(VerifyOptions{Filter: Filter{Host: "sqla"}})
	if err != nil || aud.Status != AuditOK {
		t.Fatalf("all good: %v, status %s", err, aud.Status)
	}
	for _, d := range aud.Destinations {
		g := d.Groups[0]
		// The folder's copies carry their files' real modification times.
		if g.Copies != 4 || len(g.Checked) != 3 || g.Stale || g.Newest == nil || (d.Name == memName && !g.Newest.Equal(testNow.Add(3*24*time.Hour))) {
			t.Errorf("%s: %+v, want 4 copies, 3 checked, the newest from day 3", d.Name, g)
		}
		for _, c := range g.Checked {
			if c.Status != receipt.DestVerified || !c.ReadBack || !c.Checksum.Match || c.Checksum.Local != sum("key") || c.Checksum.Remote != sum("key") {
				t.Errorf("%s: checked %+v", d.Name, c)
			}
		}
	}

	t.Run("stale", func(t *testing.T) {
		a.now = testNow.Add(12 * 24 * time.Hour)
		defer func() { a.now = testNow.Add(4 * 24 * time.Hour) }()
		aud, err := a.verify(VerifyOptions{Filter: Filter{Host: "SQLA"}})
		if exitcode.Code(err) != exitcode.Stale || aud.Status != AuditStale || !aud.Destinations[0].Groups[0].Stale {
			t.Errorf("9 days after the newest copy: err %v status %s, want exit 8 stale", err, aud.Status)
		}
	})
	t.Run("a host without copies is stale", func(t *testing.T) {
		aud, err := a.verify(VerifyOptions{Filter: Filter{Host: "SQLZ"}})
		if exitcode.Code(err) != exitcode.Stale || len(aud.Destinations[0].Groups) != 1 || aud.Destinations[0].Groups[0].Newest != nil {
			t.Errorf("err %v, audit %+v", err, aud.Destinations)
		}
	})
	t.Run("a corrupted copy is caught and the newest good one counts", func(t *testing.T) {
		newest := a.list(ListOptions{Destination: memName})[0]
		a.mem.Corrupt(newest.Key, newest.VersionID)
		aud, err := a.verify(VerifyOptions{Filter: Filter{Host: "SQLA"}})
		if exitcode.Code(err) != exitcode.Verify || aud.Status != AuditFailed {
			t.Fatalf("err %v status %s, want exit 6", err, aud.Status)
		}
		g := aud.Destinations[0].Groups[0]
		bad := g.Checked[0]
		if bad.Status != receipt.DestFailed || !strings.Contains(bad.Error.Message, "corrupted") || bad.Checksum.Match {
			t.Errorf("the corrupted copy: %+v", bad)
		}
		if g.Newest == nil || !g.Newest.Equal(testNow.Add(2*24*time.Hour)) {
			t.Errorf("newest proven %v, want day 2 (the one before the corrupted)", g.Newest)
		}
		if aud.Destinations[1].Status != AuditOK {
			t.Errorf("the folder's copies are intact: %+v", aud.Destinations[1])
		}
		if !strings.Contains(a.logs.String(), "corrupted") {
			t.Errorf("the log does not name the corruption:\n%s", a.logs.String())
		}
	})
}

func TestVerifyFindsACopyWithoutReceiptAndALapsedLock(t *testing.T) {
	a := newArchive(t, 1)
	a.put("SQLA", "MSSQLSERVER", testNow, "one")
	a.put("SQLA", "MSSQLSERVER", testNow.Add(time.Hour), "two")
	a.now = testNow.Add(3 * 24 * time.Hour)
	aud, err := a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: "SQLA"}})
	if exitcode.Code(err) != exitcode.Verify {
		t.Fatalf("the newest copy's lock has lapsed: err %v, want exit 6", err)
	}
	g := aud.Destinations[0].Groups[0]
	if c := g.Checked[0]; c.Status != receipt.DestFailed || !strings.Contains(c.Error.Message, "no longer locked") || c.RetentionInForce {
		t.Errorf("newest: %+v", c)
	}
	if len(g.Warnings) != 1 || !strings.Contains(g.Warnings[0], "no longer locked") {
		t.Errorf("the older lapsed copy is a warning: %v", g.Warnings)
	}

	// A key written without a receipt (a run that failed before proving).
	a.now = testNow.Add(3*24*time.Hour + time.Hour)
	key := objectKey(memPrefix, "SQLA", "MSSQLSERVER", receipt.KindServiceMasterKey, "SQLA-servicemasterkey-20261201T000000Z-deadbeef.key")
	until := a.now.Add(48 * time.Hour)
	if _, err := a.mem.Put(testContext(t), key, []byte("x"), storage.PutOptions{SHA256: sha(t, "x"), Retention: &storage.Retention{Mode: "COMPLIANCE", Until: until}}); err != nil {
		t.Fatal(err)
	}
	// It is not corruption: a warning naming its run, and not counted (the
	// audit still fails for the lapsed lock of the newest genuine copy).
	aud, err = a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: "SQLA"}})
	g = aud.Destinations[0].Groups[0]
	if exitcode.Code(err) != exitcode.Verify || strings.Contains(err.Error(), "no receipt") || !strings.Contains(g.Checked[0].Error.Message, "no longer locked") {
		t.Errorf("err %v, checked %+v", err, g.Checked)
	}
	if len(g.Skipped) != 1 || g.Skipped[0].Reason != receipt.SkipUnfinished || g.Skipped[0].RunID != "deadbeef" || g.Skipped[0].Evidence {
		t.Errorf("skipped %+v, want the unfinished copy of run deadbeef", g.Skipped)
	}
	if !strings.Contains(strings.Join(g.Warnings, "\n"), "deadbeef") {
		t.Errorf("no warning names the run: %v", g.Warnings)
	}
}

func TestVerifyAllHostsReportsEveryHostWithItsAge(t *testing.T) {
	a := newArchive(t, 30)
	a.put("SQLA", "MSSQLSERVER", testNow, "a")
	a.put("SQLB", "MSSQLSERVER", testNow.Add(-10*24*time.Hour), "b-old")
	a.put("SQLC", "INST1", testNow.Add(-time.Hour), "c")
	a.put("SQLC", "INST2", testNow.Add(-2*time.Hour), "c2")
	a.now = testNow.Add(time.Hour)
	aud, err := a.verify(VerifyOptions{Destination: memName, AllHosts: true})
	if exitcode.Code(err) != exitcode.Stale || aud.Mode != "all-hosts" {
		t.Fatalf("one host is stale: err %v mode %s", err, aud.Mode)
	}
	var got []string
	for _, g := range aud.Destinations[0].Groups {
		got = append(got, g.Host+"/"+g.Instance+"="+g.Status)
		if len(g.Checked) != 0 {
			t.Errorf("fleet mode downloads nothing: %+v", g.Checked)
		}
	}
	if want := "SQLA/MSSQLSERVER=ok SQLB/MSSQLSERVER=stale SQLC/INST1=ok SQLC/INST2=ok"; strings.Join(got, " ") != want {
		t.Errorf("groups %v, want %s", got, want)
	}
	if g := aud.Destinations[0].Groups[0]; g.NewestAgeSeconds < 3599 || g.NewestAgeSeconds > 3601 {
		t.Errorf("SQLA's age %v s, want an hour", g.NewestAgeSeconds)
	}
}

func TestRestoreWritesTheChosenVerifiedCopyOwnerOnly(t *testing.T) {
	a := newArchive(t, 30)
	a.put("SQLA", "MSSQLSERVER", testNow, "v1")
	a.put("SQLA", "MSSQLSERVER", testNow.Add(time.Hour), "v2")
	a.put("SQLA", "MSSQLSERVER", testNow.Add(2*time.Hour), "v3")
	a.now = testNow.Add(3 * time.Hour)
	restore := func(opts RestoreOptions) (*receipt.Receipt, []byte, error) {
		t.Helper()
		opts.Out = filepath.Join(t.TempDir(), "smk.key")
		if opts.Filter.Host == "" {
			opts.Filter.Host = "sqla"
		}
		rec, err := a.runner.Restore(testContext(t), opts)
		data, _ := os.ReadFile(opts.Out)
		if err == nil {
			fi, serr := os.Stat(opts.Out)
			if serr != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
				t.Errorf("--out: %v, mode %v, want 0600", serr, fi.Mode())
			}
		} else if data != nil {
			t.Errorf("a failed restore left %s behind", opts.Out)
		}
		return rec, data, err
	}

	if rec, data, err := restore(RestoreOptions{}); err != nil || string(data) != "v3" || rec.Destinations[0].Name != memName || rec.File.SHA256 != sum("v3") {
		t.Errorf("the newest: %v, %q, %+v", err, data, rec)
	}
	at := testNow.Add(90 * time.Minute)
	if _, data, err := restore(RestoreOptions{At: &at}); err != nil || string(data) != "v2" {
		t.Errorf("--at between v2 and v3: %v, %q", err, data)
	}
	early := testNow.Add(-time.Minute)
	if _, _, err := restore(RestoreOptions{At: &early}); exitcode.Code(err) != exitcode.Usage {
		t.Errorf("--at before every copy: %v, want exit 2", err)
	}
	v1 := a.list(ListOptions{Destination: memName})[2]
	if _, data, err := restore(RestoreOptions{VersionID: v1.VersionID, Destination: memName}); err != nil || string(data) != "v1" {
		t.Errorf("--version-id of v1: %v, %q", err, data)
	}

	// The newest copy at the first destination is corrupted: restore
	// refuses it and takes the folder's, or fails when told to use it.
	newest := a.list(ListOptions{Destination: memName})[0]
	a.mem.Corrupt(newest.Key, newest.VersionID)
	if rec, data, err := restore(RestoreOptions{}); err != nil || string(data) != "v3" || len(rec.Destinations) != 2 || rec.Destinations[0].Status != receipt.DestFailed || rec.Destinations[1].Status != receipt.DestVerified {
		t.Errorf("falls back to the folder: %v, %q, %+v", err, data, rec.Destinations)
	}
	if rec, _, err := restore(RestoreOptions{Destination: memName}); exitcode.Code(err) != exitcode.Verify || rec.Status != receipt.StatusFailed {
		t.Errorf("only the corrupted destination: %v, want exit 6", err)
	}

	out := filepath.Join(t.TempDir(), "exists.key")
	if err := os.WriteFile(out, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.runner.Restore(testContext(t), RestoreOptions{Filter: Filter{Host: "SQLA"}, Out: out}); exitcode.Code(err) != exitcode.Usage {
		t.Errorf("an existing --out: %v, want exit 2", err)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, []byte("keep me")) {
		t.Errorf("an existing --out was changed: %q", b)
	}
	for name, opts := range map[string]RestoreOptions{
		"force without apply":     {Filter: Filter{Host: "SQLA"}, Out: filepath.Join(t.TempDir(), "x"), Force: true},
		"force without confirm":   {Filter: Filter{Host: "SQLA"}, Apply: true, Force: true, ServerDirectory: "/x"},
		"neither out nor apply":   {Filter: Filter{Host: "SQLA"}},
		"both version id and at":  {Filter: Filter{Host: "SQLA"}, Out: filepath.Join(t.TempDir(), "x"), VersionID: "v", At: &at},
		"apply without directory": {Filter: Filter{Host: "SQLA"}, Apply: true},
	} {
		if _, err := a.runner.Restore(testContext(t), opts); exitcode.Code(err) != exitcode.Usage {
			t.Errorf("%s: %v, want exit 2", name, err)
		}
	}
}

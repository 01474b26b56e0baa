package escrow

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/memstore"
)

// assertFailedAt checks a run that failed at the in-memory destination with
// code, and returns that destination's receipt entry.
func assertFailedAt(t *testing.T, e *env, rec *receipt.Receipt, err error, code int, msg string) receipt.Destination {
	t.Helper()
	if got := exitcode.Code(err); got != code {
		t.Fatalf("exit code %d (%v), want %d", got, err, code)
	}
	if rec.Status != receipt.StatusFailed || rec.ExitCode != code {
		t.Errorf("receipt status %q exit %d, want failed and %d", rec.Status, rec.ExitCode, code)
	}
	d := dest(t, rec, memName)
	if d.Status != receipt.DestFailed || d.Error == nil || d.Error.Code != code {
		t.Fatalf("destination status %q error %+v, want failed with code %d", d.Status, d.Error, code)
	}
	if !strings.Contains(d.Error.Message, msg) {
		t.Errorf("destination error %q does not say %q", d.Error.Message, msg)
	}
	if rec.Error != nil {
		t.Errorf("the run's error %+v repeats what the destination explains", rec.Error)
	}
	if _, err := os.Stat(e.localKeyPath()); err != nil {
		t.Errorf("the local key file must be kept when a copy is not proven: %v", err)
	}
	if _, err := e.mem.Stat(t.Context(), receiptKey(e.memKey()), ""); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a receipt was stored beside an unproven copy (%v)", err)
	}
	// The other copy is proven: its receipt is stored and tells the truth.
	if f := dest(t, rec, fileName); f.Status == receipt.DestVerified {
		assertStoredClaimsNoMore(t, mustReadFile(t, e.fileDir, receiptKey(e.fileKey())), memName)
	}
	return d
}

func TestACopyWhoseBytesChangedIsNotVerified(t *testing.T) {
	// The bytes change at rest right after the write, while the service's
	// stored checksum stays: the read-back catches it.
	e := newEnv(t, func(s *setup) {
		s.wrap = func(b storage.Backend) storage.Backend {
			return corruptAfterPut{Backend: b}
		}
	})
	rec, err := e.backup()
	d := assertFailedAt(t, e, rec, err, exitcode.Verify, "the bytes read back")
	if !d.ReadBack || d.Checksum.Match {
		t.Errorf("read_back %v match %v, want true and false", d.ReadBack, d.Checksum.Match)
	}
	if d.Checksum.Remote != d.Checksum.Local {
		t.Errorf("the service's own checksum (%s) should still match (%s): only the bytes changed", d.Checksum.Remote, d.Checksum.Local)
	}
	if f := dest(t, rec, fileName); f.Status != receipt.DestVerified {
		t.Errorf("the file destination %+v, want verified", f)
	}
}

// corruptAfterPut corrupts every key copy it stores (not receipts) as soon
// as the service has stored it.
type corruptAfterPut struct{ storage.Backend }

func (c corruptAfterPut) Put(ctx context.Context, key string, data []byte, opts storage.PutOptions) (storage.Object, error) {
	o, err := c.Backend.Put(ctx, key, data, opts)
	if err == nil && !strings.HasSuffix(key, receiptSuffix) {
		c.Backend.(*memstore.Store).Corrupt(key, o.VersionID)
	}
	return o, err
}

func TestACopyTheServiceMisdescribesIsNotVerified(t *testing.T) {
	retention := func(r *storage.Retention) func(storage.Object) storage.Object {
		return func(o storage.Object) storage.Object { o.Retention = r; return o }
	}
	cases := []struct {
		name  string
		b     func(storage.Backend) *backend
		msg   string
		match bool
	}{
		{
			name: "a service checksum that differs",
			b: func(s storage.Backend) *backend {
				return &backend{Backend: s, stat: func(o storage.Object) storage.Object {
					o.SHA256 = make([]byte, 32)
					return o
				}}
			},
			msg: "the service's SHA-256 0000",
		},
		{
			name: "no service checksum",
			b: func(s storage.Backend) *backend {
				return &backend{Backend: s, stat: func(o storage.Object) storage.Object { o.SHA256 = nil; return o }}
			},
			msg: "reported no SHA-256",
		},
		{
			name: "a service MD5 that differs",
			b: func(s storage.Backend) *backend {
				return &backend{Backend: s, stat: func(o storage.Object) storage.Object { o.MD5 = make([]byte, 16); return o }}
			},
			msg: "MD5 differs",
		},
		{
			name: "a size that differs",
			b: func(s storage.Backend) *backend {
				return &backend{Backend: s, stat: func(o storage.Object) storage.Object { o.Size++; return o }}
			},
			msg: "bytes, the key file",
		},
		{
			name:  "no retention",
			b:     func(s storage.Backend) *backend { return &backend{Backend: s, stat: retention(nil)} },
			msg:   "the stored copy has none",
			match: true,
		},
		{
			name: "a retention ending too early",
			b: func(s storage.Backend) *backend {
				return &backend{Backend: s, stat: retention(&storage.Retention{Mode: "COMPLIANCE", Until: testNow.Add(29 * 24 * time.Hour)})}
			},
			msg:   "before the",
			match: true,
		},
		{
			name: "a weaker retention mode",
			b: func(s storage.Backend) *backend {
				return &backend{Backend: s, stat: retention(&storage.Retention{Mode: "GOVERNANCE", Until: testNow.Add(3650 * 24 * time.Hour)})}
			},
			msg:   "GOVERNANCE, weaker than the COMPLIANCE asked",
			match: true,
		},
		{
			name: "an unknown retention mode",
			b: func(s storage.Backend) *backend {
				return &backend{Backend: s, stat: retention(&storage.Retention{Mode: "NONE", Until: testNow.Add(3650 * 24 * time.Hour)})}
			},
			msg:   "weaker than",
			match: true,
		},
		{
			name: "no version id from a versioned service",
			b: func(s storage.Backend) *backend {
				return &backend{Backend: s, put: func(o storage.Object) storage.Object { o.VersionID = ""; return o }}
			},
			msg: "no version id",
		},
		{
			name: "a version id the service cannot find",
			b: func(s storage.Backend) *backend {
				return &backend{Backend: s, put: func(o storage.Object) storage.Object { o.VersionID = "no-such-version"; return o }}
			},
			msg: "cannot be found",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(s *setup) { s.wrap = func(b storage.Backend) storage.Backend { return tc.b(b) } })
			rec, err := e.backup()
			d := assertFailedAt(t, e, rec, err, exitcode.Verify, tc.msg)
			if d.Checksum.Match != tc.match {
				t.Errorf("checksum match %v, want %v", d.Checksum.Match, tc.match)
			}
			if d.ReadBack {
				t.Error("read_back is true although the run stopped before reading back")
			}
		})
	}
}

func TestRetentionAtLeast(t *testing.T) {
	until := testNow.Add(time.Hour)
	r := func(mode string, u time.Time) *storage.Retention { return &storage.Retention{Mode: mode, Until: u} }
	cases := []struct {
		name       string
		asked, got *storage.Retention
		ok         bool
	}{
		{"nothing asked, nothing needed", nil, nil, true},
		{"nothing asked, a default lock is fine", nil, r("GOVERNANCE", until), true},
		{"the same lock", r("COMPLIANCE", until), r("COMPLIANCE", until), true},
		{"a longer lock", r("COMPLIANCE", until), r("COMPLIANCE", until.Add(time.Second)), true},
		{"a stronger mode", r("GOVERNANCE", until), r("COMPLIANCE", until), true},
		{"modes compared without case", r("compliance", until), r("COMPLIANCE", until), true},
		{"Azure locked is as strong as COMPLIANCE", r("COMPLIANCE", until), r("locked", until), true},
		{"Azure unlocked is weaker than locked", r("locked", until), r("unlocked", until), false},
		{"a missing lock", r("GOVERNANCE", until), nil, false},
		{"a second short", r("COMPLIANCE", until), r("COMPLIANCE", until.Add(-time.Second)), false},
		{"a weaker mode", r("COMPLIANCE", until), r("GOVERNANCE", until.Add(time.Hour)), false},
		{"the same instant in another zone", r("COMPLIANCE", until), r("COMPLIANCE", until.In(time.FixedZone("X", 3600))), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := retentionAtLeast(tc.asked, tc.got); (err == nil) != tc.ok {
				t.Errorf("retentionAtLeast = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestTransferFailuresExitFive(t *testing.T) {
	cases := []struct {
		name string
		op   string
		err  error
		msg  string
	}{
		{"a put refused as corrupted in transit", "put", storage.ErrChecksum, "corrupted in transit"},
		{"a put with rejected credentials", "put", storage.ErrAuth, "check the destination's credentials"},
		{"a put without permission", "put", storage.ErrPermission, "lack the permission"},
		{"a put onto an existing key", "put", storage.ErrExists, "never overwrites"},
		{"a put to an unavailable service", "put", storage.ErrUnavailable, "could not write"},
		{"a stat that fails", "stat", storage.ErrUnavailable, "could not read the properties of"},
		{"an open that fails", "open", storage.ErrUnavailable, "could not read back"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.mem.Inject(tc.op, tc.err, 1)
			rec, err := e.backup()
			d := assertFailedAt(t, e, rec, err, exitcode.Transfer, tc.msg)
			if d.Status == receipt.DestVerified || d.ReadBack {
				t.Errorf("destination %+v", d)
			}
			if !strings.Contains(d.Error.Message, e.mem.Location(e.memKey())) {
				t.Errorf("the error %q does not name the location", d.Error.Message)
			}
		})
	}
}

func TestAReceiptThatCannotBeStoredFailsTheDestination(t *testing.T) {
	e := newEnv(t)
	var once sync.Once
	// The second put is the receipt's.
	e.mem.Hook("stat", func() { once.Do(func() { e.mem.Inject("put", storage.ErrUnavailable, 1) }) })
	rec, err := e.backup()
	if code := exitcode.Code(err); code != exitcode.Transfer {
		t.Fatalf("exit code %d (%v), want 5", code, err)
	}
	d := dest(t, rec, memName)
	if d.Status != receipt.DestFailed || d.Error == nil || !strings.Contains(d.Error.Message, "the key copy is verified, but") {
		t.Errorf("destination %+v", d)
	}
	if !d.ReadBack || !d.Checksum.Match {
		t.Errorf("the key copy itself was proven: read_back %v match %v", d.ReadBack, d.Checksum.Match)
	}
	if rec.Status != receipt.StatusFailed {
		t.Errorf("status %q", rec.Status)
	}
	if _, err := os.Stat(e.localKeyPath()); err != nil {
		t.Errorf("the local key file must be kept: %v", err)
	}
}

func TestWithSeveralFailingDestinationsTheLargestCodeWins(t *testing.T) {
	auth := newMem(t, "auth", nil)
	auth.Inject("put", storage.ErrAuth, 1)
	refused := newMem(t, "refused", func(o *memstore.Options) { o.Region = homeRegion })
	refusedCfg := memDestConfig("refused")
	refusedCfg.Region = ""
	e := newEnv(t, func(s *setup) {
		s.extra = []Destination{
			{Config: memDestConfig("auth"), Backend: auth},
			{Config: refusedCfg, Backend: refused},
		}
	})
	var once sync.Once
	e.mem.Hook("open", func() { once.Do(func() { e.mem.Corrupt(e.memKey(), "") }) })

	rec, err := e.backup()
	if code := exitcode.Code(err); code != exitcode.Verify {
		t.Fatalf("exit code %d (%v), want 6", code, err)
	}
	want := map[string][2]any{
		fileName:  {receipt.DestVerified, 0},
		memName:   {receipt.DestFailed, exitcode.Verify},
		"auth":    {receipt.DestFailed, exitcode.Transfer},
		"refused": {receipt.DestRefused, exitcode.Policy},
	}
	var order []string
	for _, d := range rec.Destinations {
		order = append(order, d.Name)
		code := 0
		if d.Error != nil {
			code = d.Error.Code
		}
		if w := want[d.Name]; d.Status != w[0] || code != w[1] {
			t.Errorf("%s: status %q code %d, want %v", d.Name, d.Status, code, w)
		}
	}
	if strings.Join(order, ",") != "usb,offsite,auth,refused" {
		t.Errorf("destinations in order %v, want configuration order", order)
	}
	if rec.ExitCode != exitcode.Verify || rec.Status != receipt.StatusFailed {
		t.Errorf("receipt exit %d status %q", rec.ExitCode, rec.Status)
	}
}

func TestAFileDestinationWithRetentionIsRefused(t *testing.T) {
	e := newEnv(t)
	e.runner.Destinations[0].Config.Retention = &config.Retention{Mode: "COMPLIANCE", Days: 30}
	rec, err := e.backup()
	if code := exitcode.Code(err); code != exitcode.Policy {
		t.Fatalf("exit code %d (%v), want 4", code, err)
	}
	if d := dest(t, rec, fileName); d.Status != receipt.DestRefused || !strings.Contains(d.Error.Message, "a file destination cannot enforce it") {
		t.Errorf("file destination %+v", d)
	}
	if d := dest(t, rec, memName); d.Status != receipt.DestVerified {
		t.Errorf("memory destination %+v", d)
	}
}

// readCloser joins a reader and a closer.
type readCloser struct {
	io.Reader
	io.Closer
}

func TestReadBackCatchesBytesTheServiceDescribesCorrectlyButServesWrong(t *testing.T) {
	cases := []struct {
		name string
		open func(io.ReadCloser) io.ReadCloser
		code int
		msg  string
	}{
		{"a longer object", func(rc io.ReadCloser) io.ReadCloser {
			return readCloser{io.MultiReader(rc, strings.NewReader("trailing")), rc}
		}, exitcode.Verify, "the bytes read back"},
		{"a shorter object", func(rc io.ReadCloser) io.ReadCloser {
			return readCloser{io.LimitReader(rc, 10), rc}
		}, exitcode.Verify, "the bytes read back (10,"},
		{"a download that breaks off", func(rc io.ReadCloser) io.ReadCloser {
			return readCloser{io.MultiReader(io.LimitReader(rc, 10), iotest.ErrReader(storage.ErrUnavailable)), rc}
		}, exitcode.Transfer, "could not read back"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(s *setup) {
				s.wrap = func(b storage.Backend) storage.Backend { return &backend{Backend: b, open: tc.open} }
			})
			rec, err := e.backup()
			d := assertFailedAt(t, e, rec, err, tc.code, tc.msg)
			if tc.code == exitcode.Verify && (!d.ReadBack || d.Checksum.Match) {
				t.Errorf("read_back %v match %v, want true and false", d.ReadBack, d.Checksum.Match)
			}
		})
	}
}

func TestARunInterruptedWhileCopyingExits130AndKeepsTheKey(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	e := newEnv(t, func(s *setup) { s.noFile = true })
	e.mem.Hook("put", cancel)
	rec, err := e.runner.Backup(ctx)
	if code := exitcode.Code(err); code != exitcode.Interrupted {
		t.Fatalf("exit code %d (%v), want 130", code, err)
	}
	if rec.ExitCode != exitcode.Interrupted || rec.Status != receipt.StatusFailed {
		t.Errorf("receipt exit %d status %q", rec.ExitCode, rec.Status)
	}
	if d := dest(t, rec, memName); d.Status != receipt.DestFailed || d.Error == nil || d.Error.Code != exitcode.Interrupted {
		t.Errorf("destination %+v", d)
	}
	if _, err := os.Stat(e.localKeyPath()); err != nil {
		t.Errorf("the local key file must be kept when interrupted: %v", err)
	}
}

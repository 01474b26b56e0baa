package escrow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/filestore"
	"github.com/keyescrow/keyescrow/internal/storage/memstore"
)

// Logins of the stand-in and the backup password the tests use.
const (
	adminUser      = "keyescrow"
	adminPass      = "Adm1n-Pa55!dsn"
	plainUser      = "reader"
	plainPass      = "Read3r-Pa55!dsn"
	backupPassword = "Backup-Pa55w0rd!"
	serverName     = "SQLHOST01"
	homeRegion     = "eu-west-1"
	memPrefix      = "sqlkeys/"
	memName        = "offsite"
	fileName       = "usb"
)

// testNow is the fixed clock of the runner and the in-memory store.
var testNow = time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)

// setup is what a test may change before its environment is built.
type setup struct {
	server   mssqltest.Config
	user     string // DSN login
	pass     string
	password string // backup password

	mem     memstore.Options
	memDest config.Destination
	// wrap, when set, wraps the in-memory store as the runner sees it.
	wrap func(storage.Backend) storage.Backend

	noFile bool // no file destination
	// extra destinations, after the two defaults.
	extra []Destination

	waive     []string
	keepLocal bool
	remote    bool // backup.remote
	// serverDir, when set, is backup.server_directory as the server sees
	// it; the stand-in maps it onto the key folder.
	serverDir string
	// keyDirName is the key folder's name inside the test's temp dir.
	keyDirName string
	// lock, when set, replaces the no-op lock.
	lock func() (func(), error)
}

// env is one test's stand-in, destinations and runner.
type env struct {
	t      *testing.T
	srv    *mssqltest.Server
	keyDir string // the key folder as this host sees it
	// serverDir is backup.server_directory: keyDir unless setup.serverDir.
	serverDir string
	fileDir   string
	mem       *memstore.Store
	runner    *Runner
	logs      *lockedBuffer
	dsn       string

	connects atomic.Int32
	locks    atomic.Int32
}

func newEnv(t *testing.T, mods ...func(*setup)) *env {
	t.Helper()
	root := t.TempDir()
	s := &setup{
		server: mssqltest.Config{
			Logins: []mssqltest.Login{
				{User: adminUser, Password: adminPass, ControlServer: true},
				{User: plainUser, Password: plainPass},
			},
			ServerName: serverName,
			Logf:       t.Logf,
		},
		user:     adminUser,
		pass:     adminPass,
		password: backupPassword,
		mem: memstore.Options{
			Versioning: true, ObjectLock: true, Region: "us-east-2", Name: "corp-sql-keys",
			Clock: func() time.Time { return testNow },
		},
		memDest: config.Destination{
			Name: memName, Type: config.TypeS3, Bucket: "corp-sql-keys", Region: "us-east-2", Prefix: memPrefix,
			Retention: &config.Retention{Mode: "COMPLIANCE", Days: 30},
		},
		keyDirName: "keys",
	}
	for _, m := range mods {
		m(s)
	}

	e := &env{t: t, logs: &lockedBuffer{}}
	e.keyDir = filepath.Join(root, s.keyDirName)
	if err := os.Mkdir(e.keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.fileDir = filepath.Join(root, "usb")
	if err := os.Mkdir(e.fileDir, 0o700); err != nil {
		t.Fatal(err)
	}

	if s.serverDir != "" {
		s.server.MapPath = func(p string) (string, error) {
			rest, ok := strings.CutPrefix(p, s.serverDir)
			if !ok {
				return "", fmt.Errorf("%q is outside the server folder", p)
			}
			return filepath.Join(e.keyDir, strings.TrimLeft(rest, `\/`)), nil
		}
	}
	srv, err := mssqltest.NewServer(s.server)
	if err != nil {
		t.Fatalf("starting the SQL Server stand-in: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	e.srv = srv
	e.dsn = srv.DSN(s.user, s.pass, nil)
	e.serverDir = e.keyDir
	if s.serverDir != "" {
		e.serverDir = s.serverDir
	}

	mem, err := memstore.New(s.mem)
	if err != nil {
		t.Fatal(err)
	}
	e.mem = mem
	var memBackend storage.Backend = mem
	if s.wrap != nil {
		memBackend = s.wrap(mem)
	}

	cfg := &config.Config{
		Backup:     config.Backup{ServerDirectory: e.serverDir, KeepLocal: s.keepLocal, Remote: s.remote},
		HomeRegion: homeRegion,
		Waive:      s.waive,
	}
	var dests []Destination
	if !s.noFile {
		fs, err := filestore.New(filestore.Options{Path: e.fileDir})
		if err != nil {
			t.Fatal(err)
		}
		dests = append(dests, Destination{Config: config.Destination{Name: fileName, Type: config.TypeFile, Path: e.fileDir}, Backend: fs})
	}
	dests = append(dests, Destination{Config: s.memDest, Backend: memBackend})
	dests = append(dests, s.extra...)
	for _, d := range dests {
		cfg.Destinations = append(cfg.Destinations, d.Config)
	}

	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lock := s.lock
	if lock == nil {
		lock = func() (func(), error) { return func() {}, nil }
	}
	e.runner = &Runner{
		Config:       cfg,
		Destinations: dests,
		Log:          log,
		Clock:        func() time.Time { return testNow },
		Version:      "test",
		RunID:        NewRunID(),
		Lock: func() (func(), error) {
			e.locks.Add(1)
			return lock()
		},
		ConnectSQL: func(ctx context.Context) (SQL, error) {
			e.connects.Add(1)
			c, err := sqlserver.Open(ctx, secret.New(e.dsn), log)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		Password: secret.New(s.password),
		Hostname: "apphost",
	}
	return e
}

// testContext is a context that ends the test rather than hang it.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) backup() (*receipt.Receipt, error) {
	e.t.Helper()
	rec, err := e.runner.Backup(testContext(e.t))
	if rec == nil {
		e.t.Fatalf("Backup returned no receipt (err %v)", err)
	}
	return rec, err
}

// keyFileName is the key file name the run will use.
func (e *env) keyFileName() string { return backupFileName(serverName, testNow, e.runner.RunID) }

// memKey is the object key of the run's key file at the in-memory store.
func (e *env) memKey() string {
	return objectKey(memPrefix, serverName, sqlserver.DefaultInstance, receipt.KindServiceMasterKey, e.keyFileName())
}

// fileKey is the key of the run's key file at the file destination.
func (e *env) fileKey() string {
	return objectKey("", serverName, sqlserver.DefaultInstance, receipt.KindServiceMasterKey, e.keyFileName())
}

func (e *env) localKeyPath() string { return filepath.Join(e.keyDir, e.keyFileName()) }

// backupRan reports whether BACKUP SERVICE MASTER KEY reached the stand-in.
func (e *env) backupRan() bool {
	return slices.Contains(e.srv.Statements(), mssqltest.KindBackupSMK)
}

// memObjects lists every version in the in-memory store.
func (e *env) memObjects() []storage.Object {
	e.t.Helper()
	var out []storage.Object
	if err := e.mem.List(context.Background(), "", func(o storage.Object) error { out = append(out, o); return nil }); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// fileDestEntries lists every file under the file destination.
func (e *env) fileDestEntries() []string {
	e.t.Helper()
	var out []string
	err := filepath.WalkDir(e.fileDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(e.fileDir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// assertNothingWritten fails unless no destination received a write.
func (e *env) assertNothingWritten() {
	e.t.Helper()
	if n := e.mem.Requests()["put"]; n != 0 {
		e.t.Errorf("the in-memory store received %d puts, want none", n)
	}
	if objs := e.memObjects(); len(objs) != 0 {
		e.t.Errorf("the in-memory store holds %d objects, want none", len(objs))
	}
	if files := e.fileDestEntries(); len(files) != 0 {
		e.t.Errorf("the file destination holds %v, want nothing", files)
	}
}

// dest returns the receipt entry of the named destination.
func dest(t *testing.T, rec *receipt.Receipt, name string) receipt.Destination {
	t.Helper()
	for _, d := range rec.Destinations {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("the receipt has no destination %q: %+v", name, rec.Destinations)
	return receipt.Destination{}
}

// receiptJSON renders the receipt as the CLI would print it.
func receiptJSON(t *testing.T, rec *receipt.Receipt) []byte {
	t.Helper()
	doc, err := rec.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func parseReceipt(t *testing.T, doc []byte) receipt.Receipt {
	t.Helper()
	var r receipt.Receipt
	if err := json.Unmarshal(doc, &r); err != nil {
		t.Fatalf("the stored receipt is not JSON: %v\n%s", err, doc)
	}
	return r
}

// memRead returns the current bytes of key in the in-memory store.
func (e *env) memRead(key string) []byte {
	e.t.Helper()
	rc, err := e.mem.Open(context.Background(), key, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return readAll(e.t, rc)
}

func readAll(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// backend wraps a storage.Backend and lets a test rewrite what the service
// answers, the way a misbehaving or lying service would.
type backend struct {
	storage.Backend
	preflight func(storage.Properties) storage.Properties
	put       func(storage.Object) storage.Object
	stat      func(storage.Object) storage.Object
	open      func(io.ReadCloser) io.ReadCloser
	caps      func(storage.Capabilities) storage.Capabilities
}

func (b *backend) Open(ctx context.Context, key, versionID string) (io.ReadCloser, error) {
	rc, err := b.Backend.Open(ctx, key, versionID)
	if err == nil && b.open != nil {
		rc = b.open(rc)
	}
	return rc, err
}

func (b *backend) Capabilities() storage.Capabilities {
	c := b.Backend.Capabilities()
	if b.caps != nil {
		c = b.caps(c)
	}
	return c
}

func (b *backend) Preflight(ctx context.Context) (storage.Properties, error) {
	p, err := b.Backend.Preflight(ctx)
	if err == nil && b.preflight != nil {
		p = b.preflight(p)
	}
	return p, err
}

func (b *backend) Put(ctx context.Context, key string, data []byte, opts storage.PutOptions) (storage.Object, error) {
	o, err := b.Backend.Put(ctx, key, data, opts)
	if err == nil && b.put != nil {
		o = b.put(o)
	}
	return o, err
}

func (b *backend) Stat(ctx context.Context, key, versionID string) (storage.Object, error) {
	o, err := b.Backend.Stat(ctx, key, versionID)
	if err == nil && b.stat != nil {
		o = b.stat(o)
	}
	return o, err
}

// newMem returns another in-memory store configured like the default one.
func newMem(t *testing.T, name string, mod func(*memstore.Options)) *memstore.Store {
	t.Helper()
	o := memstore.Options{Versioning: true, ObjectLock: true, Region: "us-east-2", Name: name, Clock: func() time.Time { return testNow }}
	if mod != nil {
		mod(&o)
	}
	s, err := memstore.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// memDestConfig is the configuration of an extra in-memory destination.
func memDestConfig(name string) config.Destination {
	return config.Destination{
		Name: name, Type: config.TypeS3, Bucket: name, Region: "us-east-2", Prefix: memPrefix,
		Retention: &config.Retention{Mode: "COMPLIANCE", Days: 30},
	}
}

// mustReadFile reads key below the file destination's folder dir.
func mustReadFile(t *testing.T, dir, key string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertStoredClaimsNoMore checks a stored receipt never reads as a
// successful run: status "proven", no exit code, and the destination that
// failed is not recorded as verified.
func assertStoredClaimsNoMore(t *testing.T, doc []byte, failed string) {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(doc, &raw); err != nil {
		t.Fatalf("the stored receipt is not JSON: %v\n%s", err, doc)
	}
	if _, ok := raw["exit_code"]; ok {
		t.Errorf("the stored receipt carries an exit code, which it cannot know:\n%s", doc)
	}
	stored := parseReceipt(t, doc)
	if stored.Status != receipt.StatusProven {
		t.Errorf("the stored receipt says %q, want %q", stored.Status, receipt.StatusProven)
	}
	for _, d := range stored.Destinations {
		if d.Name == failed && d.Status == receipt.DestVerified {
			t.Errorf("the stored receipt records the failed destination %s as verified", failed)
		}
	}
}

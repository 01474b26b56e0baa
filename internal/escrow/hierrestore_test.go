package escrow

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// These tests archive copies of the hierarchy's items the way backup lays
// them out (item object keys, the .pvk beside a .cer, a stored receipt
// naming the item) and restore them.

// itemCopy is one archived copy of an item: its file and, for a
// certificate in the pvk format, its private key.
type itemCopy struct {
	it        receipt.Item
	data, pvk []byte
	// pvkVersion, when set, is recorded as the .pvk's version id instead
	// of the one stored (a receipt naming a .pvk that is not there).
	pvkVersion string
	// noReceipt: the run died before the receipt (an unfinished copy).
	noReceipt bool
	// inventory is recorded in a service master key copy's receipt.
	inventory *receipt.Inventory
}

// putItem stores c at every destination of r, as host/instance's copy
// made at time at (the stores' clock must say at), with one stored receipt
// recording every destination's copy. It returns the copy's file name.
func putItem(t *testing.T, r *Runner, host, instance string, at time.Time, c itemCopy) string {
	t.Helper()
	runID := NewRunID()
	name := itemFileName(c.it, at, runID)
	it := c.it
	rec := &receipt.Receipt{Tool: "keyescrow", Version: "test", RunID: runID, Host: host, Instance: instance,
		Kind: it.Kind, Item: &it, StartedAt: at, Password: &receipt.Password{Mode: receipt.PasswordStatic},
		File: &receipt.File{Name: name, Bytes: int64(len(c.data)), SHA256: dataSum(c.data)}}
	objectKeyOf := func(prefix string) string { return itemObjectKey(prefix, host, instance, c.it, name) }
	if it.Kind == receipt.KindServiceMasterKey {
		name = backupFileName(host, at, runID)
		rec.Item, rec.Inventory, rec.File.Name = nil, c.inventory, name
		objectKeyOf = func(prefix string) string { return objectKey(prefix, host, instance, it.Kind, name) }
	}
	if c.pvk != nil {
		rec.File.PrivateKey = &receipt.File{Name: privateKeyKey(name), Bytes: int64(len(c.pvk)), SHA256: dataSum(c.pvk)}
	}
	put := func(b storage.Backend, key string, data []byte) storage.Object {
		t.Helper()
		opts := storage.PutOptions{SHA256: sha(t, string(data))}
		if b.Capabilities().Retention {
			opts.Retention = &storage.Retention{Mode: "COMPLIANCE", Until: at.Add(30 * 24 * time.Hour)}
		}
		o, err := b.Put(testContext(t), key, data, opts)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	keys := map[string]string{}
	for _, d := range r.Destinations {
		key := objectKeyOf(d.Config.Prefix)
		keys[d.Config.Name] = key
		o := put(d.Backend, key, c.data)
		rd := receipt.Destination{Name: d.Config.Name, Type: d.Backend.Type(), Location: d.Backend.Location(key), VersionID: o.VersionID, Status: receipt.DestVerified}
		if c.pvk != nil {
			po := put(d.Backend, privateKeyKey(key), c.pvk)
			v := po.VersionID
			if c.pvkVersion != "" {
				v = c.pvkVersion
			}
			rd.PrivateKey = &receipt.Sidecar{Location: d.Backend.Location(privateKeyKey(key)), VersionID: v, SHA256: dataSum(c.pvk), Bytes: int64(len(c.pvk))}
		}
		rec.Destinations = append(rec.Destinations, rd)
	}
	if c.noReceipt {
		return name
	}
	doc, err := rec.Stored(at).JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Destinations {
		if _, err := d.Backend.Put(testContext(t), keys[d.Config.Name]+receiptSuffix, doc, storage.PutOptions{SHA256: sha(t, string(doc))}); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

func dataSum(b []byte) string { return sum(string(b)) }

func tdeCertItem(format string) receipt.Item {
	return receipt.Item{Kind: receipt.KindCertificate, Database: "master", Name: "TDECert", Thumbprint: "0A1B2C3D4E5F60718293A4B5C6D7E8F901234567",
		PrivateKey: "MK", Format: format, TDE: []string{"Sales"}}
}

func hrMasterKey() receipt.Item {
	return receipt.Item{Kind: receipt.KindDatabaseMasterKey, Database: "HR", Name: receipt.MasterKeyName, KeyGUID: "9F1C2B3A-0000-4000-8000-0123456789AB"}
}

// restoreOut restores with opts into a new --out file in a new folder and
// returns what was written there (nil for a file not written).
func restoreOut(t *testing.T, r *Runner, opts RestoreOptions, outName string) (rec *receipt.Receipt, out, pvk []byte, err error) {
	t.Helper()
	dir := t.TempDir()
	opts.Out = filepath.Join(dir, outName)
	rec, err = r.Restore(testContext(t), opts)
	out, _ = os.ReadFile(opts.Out)
	pvk, _ = os.ReadFile(privateKeyOut(opts.Out))
	if err == nil && runtime.GOOS != "windows" {
		for _, p := range []string{opts.Out, rec.Restore.PrivateKeyOut} {
			if p == "" {
				continue
			}
			if fi, serr := os.Stat(p); serr != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v, want an owner-only file", p, serr)
			}
		}
	}
	if err != nil {
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("a failed restore left %v behind", entries)
		}
	}
	return rec, out, pvk, err
}

func TestRestoreTakesOnlyTheKindAskedForAndTheServiceMasterKeyByDefault(t *testing.T) {
	a := newArchive(t, 30)
	a.put("SQLA", "MSSQLSERVER", testNow, "smk")
	// Item copies newer than the service master key's, under the same
	// host and instance: restore without --kind must not take them.
	a.now = testNow.Add(time.Hour)
	certName := putItem(t, a.runner, "SQLA", "MSSQLSERVER", a.now, itemCopy{it: tdeCertItem("pvk"), data: []byte("cer-1"), pvk: []byte("pvk-1")})
	a.now = testNow.Add(2 * time.Hour)
	putItem(t, a.runner, "SQLA", "MSSQLSERVER", a.now, itemCopy{it: hrMasterKey(), data: []byte("dmk-1")})
	// A host with item copies only: it has no service master key copy.
	putItem(t, a.runner, "SQLB", "MSSQLSERVER", a.now, itemCopy{it: tdeCertItem("pfx"), data: []byte("pfx-b")})
	a.now = testNow.Add(3 * time.Hour)

	rec, out, _, err := restoreOut(t, a.runner, RestoreOptions{Filter: Filter{Host: "SQLA"}}, "smk.key")
	if err != nil || string(out) != "smk" || rec.Kind != receipt.KindServiceMasterKey || rec.Item != nil {
		t.Fatalf("restore without --kind: %v, wrote %q, kind %s item %+v: want the service master key", err, out, rec.Kind, rec.Item)
	}
	if _, out, _, err := restoreOut(t, a.runner, RestoreOptions{Filter: Filter{Host: "SQLB"}}, "smk.key"); exitcode.Code(err) != exitcode.Usage || out != nil || !strings.Contains(err.Error(), "no copy of host SQLB") {
		t.Errorf("a host with item copies only, without --kind: %v, wrote %q: want exit 2, no copy", err, out)
	}

	// The certificate's version id without --kind: not a service master
	// key copy, and the message says what is missing.
	st, err := a.mem.Stat(testContext(t), itemObjectKey(memPrefix, "SQLA", "MSSQLSERVER", tdeCertItem("pvk"), certName), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, out, _, err := restoreOut(t, a.runner, RestoreOptions{Filter: Filter{Host: "SQLA"}, VersionID: st.VersionID, Destination: memName}, "x.key"); exitcode.Code(err) != exitcode.Usage || out != nil || !strings.Contains(err.Error(), "needs --kind") {
		t.Errorf("a certificate's version id without --kind: %v, want exit 2 hinting at --kind", err)
	}
	if _, out, _, err := restoreOut(t, a.runner, RestoreOptions{Filter: Filter{Host: "SQLA", Kind: receipt.KindCertificate, Database: "master", Name: "TDECert"}, VersionID: st.VersionID, Destination: memName}, "x.cer"); err != nil || string(out) != "cer-1" {
		t.Errorf("the certificate's version id with --kind: %v, %q", err, out)
	}

	rec, out, pvk, err := restoreOut(t, a.runner, RestoreOptions{Filter: Filter{Host: "sqla", Kind: receipt.KindCertificate, Database: "MASTER", Name: "tdecert"}}, "tde.cer")
	if err != nil || string(out) != "cer-1" || string(pvk) != "pvk-1" {
		t.Fatalf("restore of the certificate: %v, wrote %q and %q", err, out, pvk)
	}
	if rec.Kind != receipt.KindCertificate || rec.Item == nil || rec.Item.Name != "TDECert" || rec.Item.Thumbprint != tdeCertItem("pvk").Thumbprint ||
		rec.File.PrivateKey == nil || rec.File.PrivateKey.SHA256 != sum("pvk-1") || !strings.HasSuffix(rec.Restore.PrivateKeyOut, "tde.pvk") {
		t.Errorf("certificate receipt: kind %s item %+v file %+v restore %+v", rec.Kind, rec.Item, rec.File, rec.Restore)
	}
	if pk := rec.Destinations[0].PrivateKey; pk == nil || !pk.ReadBack || pk.SHA256 != sum("pvk-1") {
		t.Errorf("the destination's private key entry %+v, want the proven .pvk", pk)
	}

	rec, out, _, err = restoreOut(t, a.runner, RestoreOptions{Filter: Filter{Host: "SQLA", Kind: receipt.KindDatabaseMasterKey, Database: "hr"}}, "hr.key")
	if err != nil || string(out) != "dmk-1" || rec.Kind != receipt.KindDatabaseMasterKey || rec.Item == nil || rec.Item.Database != "HR" || rec.Restore.PrivateKeyOut != "" {
		t.Errorf("restore of HR's master key: %v, wrote %q, receipt %+v", err, out, rec)
	}

	rec, _, _, err = restoreOut(t, a.runner, RestoreOptions{Filter: Filter{Host: "SQLA", Kind: receipt.KindCertificate, Database: "master", Name: "Other"}}, "o.cer")
	if exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), "certificate master/Other") || rec.Kind != receipt.KindCertificate || rec.Item == nil || rec.Item.Name != "Other" {
		t.Errorf("a certificate with no copy: %v, receipt kind %s item %+v: want exit 2 naming it", err, rec.Kind, rec.Item)
	}

	for name, f := range map[string]Filter{
		"an unknown kind":                     {Kind: "asymmetric-key"},
		"--database for the service key":      {Database: "HR"},
		"--name for the service key":          {Name: "TDECert"},
		"a master key without --database":     {Kind: receipt.KindDatabaseMasterKey},
		"a master key with --name":            {Kind: receipt.KindDatabaseMasterKey, Database: "HR", Name: "x"},
		"a certificate without --name":        {Kind: receipt.KindCertificate, Database: "master"},
		"a certificate without --database":    {Kind: receipt.KindCertificate, Name: "TDECert"},
		"an explicit service key with a name": {Kind: receipt.KindServiceMasterKey, Name: "x"},
	} {
		f.Host = "SQLA"
		if _, out, _, err := restoreOut(t, a.runner, RestoreOptions{Filter: f}, "x.key"); exitcode.Code(err) != exitcode.Usage || out != nil || !strings.Contains(err.Error(), "--") {
			t.Errorf("%s: %v, want exit 2 naming the flag", name, err)
		}
	}
	if _, _, _, err := restoreOut(t, a.runner, RestoreOptions{Filter: Filter{Host: "SQLA", Kind: receipt.KindCertificate, Database: "master", Name: "TDECert"}, Apply: true, Force: true, ConfirmForce: "X", ServerDirectory: "/x"}, "x.cer"); exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), "--force") {
		t.Errorf("--force for a certificate: %v, want exit 2", err)
	}
}

func TestACertificateIsWrittenWithItsPrivateKeyOrNotAtAll(t *testing.T) {
	a := newArchive(t, 30)
	putItem(t, a.runner, "SQLA", "MSSQLSERVER", a.now, itemCopy{it: tdeCertItem("pvk"), data: []byte("cer-1"), pvk: []byte("pvk-1")})
	a.now = testNow.Add(time.Hour)
	opts := RestoreOptions{Filter: Filter{Host: "SQLA", Kind: receipt.KindCertificate, Database: "master", Name: "TDECert"}}

	// Without a .cer extension the .pvk gets one added.
	rec, out, _, err := restoreOut(t, a.runner, opts, "tde")
	if err != nil || string(out) != "cer-1" || !strings.HasSuffix(rec.Restore.PrivateKeyOut, "tde.pvk") {
		t.Fatalf("--out tde: %v, %q, %+v", err, out, rec.Restore)
	}
	if got, _ := os.ReadFile(rec.Restore.PrivateKeyOut); string(got) != "pvk-1" {
		t.Errorf("the private key beside tde: %q", got)
	}

	// The private key's file exists: nothing is written, it is kept.
	dir := t.TempDir()
	keep := filepath.Join(dir, "tde.pvk")
	if err := os.WriteFile(keep, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := opts
	o.Out = filepath.Join(dir, "tde.cer")
	if _, err := a.runner.Restore(testContext(t), o); exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), keep) {
		t.Errorf("an existing .pvk: %v, want exit 2 naming it", err)
	}
	if _, err := os.Stat(o.Out); err == nil {
		t.Error("the .cer was written although its .pvk could not be")
	}
	if b, _ := os.ReadFile(keep); string(b) != "keep me" {
		t.Errorf("the existing .pvk was changed: %q", b)
	}
	// --password-out naming the .pvk's file.
	o.Out = filepath.Join(dir, "other.cer")
	o.PasswordOut = filepath.Join(dir, "other.pvk")
	if _, err := a.runner.Restore(testContext(t), o); exitcode.Code(err) != exitcode.Usage {
		t.Errorf("--password-out naming the .pvk: %v, want exit 2", err)
	}
	if _, err := os.Stat(o.Out); err == nil {
		t.Error("the .cer was written although its .pvk could not be")
	}

	// The .pvk cannot be created (its name is one byte too long for the
	// file system, the certificate's is not): the .cer is removed again.
	if runtime.GOOS == "linux" {
		o := opts
		o.Out = filepath.Join(t.TempDir(), strings.Repeat("c", 252))
		_, err := a.runner.Restore(testContext(t), o)
		if exitcode.Code(err) == 0 || !strings.Contains(err.Error(), ".pvk") {
			t.Errorf("a .pvk that cannot be created: %v, want a failure naming it", err)
		}
		if _, serr := os.Stat(o.Out); serr == nil {
			t.Error("the certificate file was left behind without its private key")
		}
	}

	// A PFX copy is one file.
	a.now = testNow.Add(2 * time.Hour)
	putItem(t, a.runner, "SQLA", "MSSQLSERVER", a.now, itemCopy{it: tdeCertItem("pfx"), data: []byte("pfx-2")})
	a.now = testNow.Add(3 * time.Hour)
	rec, out, pvk, err := restoreOut(t, a.runner, opts, "tde.pfx")
	if err != nil || string(out) != "pfx-2" || pvk != nil || rec.Restore.PrivateKeyOut != "" || rec.File.PrivateKey != nil {
		t.Errorf("the PFX copy: %v, %q, pvk %q, %+v", err, out, pvk, rec.Restore)
	}
}

func TestADamagedOrMissingPrivateKeyFailsItsCopy(t *testing.T) {
	opts := RestoreOptions{Filter: Filter{Host: "SQLA", Kind: receipt.KindCertificate, Database: "master", Name: "TDECert"}}

	t.Run("a damaged .pvk: exit 6 at that destination, the other destination's copy is restored", func(t *testing.T) {
		a := newArchive(t, 30)
		name := putItem(t, a.runner, "SQLA", "MSSQLSERVER", a.now, itemCopy{it: tdeCertItem("pvk"), data: []byte("cer-1"), pvk: []byte("pvk-1")})
		a.now = testNow.Add(time.Hour)
		key := itemObjectKey(memPrefix, "SQLA", "MSSQLSERVER", tdeCertItem("pvk"), name)
		st, err := a.mem.Stat(testContext(t), privateKeyKey(key), "")
		if err != nil {
			t.Fatal(err)
		}
		a.mem.Corrupt(privateKeyKey(key), st.VersionID)

		rec, out, pvk, err := restoreOut(t, a.runner, opts, "tde.cer")
		if err != nil || string(out) != "cer-1" || string(pvk) != "pvk-1" {
			t.Fatalf("restore: %v, wrote %q and %q, want the folder's copy", err, out, pvk)
		}
		bad := dest(t, rec, memName)
		if bad.Status != receipt.DestFailed || bad.Error == nil || bad.Error.Code != exitcode.Verify || !strings.Contains(bad.Error.Message, "the private key of") || !strings.Contains(bad.Error.Message, "damaged") {
			t.Errorf("the damaged destination: %+v", bad)
		}
		if good := dest(t, rec, fileName); good.Status != receipt.DestVerified || good.PrivateKey == nil || !good.PrivateKey.ReadBack {
			t.Errorf("the good destination: %+v", good)
		}
		o := opts
		o.Destination = memName
		if rec, out, pvk, err := restoreOut(t, a.runner, o, "tde.cer"); exitcode.Code(err) != exitcode.Verify || out != nil || pvk != nil || rec.Status != receipt.StatusFailed {
			t.Errorf("only the damaged destination: %v, wrote %q and %q: want exit 6 and nothing written", err, out, pvk)
		}
	})

	t.Run("a .pvk its receipt names but that is not stored: exit 6", func(t *testing.T) {
		a := newArchive(t, 30)
		putItem(t, a.runner, "SQLA", "MSSQLSERVER", a.now, itemCopy{it: tdeCertItem("pvk"), data: []byte("cer-1"), pvk: []byte("pvk-1"), pvkVersion: "no-such-version"})
		a.now = testNow.Add(time.Hour)
		rec, out, _, err := restoreOut(t, a.runner, opts, "tde.cer")
		if exitcode.Code(err) != exitcode.Verify || out != nil || !strings.Contains(err.Error(), "is missing") {
			t.Errorf("restore: %v, wrote %q: want exit 6, missing", err, out)
		}
		for _, d := range rec.Destinations {
			if d.Status == receipt.DestVerified {
				t.Errorf("%s counted as verified without its .pvk", d.Name)
			}
		}
	})

	t.Run("a .cer whose receipt records no .pvk: exit 6", func(t *testing.T) {
		a := newArchive(t, 30)
		putItem(t, a.runner, "SQLA", "MSSQLSERVER", a.now, itemCopy{it: tdeCertItem("pvk"), data: []byte("cer-1")})
		a.now = testNow.Add(time.Hour)
		if _, out, _, err := restoreOut(t, a.runner, opts, "tde.cer"); exitcode.Code(err) != exitcode.Verify || out != nil || !strings.Contains(err.Error(), "records no private key file") {
			t.Errorf("restore: %v, wrote %q: want exit 6", err, out)
		}
	})

	t.Run("a newer copy a killed run left without its .pvk and receipt: the older genuine copy is restored", func(t *testing.T) {
		a := newArchive(t, 30)
		putItem(t, a.runner, "SQLA", "MSSQLSERVER", a.now, itemCopy{it: tdeCertItem("pvk"), data: []byte("cer-old"), pvk: []byte("pvk-old")})
		a.now = testNow.Add(time.Hour)
		putItem(t, a.runner, "SQLA", "MSSQLSERVER", a.now, itemCopy{it: tdeCertItem("pvk"), data: []byte("cer-new"), noReceipt: true})
		a.now = testNow.Add(2 * time.Hour)
		rec, out, pvk, err := restoreOut(t, a.runner, opts, "tde.cer")
		if err != nil || string(out) != "cer-old" || string(pvk) != "pvk-old" || skippedReasons(rec.Restore.Skipped) != "unfinished" {
			t.Errorf("restore: %v, wrote %q and %q, skipped %+v: want the older genuine copy", err, out, pvk, rec.Restore.Skipped)
		}
	})
}

// restoreEnv is an environment on a stand-in of the given version with
// master's master key, the TDE certificate and a certificate that protects
// no TDE database (BackupCert), and
// HR's master key that only its password opens; its runner restores into
// whatever server connect names.
func restoreEnv(t *testing.T, version string) *env {
	t.Helper()
	e := newEnv(t, func(s *setup) {
		s.server.ProductVersion = version
		s.server.Databases = []mssqltest.Database{
			{Name: "master", MasterKey: &mssqltest.MasterKey{Password: "Master-Dmk-Pa55!"}, Certificates: []mssqltest.Certificate{{Name: "TDECert"}, {Name: "BackupCert"}}},
			{Name: "Sales", TDECertificate: "TDECert"},
			{Name: "HR", MasterKey: &mssqltest.MasterKey{Password: hrPassword, NoServiceMasterKey: true},
				Certificates: []mssqltest.Certificate{{Name: "Signing", PrivateKey: mssqltest.ByPassword, Password: signingPassword}}},
		}
	})
	return e
}

const (
	hrPassword      = "Hr-Dmk-Pa55'word"
	signingPassword = "S1gning-Key-Pa55"
)

// exportItem backs up one item on the env's server through the client,
// as backup does, and returns the files as a copy to archive, with the
// item as the receipt records it.
func (e *env) exportItem(db, cert string, at time.Time) itemCopy {
	t := e.t
	t.Helper()
	ctx := testContext(t)
	c, err := sqlserver.Open(ctx, secret.New(e.dsn), e.runner.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var it receipt.Item
	for _, x := range SelectItems(h, e.runner.Config.Hierarchy).Items {
		if strings.EqualFold(x.Database, db) && (cert == "" && x.Kind == receipt.KindDatabaseMasterKey || cert != "" && strings.EqualFold(x.Name, cert)) {
			it = x
		}
	}
	if it.Kind == "" {
		t.Fatalf("no item %s/%s in the inventory", db, cert)
	}
	name := itemFileName(it, at, NewRunID())
	path := filepath.Join(e.keyDir, name)
	var pvkPath string
	switch {
	case it.Kind == receipt.KindDatabaseMasterKey:
		var open secret.Value
		if db == "HR" {
			open = secret.New(hrPassword)
		}
		err = c.BackupDatabaseMasterKey(ctx, db, path, secret.New(backupPassword), open)
	default:
		files := sqlserver.CertificateFiles{Format: sqlserver.FormatFor(h.MajorVersion), Certificate: path}
		if files.Format == sqlserver.FormatPVK {
			pvkPath = privateKeyKey(path)
			files.PrivateKey = pvkPath
		}
		var kpw secret.Value
		if it.PrivateKey == sqlserver.KeyByPassword {
			kpw = secret.New(signingPassword)
		}
		var open secret.Value
		if db == "HR" {
			open = secret.New(hrPassword)
		}
		err = c.BackupCertificate(ctx, sqlserver.CertificateBackup{Database: db, Name: cert, Files: files, Password: secret.New(backupPassword), KeyPassword: kpw, MasterKeyPassword: open})
	}
	if err != nil {
		t.Fatalf("exporting %s: %v", it.Label(), err)
	}
	cp := itemCopy{it: it}
	if cp.data, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if pvkPath != "" {
		if cp.pvk, err = os.ReadFile(pvkPath); err != nil {
			t.Fatal(err)
		}
		os.Remove(pvkPath)
	}
	return cp
}

// archiveItem exports one item and archives it as made at time at.
func (e *env) archiveItem(db, cert string, at time.Time) receipt.Item {
	e.t.Helper()
	cp := e.exportItem(db, cert, at)
	putItem(e.t, e.runner, serverName, sqlserver.DefaultInstance, at, cp)
	return cp.it
}

// restoreInto makes the runner restore into srv.
func (e *env) restoreInto(srv *mssqltest.Server) {
	e.runner.ConnectRestore = func(ctx context.Context) (RestoreSQL, error) {
		return sqlserver.Open(ctx, secret.New(srv.DSN(adminUser, adminPass, nil)), e.runner.Log)
	}
}

func scratchServer(t *testing.T, name, version string, dbs ...mssqltest.Database) *mssqltest.Server {
	t.Helper()
	srv, err := mssqltest.NewServer(mssqltest.Config{ServerName: name, ProductVersion: version, Databases: dbs, Logf: t.Logf,
		Logins: []mssqltest.Login{{User: adminUser, Password: adminPass, ControlServer: true}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// keyPasswords answers for HR's master key and Signing's private key.
func keyPasswords(database, certificate string) (secret.Value, error) {
	switch {
	case strings.EqualFold(database, "HR") && certificate == "":
		return secret.New(hrPassword), nil
	case strings.EqualFold(database, "HR") && strings.EqualFold(certificate, "Signing"):
		return secret.New(signingPassword), nil
	}
	return secret.Value{}, nil
}

func TestACertificateDrillProvesTheThumbprintOnTheScratchServer(t *testing.T) {
	for _, version := range []string{"15.0.4355.3", "16.0.4135.4"} {
		t.Run(version, func(t *testing.T) {
			e := restoreEnv(t, version)
			it := e.archiveItem("master", "TDECert", testNow)
			want, _ := e.srv.CertificateOf("master", "TDECert")
			if it.Thumbprint != strings.ToUpper(hex.EncodeToString(want.Thumbprint)) {
				t.Fatalf("item thumbprint %s", it.Thumbprint)
			}
			drill := func(srv *mssqltest.Server) (*receipt.Receipt, error) {
				t.Helper()
				e.restoreInto(srv)
				o := e.restoreOpts()
				o.Filter = Filter{Host: serverName, Kind: receipt.KindCertificate, Database: "master", Name: "TDECert"}
				o.Drill = true
				rec, err := e.runner.Restore(testContext(t), o)
				if left, _ := os.ReadDir(e.keyDir); len(left) != 0 {
					t.Errorf("staged files left in the key folder: %v", left)
				}
				return rec, err
			}

			scratch := scratchServer(t, "SCRATCH01", version, mssqltest.Database{Name: "master", MasterKey: &mssqltest.MasterKey{Password: "Scratch-Dmk-Pa55!"}})
			rec, err := drill(scratch)
			if err != nil {
				t.Fatalf("drill: %v\n%s", err, e.logs)
			}
			if !rec.Restore.Applied || !rec.Restore.Drill || rec.Restore.Server != "SCRATCH01" || rec.Restore.ThumbprintMatch == nil || !*rec.Restore.ThumbprintMatch || rec.Restore.Thumbprint != it.Thumbprint {
				t.Errorf("drill receipt: %+v", rec.Restore)
			}
			got, ok := scratch.CertificateOf("master", "TDECert")
			if !ok || !bytes.Equal(got.Thumbprint, want.Thumbprint) || got.PrivateKey == nil || got.Protection != mssqltest.ByMasterKey {
				t.Errorf("the scratch server holds %+v (%v)", got, ok)
			}

			// Again on the same scratch server: it holds the certificate.
			if _, err := drill(scratch); exitcode.Code(err) != exitcode.SQLServer || !strings.Contains(err.Error(), "DROP CERTIFICATE") || !strings.Contains(err.Error(), "15232") {
				t.Errorf("a second drill into the same scratch server: %v, want exit 3 explaining 15232", err)
			}

			// A scratch server without a master key in master.
			bare := scratchServer(t, "SCRATCH02", version)
			if _, err := drill(bare); exitcode.Code(err) != exitcode.SQLServer || !strings.Contains(err.Error(), "create a master key in master") || !strings.Contains(err.Error(), "15581") {
				t.Errorf("a scratch server without a master key: %v, want exit 3 saying to create one", err)
			}
			if _, ok := bare.CertificateOf("master", "TDECert"); ok {
				t.Error("the certificate was created without its private key's protection")
			}

			// A PFX copy cannot go into a server before 2022.
			if version >= "16" {
				old := scratchServer(t, "SCRATCH03", "15.0.4355.3", mssqltest.Database{Name: "master", MasterKey: &mssqltest.MasterKey{Password: "Scratch-Dmk-Pa55!"}})
				if _, err := drill(old); exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), "PFX") {
					t.Errorf("a PFX copy into SQL Server 2019: %v, want exit 2", err)
				}
			}

			// A copy whose receipt records another thumbprint: the file is
			// not the certificate recorded.
			cp := e.exportItem("master", "TDECert", testNow.Add(time.Hour))
			cp.it.Thumbprint = strings.Repeat("AB", 20)
			putItem(t, e.runner, serverName, sqlserver.DefaultInstance, testNow.Add(time.Hour), cp)
			rec, err = drill(scratchServer(t, "SCRATCH04", version, mssqltest.Database{Name: "master", MasterKey: &mssqltest.MasterKey{Password: "Scratch-Dmk-Pa55!"}}))
			if exitcode.Code(err) != exitcode.Verify || !strings.Contains(err.Error(), "not the certificate recorded") || rec.Restore.ThumbprintMatch == nil || *rec.Restore.ThumbprintMatch || rec.Restore.Thumbprint != it.Thumbprint {
				t.Errorf("a copy recording another thumbprint: %v, restore %+v: want exit 6, no match", err, rec.Restore)
			}
		})
	}
}

func TestADatabaseMasterKeyIsRestoredUnderItsConfiguredPassword(t *testing.T) {
	e := restoreEnv(t, "15.0.4355.3")
	e.archiveItem("HR", "", testNow)
	want, _ := e.srv.MasterKeyOf("HR")
	// The rebuilt server: HR came back from a database backup with a
	// master key of its own that only its password opens.
	rebuilt := scratchServer(t, serverName, "15.0.4355.3", mssqltest.Database{Name: "HR", MasterKey: &mssqltest.MasterKey{Password: hrPassword, NoServiceMasterKey: true}})
	e.restoreInto(rebuilt)
	before, _ := rebuilt.MasterKeyOf("HR")
	opts := e.restoreOpts()
	opts.Filter = Filter{Host: serverName, Kind: receipt.KindDatabaseMasterKey, Database: "HR"}

	_, err := e.runner.Restore(testContext(t), opts)
	if exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), "hierarchy.passwords") || !strings.Contains(err.Error(), "database: HR") {
		t.Errorf("without a configured password: %v, want exit 2 naming hierarchy.passwords", err)
	}
	if now, _ := rebuilt.MasterKeyOf("HR"); !bytes.Equal(now.Key, before.Key) {
		t.Fatal("a refused restore changed the key")
	}
	o := opts
	o.Force = true
	if _, err := e.runner.Restore(testContext(t), o); exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), "--confirm-force") {
		t.Errorf("--force without --confirm-force: %v, want exit 2", err)
	}

	e.runner.KeyPassword = keyPasswords
	rec, err := e.runner.Restore(testContext(t), opts)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, e.logs)
	}
	got, _ := rebuilt.MasterKeyOf("HR")
	if !bytes.Equal(got.Key, want.Key) || got.GUID != want.GUID || !rec.Restore.Applied || rec.Kind != receipt.KindDatabaseMasterKey || rec.Item == nil || rec.Item.Database != "HR" {
		t.Errorf("HR's key on the rebuilt server %s (want %s), receipt %+v", got.GUID, want.GUID, rec.Restore)
	}
	if left, _ := os.ReadDir(e.keyDir); len(left) != 0 {
		t.Errorf("staged files left in the key folder: %v", left)
	}
	for _, s := range []string{hrPassword, backupPassword} {
		if strings.Contains(e.logs.String(), s) {
			t.Fatal("a password appears in the log")
		}
	}
}

func TestACertificateIsRestoredUnderTheProtectionItHad(t *testing.T) {
	e := restoreEnv(t, "15.0.4355.3")
	e.archiveItem("HR", "Signing", testNow)
	e.archiveItem("master", "TDECert", testNow)
	signing, _ := e.srv.CertificateOf("HR", "Signing")
	rebuilt := scratchServer(t, serverName, "15.0.4355.3",
		mssqltest.Database{Name: "master", MasterKey: &mssqltest.MasterKey{Password: "Master-Dmk-Pa55!"}},
		mssqltest.Database{Name: "HR", MasterKey: &mssqltest.MasterKey{Password: hrPassword, NoServiceMasterKey: true}})
	e.restoreInto(rebuilt)
	opts := e.restoreOpts()
	opts.Filter = Filter{Host: serverName, Kind: receipt.KindCertificate, Database: "HR", Name: "Signing"}

	// Signing's private key had a password of its own: restore needs it.
	if _, err := e.runner.Restore(testContext(t), opts); exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), "certificate: Signing") {
		t.Errorf("without Signing's password: %v, want exit 2", err)
	}
	e.runner.KeyPassword = keyPasswords
	rec, err := e.runner.Restore(testContext(t), opts)
	if err != nil || !rec.Restore.Applied || rec.Restore.ThumbprintMatch == nil || !*rec.Restore.ThumbprintMatch {
		t.Fatalf("restore of Signing: %v, %+v\n%s", err, rec.Restore, e.logs)
	}
	got, ok := rebuilt.CertificateOf("HR", "Signing")
	if !ok || got.Protection != mssqltest.ByPassword || !bytes.Equal(got.Thumbprint, signing.Thumbprint) {
		t.Errorf("Signing on the rebuilt server: %+v", got)
	}

	// The TDE certificate on --apply: restored, then, once present with
	// its private key, nothing more to do (exit 0, not applied again).
	opts.Filter = Filter{Host: serverName, Kind: receipt.KindCertificate, Database: "master", Name: "TDECert"}
	if rec, err := e.runner.Restore(testContext(t), opts); err != nil || !rec.Restore.Applied {
		t.Fatalf("restore of TDECert: %v", err)
	}
	rec, err = e.runner.Restore(testContext(t), opts)
	if err != nil || rec.Restore.Applied || rec.Restore.ThumbprintMatch == nil || !*rec.Restore.ThumbprintMatch || !strings.Contains(e.logs.String(), "already in the database") {
		t.Errorf("TDECert already present: %v, %+v: want exit 0, nothing applied", err, rec.Restore)
	}
	// Another certificate of that name: 15232, explained.
	if err := rebuilt.DropCertificate("master", "TDECert"); err != nil {
		t.Fatal(err)
	}
	if err := rebuilt.AddCertificate("master", mssqltest.Certificate{Name: "TDECert"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.runner.Restore(testContext(t), opts); exitcode.Code(err) != exitcode.SQLServer || !strings.Contains(err.Error(), "already holds a certificate named TDECert") {
		t.Errorf("another TDECert present: %v, want exit 3 explaining", err)
	}
	for _, s := range []string{hrPassword, signingPassword, backupPassword} {
		if strings.Contains(e.logs.String(), s) {
			t.Fatal("a password appears in the log")
		}
	}
}

func TestDrillOfEveryTDECertificate(t *testing.T) {
	e := restoreEnv(t, "16.0.4135.4")
	opts := e.restoreOpts()
	opts.Filter = Filter{Host: serverName}
	scratch := scratchServer(t, "SCRATCH01", "16.0.4135.4", mssqltest.Database{Name: "master", MasterKey: &mssqltest.MasterKey{Password: "Scratch-Dmk-Pa55!"}})
	e.restoreInto(scratch)

	// Only a certificate that protects no TDE database is archived.
	e.archiveItem("master", "BackupCert", testNow)
	rec, err := e.runner.DrillTDE(testContext(t), opts)
	if exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), "protects a TDE database") || len(rec.Items) != 1 || rec.Items[0].Action != receipt.ItemExcluded {
		t.Fatalf("no TDE certificate archived: %v, items %+v: want exit 2", err, rec.Items)
	}

	it := e.archiveItem("master", "TDECert", testNow)
	rec, err = e.runner.DrillTDE(testContext(t), opts)
	if err != nil {
		t.Fatalf("drill: %v\n%s", err, e.logs)
	}
	actions := map[string]string{}
	for _, x := range rec.Items {
		actions[x.Name] = x.Action
	}
	if actions["TDECert"] != receipt.ItemRestored || actions["BackupCert"] != receipt.ItemExcluded || len(actions) != 2 ||
		!rec.Restore.Applied || !rec.Restore.Drill || rec.Restore.Server != "SCRATCH01" || rec.Kind != receipt.KindCertificate || rec.Host != serverName {
		t.Errorf("drill receipt: items %v, restore %+v", actions, rec.Restore)
	}
	if got, ok := scratch.CertificateOf("master", "TDECert"); !ok || strings.ToUpper(hex.EncodeToString(got.Thumbprint)) != it.Thumbprint {
		t.Errorf("the scratch server holds %+v", got)
	}
	if _, ok := scratch.CertificateOf("master", "BackupCert"); ok {
		t.Error("a certificate that protects no TDE database was drilled")
	}

	// Again: the scratch server holds TDECert already; that item fails.
	rec, err = e.runner.DrillTDE(testContext(t), opts)
	if exitcode.Code(err) != exitcode.SQLServer || rec.Restore.Applied || rec.Items[1].Action != receipt.ItemFailed || rec.Items[1].Error == nil || rec.Items[1].Error.Code != exitcode.SQLServer {
		t.Errorf("a second drill: %v, items %+v: want exit 3, TDECert failed", err, rec.Items)
	}
}

func TestADrillOfAnItemNeverGoesIntoTheCopysOwnServer(t *testing.T) {
	e := restoreEnv(t, "16.0.4135.4")
	e.archiveItem("HR", "", testNow)
	opts := e.restoreOpts()
	opts.Filter = Filter{Host: serverName, Kind: receipt.KindDatabaseMasterKey, Database: "HR"}
	opts.Drill = true
	e.runner.KeyPassword = keyPasswords

	// The copy's own server (the stand-in reports itself as SQLHOST01).
	e.restoreInto(e.srv)
	before, _ := e.srv.MasterKeyOf("HR")
	if _, err := e.runner.Restore(testContext(t), opts); exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), "the very server") {
		t.Errorf("a drill into the copy's own server: %v, want exit 2", err)
	}
	if after, _ := e.srv.MasterKeyOf("HR"); after.Modified != before.Modified {
		t.Fatal("a refused drill touched the production key")
	}

	// A scratch server with database HR: the master key is restored there.
	scratch := scratchServer(t, "SCRATCH01", "16.0.4135.4", mssqltest.Database{Name: "HR"})
	e.restoreInto(scratch)
	rec, err := e.runner.Restore(testContext(t), opts)
	if err != nil || !rec.Restore.Applied || rec.Restore.Server != "SCRATCH01" || rec.Restore.ThumbprintMatch != nil {
		t.Fatalf("drill of HR's master key: %v, %+v\n%s", err, rec.Restore, e.logs)
	}
	if got, ok := scratch.MasterKeyOf("HR"); !ok || !bytes.Equal(got.Key, before.Key) {
		t.Error("the scratch server does not hold HR's master key")
	}
	// A scratch server without the database: SQL Server's 911, explained.
	bare := scratchServer(t, "SCRATCH02", "16.0.4135.4")
	e.restoreInto(bare)
	if _, err := e.runner.Restore(testContext(t), opts); exitcode.Code(err) != exitcode.SQLServer || !strings.Contains(err.Error(), "911") {
		t.Errorf("a scratch server without HR: %v, want exit 3 (911)", err)
	}
}

func TestADrillOfEveryTDECertificateFailsForOneTheInventoryListsWithoutACopy(t *testing.T) {
	e := restoreEnv(t, "16.0.4135.4")
	tde := e.archiveItem("master", "TDECert", testNow)
	gone := receipt.Item{Kind: receipt.KindCertificate, Database: "master", Name: "FinanceTDE", Thumbprint: strings.Repeat("CD", 20), PrivateKey: "MK", TDE: []string{"Finance"}, Format: "pfx"}
	putItem(t, e.runner, serverName, sqlserver.DefaultInstance, testNow, itemCopy{it: receipt.Item{Kind: receipt.KindServiceMasterKey}, data: []byte("smk"),
		inventory: &receipt.Inventory{Complete: true, Items: []receipt.Item{tde, gone}}})
	scratch := scratchServer(t, "SCRATCH01", "16.0.4135.4", mssqltest.Database{Name: "master", MasterKey: &mssqltest.MasterKey{Password: "Scratch-Dmk-Pa55!"}})
	e.restoreInto(scratch)
	opts := e.restoreOpts()
	opts.Filter = Filter{Host: serverName}

	rec, err := e.runner.DrillTDE(testContext(t), opts)
	if exitcode.Code(err) != exitcode.Stale || !strings.Contains(err.Error(), "FinanceTDE") || !strings.Contains(err.Error(), "Finance") {
		t.Fatalf("drill: %v, want exit 8 naming FinanceTDE\n%s", err, e.logs)
	}
	got := map[string]receipt.ItemResult{}
	for _, x := range rec.Items {
		got[x.Name] = x
	}
	if got["TDECert"].Action != receipt.ItemRestored || got["FinanceTDE"].Action != receipt.ItemFailed || got["FinanceTDE"].Error == nil ||
		got["FinanceTDE"].Error.Code != exitcode.Stale || got["FinanceTDE"].Thumbprint != gone.Thumbprint || rec.Restore.Applied {
		t.Errorf("items %+v, restore %+v", rec.Items, rec.Restore)
	}
	if _, ok := scratch.CertificateOf("master", "TDECert"); !ok {
		t.Error("TDECert was not drilled")
	}
}

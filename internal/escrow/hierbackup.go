package escrow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
)

// This file is backup's part below the service master key: every database
// master key and certificate the configuration selects (hierarchy), each
// archived as a copy of its own with its own stored receipt, and only when
// it changed since its newest proven copy or that copy is older than
// hierarchy.refresh (hierchange.go decides).

// hierarchy is what the inventory found, ready for the items' backup.
type hierarchy struct {
	h   sqlserver.Hierarchy
	sel Selection
	hs  HierarchySQL
	// err: the inventory could not be read; nothing below the service
	// master key is escrowed.
	err error
}

// takeInventory reads the hierarchy and records the selection in the
// run's receipt, before the service master key is archived, so its stored
// receipt carries the inventory. nil when hierarchy.enabled is false.
func (r *Runner) takeInventory(ctx context.Context, rec *receipt.Receipt, db SQL) *hierarchy {
	if !r.Config.Hierarchy.Enabled {
		return nil
	}
	hs, ok := db.(HierarchySQL)
	if !ok {
		return &hierarchy{err: exitcode.Wrap(exitcode.Internal, errors.New("the hierarchy was not escrowed: this SQL Server session cannot read it"))}
	}
	h, err := hs.Inventory(ctx)
	if err != nil {
		err = fmt.Errorf("the hierarchy was not escrowed: its inventory could not be read: %w", err)
		r.Log.ErrorContext(ctx, "the hierarchy was not escrowed: its inventory could not be read; the service master key is still backed up", "err", err.Error())
		return &hierarchy{err: err}
	}
	sel := SelectItems(h, r.Config.Hierarchy)
	rec.Inventory = &sel.Inventory
	for _, p := range sel.Inventory.Problems {
		r.Log.WarnContext(ctx, "a database's keys cannot be read: they are not escrowed and the inventory is incomplete", "database", p.Database, "problem", p.Message)
	}
	r.Log.InfoContext(ctx, "read the hierarchy", "databases", len(h.Databases), "selected", len(sel.Items), "excluded", len(sel.Excluded), "complete", sel.Inventory.Complete)
	return &hierarchy{h: h, sel: sel, hs: hs}
}

// itemsError is the hierarchy's failure: a sentence naming the items that
// failed, over their errors (so their exit codes and interruptions count).
type itemsError struct {
	msg  string
	errs []error
}

func (e *itemsError) Error() string   { return e.msg }
func (e *itemsError) Unwrap() []error { return e.errs }

// backupHierarchy backs up every selected item, one after the other (the
// lock is held, and SQL Server's session runs one statement at a time),
// and lists every item of the server in rec.Items: archived, unchanged,
// failed, excluded, or never escrowed (SQL Server's own certificates and
// certificates without a private key).
func (r *Runner) backupHierarchy(ctx context.Context, rec *receipt.Receipt, db SQL, info sqlserver.Info, hier *hierarchy, targets []target, refused error) error {
	if hier == nil {
		return nil
	}
	if hier.err != nil {
		return hier.err
	}
	x := &itemRun{r: r, rec: rec, db: db, info: info, hier: hier, targets: targets, refused: refused, used: map[string]bool{}}
	x.dirErr = r.itemDirError(info)
	items := make([]receipt.ItemResult, 0, len(hier.sel.Items)+len(hier.sel.Excluded)+len(hier.sel.Others))
	var (
		errs  []error
		notes []string
	)
	decisions := r.decideAll(ctx, rec.Host, rec.Instance, hier.sel.Items, targets)
	for i, it := range hier.sel.Items {
		res, err := x.backup(ctx, it, decisions[i])
		items = append(items, res)
		if err != nil {
			errs = append(errs, err)
			msg := strings.ReplaceAll(err.Error(), "\n", "; ")
			if !strings.HasPrefix(msg, it.Label()) {
				msg = it.Label() + ": " + msg
			}
			notes = append(notes, msg)
		}
	}
	for _, res := range hier.sel.Excluded {
		r.Log.InfoContext(ctx, "hierarchy item excluded", "item", res.Label(), "reason", res.Reason)
		items = append(items, res)
	}
	items = append(items, hier.sel.Others...)
	order := inventoryOrder(hier.h)
	slices.SortStableFunc(items, func(a, b receipt.ItemResult) int { return cmp.Compare(order(a.Item), order(b.Item)) })
	rec.Items = items
	if len(errs) == 0 {
		return nil
	}
	return &itemsError{msg: fmt.Sprintf("%d of %d hierarchy items failed: %s", len(errs), len(hier.sel.Items), strings.Join(notes, "; ")), errs: errs}
}

// inventoryOrder ranks an item as the inventory lists it: database by
// database, each one's master key before its certificates.
func inventoryOrder(h sqlserver.Hierarchy) func(receipt.Item) int {
	rank := map[string]int{}
	for i, d := range h.Databases {
		rank[itemID(receipt.KindDatabaseMasterKey, d.Name, receipt.MasterKeyName)] = i * 100000
		for j, c := range d.Certificates {
			rank[itemID(receipt.KindCertificate, d.Name, c.Name)] = i*100000 + 1 + j
		}
	}
	return func(it receipt.Item) int {
		if n, ok := rank[itemID(it.Kind, it.Database, it.Name)]; ok {
			return n
		}
		return len(h.Databases) * 100000
	}
}

func itemID(kind, database, name string) string {
	return kind + "\x00" + strings.ToLower(database) + "\x00" + strings.ToLower(name)
}

// itemRun is one run's state for its items.
type itemRun struct {
	r       *Runner
	rec     *receipt.Receipt // the run's receipt (the service master key's)
	db      SQL
	info    sqlserver.Info
	hier    *hierarchy
	targets []target
	refused error
	// dirErr: the key folder cannot take an export (checked once).
	dirErr error
	// used are the file names taken in the key folder by this run.
	used map[string]bool
}

// itemDirError is the service master key's folder checks, for the items'
// exports: nil when the folder may take them.
func (r *Runner) itemDirError(info sqlserver.Info) error {
	b := r.Config.Backup
	if b.Remote {
		if err := MayReadBack(info); err != nil {
			return fmt.Errorf("nothing was exported: %w", err)
		}
		return nil
	}
	localDir, localKey := b.LocalDirectory, "backup.local_directory"
	if localDir == "" {
		localDir, localKey = b.ServerDirectory, "backup.server_directory"
	}
	if b.LocalDirectory == "" && runtime.GOOS != "windows" && isWindowsPath(b.ServerDirectory) {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("backup.server_directory %s is a Windows path, which this host cannot open: set backup.local_directory to where this host sees that folder (a mounted share)", b.ServerDirectory))
	}
	return checkPrivateDir(localDir, localKey)
}

// backup exports, archives and proves the item when dec says it needs a
// new copy. err is the item's failure, also
// recorded in the result.
func (x *itemRun) backup(ctx context.Context, it receipt.Item, dec decision) (res receipt.ItemResult, err error) {
	r := x.r
	res = receipt.ItemResult{Item: it}
	defer func() {
		if err != nil {
			res.Action = receipt.ItemFailed
			res.Error = &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}
			r.Log.ErrorContext(ctx, "hierarchy item failed", "item", it.Label(), "reason", res.Reason, "code", res.Error.Code, "err", err.Error())
		}
	}()
	res.Reason = dec.reason
	if dec.unchanged {
		res.Action, res.Newest = receipt.ItemUnchanged, dec.newest
		r.Log.InfoContext(ctx, "hierarchy item unchanged", "item", it.Label(), "reason", dec.reason)
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	dmkPW, keyPW, err := r.itemPasswords(x.hier.h, it)
	if err != nil {
		return res, err
	}
	if x.dirErr != nil {
		return res, x.dirErr
	}
	irec := r.itemReceipt(x.rec, it)
	name := itemFileName(it, r.Clock(), r.RunID)
	irec.File = &receipt.File{Name: name}
	pw, err := r.backupPassword(irec)
	if err != nil {
		return res, err
	}
	ex, err := x.export(ctx, it, name, pw, dmkPW, keyPW)
	if err != nil {
		return res, err
	}
	if err := r.seal(ex.kf, name, pw); err != nil {
		ex.keep(ctx, "its password could not be sealed")
		return res, err
	}
	key := func(prefix string) string { return itemObjectKey(prefix, x.rec.Host, x.rec.Instance, it, name) }
	err = r.quorum(ctx, irec, errors.Join(r.archive(ctx, irec, ex.kf, x.targets, key), x.refused))
	res.File, res.Destinations = irec.File, irec.Destinations
	if err != nil {
		ex.keep(ctx, "not every destination is verified")
		return res, err
	}
	res.Action = receipt.ItemArchived
	ex.done(ctx)
	r.Log.InfoContext(ctx, "hierarchy item archived", "item", it.Label(), "reason", res.Reason, "file", name, "destinations", len(x.targets))
	return res, nil
}

// itemReceipt is the receipt of one item's copy: the run's identity, the
// item, and (like the service master key's) the destinations preflight
// refused.
func (r *Runner) itemReceipt(run *receipt.Receipt, it receipt.Item) *receipt.Receipt {
	rec := r.newReceipt()
	rec.StartedAt = run.StartedAt
	rec.Host, rec.Instance, rec.MachineName = run.Host, run.Instance, run.MachineName
	rec.Kind = it.Kind
	item := it
	rec.Item = &item
	for _, d := range run.Destinations {
		if d.Status == receipt.DestRefused {
			rec.Destinations = append(rec.Destinations, d)
		}
	}
	return rec
}

// itemPasswords returns the passwords an item's export needs besides the
// backup password: its database master key's, when the service master key
// does not protect it and the item is that key or a certificate under it,
// and a certificate's own private key password. A needed password that is
// not configured fails the item (exit 2) before any SQL runs.
func (r *Runner) itemPasswords(h sqlserver.Hierarchy, it receipt.Item) (dmk, key secret.Value, err error) {
	return itemPasswords(h, it, r.KeyPassword)
}

// KeyPasswordProblems is what backup would fail items with for their key
// passwords (hierarchy.passwords): for each item that needs one, the
// password is configured and can be read. check calls it.
func KeyPasswordProblems(h sqlserver.Hierarchy, items []receipt.Item, keyPassword func(database, certificate string) (secret.Value, error)) []error {
	var out []error
	for _, it := range items {
		if _, _, err := itemPasswords(h, it, keyPassword); err != nil {
			out = append(out, err)
		}
	}
	return out
}

func itemPasswords(h sqlserver.Hierarchy, it receipt.Item, keyPassword func(database, certificate string) (secret.Value, error)) (dmk, key secret.Value, err error) {
	needDMK := false
	switch it.Kind {
	case receipt.KindDatabaseMasterKey:
		needDMK = it.ProtectedByServiceMasterKey != nil && !*it.ProtectedByServiceMasterKey
	case receipt.KindCertificate:
		if it.PrivateKey == sqlserver.KeyByMasterKey {
			if d := h.Find(it.Database); d != nil && d.MasterKey != nil && !d.MasterKey.ServiceMasterKey {
				needDMK = true
			}
		}
	}
	read := func(database, certificate string) (secret.Value, error) {
		if keyPassword == nil {
			return secret.Value{}, nil
		}
		return keyPassword(database, certificate)
	}
	if needDMK {
		if dmk, err = read(it.Database, ""); err != nil {
			return dmk, key, err
		}
		if dmk.Empty() {
			what := it.Label() + " is not protected by the service master key, so SQL Server opens it only with its password, which is not configured"
			if it.Kind == receipt.KindCertificate {
				what = fmt.Sprintf("%s's private key is protected by database %s's master key, which the service master key does not protect: its password is needed and not configured", it.Label(), it.Database)
			}
			return dmk, key, exitcode.Wrap(exitcode.Usage, fmt.Errorf("%s: add it under hierarchy.passwords (- database: %s, password_env: VARIABLE, or password_file: FILE) and run again", what, it.Database))
		}
	}
	if it.Kind == receipt.KindCertificate && it.PrivateKey == sqlserver.KeyByPassword {
		if key, err = read(it.Database, it.Name); err != nil {
			return dmk, key, err
		}
		if key.Empty() {
			return dmk, key, exitcode.Wrap(exitcode.Usage, fmt.Errorf("%s has a private key password of its own, which is not configured: add it under hierarchy.passwords (- database: %s, certificate: %s, password_env: VARIABLE, or password_file: FILE) and run again", it.Label(), it.Database, it.Name))
		}
	}
	return dmk, key, nil
}

// export is one item's export: the file(s) SQL Server wrote, read into
// memory, and how to clean them up.
type export struct {
	kf *keyFile
	// done removes the exported files once the item's copies are proven
	// (unless keep_local); keep tells where they stay when not.
	done func(ctx context.Context)
	keep func(ctx context.Context, why string)
}

// serverFileName is a name for the item's export in the key folder that
// no other export of this run takes: a certificate's name is unique only
// within its database, so its database leads.
func (x *itemRun) serverFileName(it receipt.Item, name string) string {
	if it.Kind == receipt.KindCertificate {
		name = portableName(it.Database) + "-" + name
	}
	base, n := name, 2
	for x.used[strings.ToLower(name)] {
		ext := filepath.Ext(base)
		name = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(base, ext), n, ext)
		n++
	}
	x.used[strings.ToLower(name)] = true
	return name
}

// export has SQL Server write the item's backup into the key folder and
// reads it: from this host's view of the folder, or with backup.remote over
// the connection.
func (x *itemRun) export(ctx context.Context, it receipt.Item, name string, pw, dmkPW, keyPW secret.Value) (*export, error) {
	r, b := x.r, x.r.Config.Backup
	file := x.serverFileName(it, name)
	files := []string{file}
	format := sqlserver.FormatPFX
	if it.Kind == receipt.KindCertificate && it.Format != "pfx" {
		format = sqlserver.FormatPVK
		files = append(files, privateKeyKey(file))
	}
	serverPaths := make([]string, len(files))
	for i, f := range files {
		serverPaths[i] = serverJoin(b.ServerDirectory, f)
	}
	localDir := cmp.Or(b.LocalDirectory, b.ServerDirectory)
	localPaths := make([]string, len(files))
	for i, f := range files {
		localPaths[i] = filepath.Join(localDir, f)
	}

	r.Log.InfoContext(ctx, "exporting a hierarchy item", "item", it.Label(), "server_path", serverPaths[0], "remote", b.Remote)
	var err error
	switch it.Kind {
	case receipt.KindDatabaseMasterKey:
		err = x.hier.hs.BackupDatabaseMasterKey(ctx, it.Database, serverPaths[0], pw, dmkPW)
	case receipt.KindCertificate:
		cf := sqlserver.CertificateFiles{Format: format, Certificate: serverPaths[0]}
		if format == sqlserver.FormatPVK {
			cf.PrivateKey = serverPaths[1]
		}
		err = x.hier.hs.BackupCertificate(ctx, sqlserver.CertificateBackup{
			Database: it.Database, Name: it.Name, Files: cf, Password: pw, KeyPassword: keyPW, MasterKeyPassword: dmkPW,
		})
	default:
		return nil, exitcode.Wrap(exitcode.Internal, fmt.Errorf("%s: unknown kind %q", it.Label(), it.Kind))
	}

	if b.Remote {
		keep := func(ctx context.Context, why string) {
			for _, p := range serverPaths {
				r.Log.WarnContext(ctx, why+": the item's export stays on the server", "item", it.Label(), "server_path", p, "how", removeHow(p))
			}
		}
		if err != nil {
			return nil, err
		}
		data := make([][]byte, len(files))
		for i, p := range serverPaths {
			data[i], err = x.db.ReadServerFile(ctx, p, maxKeyFileSize)
			if err == nil && len(data[i]) == 0 {
				err = exitcode.Wrap(exitcode.SQLServer, fmt.Errorf("the file SQL Server wrote (%s) is empty", p))
			}
			if err != nil {
				keep(ctx, "the export could not be read back")
				return nil, fmt.Errorf("%w (the export stays on the server at %s and is not archived: %s)", err, p, removeHow(p))
			}
		}
		kf := newKeyFile(serverPaths[0], data[0])
		if len(data) > 1 {
			kf.privateKey = newKeyFile(serverPaths[1], data[1])
		}
		return &export{kf: kf, keep: keep, done: func(ctx context.Context) {
			if b.KeepLocal {
				return
			}
			for _, p := range serverPaths {
				if err := x.db.RemoveServerFile(ctx, p); err != nil {
					r.Log.WarnContext(ctx, "every destination is verified, but the item's export remains on the server: remove it there", "item", it.Label(), "server_path", p, "how", removeHow(p), "err", err.Error())
				}
			}
		}}, nil
	}

	keep := func(ctx context.Context, why string) {
		for _, p := range localPaths {
			if _, statErr := os.Lstat(p); statErr == nil {
				restrict(p)
				r.Log.WarnContext(ctx, why+": the item's export is kept, owner-only", "item", it.Label(), "path", p)
			}
		}
	}
	if err != nil {
		keep(ctx, "the export failed but a file exists")
		return nil, err
	}
	kfs := make([]*keyFile, len(files))
	for i, p := range localPaths {
		restrict(p)
		kfs[i], err = readKeyFile(p)
		if err != nil {
			keep(ctx, "the export could not be read")
			if os.IsNotExist(err) {
				return nil, exitcode.Wrap(exitcode.SQLServer, fmt.Errorf("SQL Server reported %s's backup done, but the file is not at %s: when this host sees server_directory under another path, set backup.local_directory", it.Label(), p))
			}
			return nil, exitcode.Wrap(exitcode.SQLServer, fmt.Errorf("reading the file SQL Server wrote: %w", err))
		}
	}
	kf := kfs[0]
	if len(kfs) > 1 {
		kf.privateKey = kfs[1]
	}
	return &export{kf: kf, keep: keep, done: func(ctx context.Context) {
		if b.KeepLocal {
			return
		}
		for _, p := range localPaths {
			if err := os.Remove(p); err != nil {
				r.Log.WarnContext(ctx, "every destination is verified but the item's export could not be removed", "item", it.Label(), "path", p, "err", err)
			}
		}
	}}, nil
}

package escrow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
)

// This file restores the keys below the service master key: a database
// master key (RESTORE MASTER KEY) and a certificate with its private key
// (CREATE CERTIFICATE … FROM FILE), from a copy backup archived with its
// receipt's item.

// SelectKind checks restore's and drill's choice of key: the service
// master key (the default, kind ""), a database's master key (database
// needed), or a certificate (database and name needed). It returns the
// kind to filter on; a bad combination is exit 2.
func SelectKind(kind, database, name string) (string, error) {
	usage := func(format string, args ...any) (string, error) {
		return "", exitcode.Wrap(exitcode.Usage, fmt.Errorf(format, args...))
	}
	switch kind {
	case "", receipt.KindServiceMasterKey:
		if database != "" || name != "" {
			return usage("--database and --name choose a key of the hierarchy: add --kind database-master-key (with --database) or --kind certificate (with --database and --name); the service master key needs neither")
		}
		return receipt.KindServiceMasterKey, nil
	case receipt.KindDatabaseMasterKey:
		switch {
		case database == "":
			return usage("--kind database-master-key needs --database NAME: the database whose master key to restore (keyescrow list shows the archived ones)")
		case name != "":
			return usage("a database master key has no name: drop --name (--database chooses it)")
		}
	case receipt.KindCertificate:
		if database == "" || name == "" {
			return usage("--kind certificate needs --database NAME and --name CERTIFICATE (a TDE certificate is in master: --database master); drill --kind certificate alone drills every TDE certificate")
		}
	default:
		return usage("--kind %q is not a kind of key: use service-master-key (the default), database-master-key or certificate", kind)
	}
	return kind, nil
}

// askedItem is the item restore looks for, as the flags name it (nil for
// the service master key): the receipt of a restore that finds no copy
// still says what was asked for.
func askedItem(f Filter) *receipt.Item {
	switch f.Kind {
	case receipt.KindDatabaseMasterKey:
		return &receipt.Item{Kind: f.Kind, Database: f.Database, Name: receipt.MasterKeyName}
	case receipt.KindCertificate:
		return &receipt.Item{Kind: f.Kind, Database: f.Database, Name: f.Name}
	}
	return nil
}

// certFormat is the format of a certificate copy, by its file name.
func certFormat(name string) sqlserver.CertificateFormat {
	if strings.EqualFold(filepath.Ext(name), ".pfx") {
		return sqlserver.FormatPFX
	}
	return sqlserver.FormatPVK
}

// fetchPrivateKey reads the .pvk stored beside a certificate's .cer by the
// version its receipt records and proves it against file.private_key (and
// the destination's private_key entry): a certificate in the pvk format is
// usable only with it, so a missing, damaged or unrecorded .pvk fails the
// copy (exit 6). Other copies return nil, nil.
func fetchPrivateKey(ctx context.Context, d Destination, c Copy, rec *receipt.Receipt) ([]byte, error) {
	if c.Kind != receipt.KindCertificate || rec == nil || rec.File == nil {
		return nil, nil
	}
	t := target{name: d.Config.Name, backend: d.Backend}
	pk := rec.File.PrivateKey
	if pk == nil {
		if certFormat(c.Name) == sqlserver.FormatPVK {
			return nil, verifyError(t, fmt.Sprintf("the receipt of %s records no private key file (.pvk) for this certificate: the certificate cannot be restored with its private key", c.Location))
		}
		return nil, nil
	}
	side := privateKeySidecar(rec, d, c)
	switch {
	case side == nil:
		return nil, verifyError(t, fmt.Sprintf("the receipt of %s records a private key file but names none at this destination", c.Location))
	case !strings.EqualFold(side.SHA256, pk.SHA256) || side.Bytes != pk.Bytes:
		return nil, verifyError(t, fmt.Sprintf("the receipt of %s records the private key file as %d bytes SHA-256 %s, and at this destination as %d bytes SHA-256 %s: the receipt is inconsistent", c.Location, pk.Bytes, pk.SHA256, side.Bytes, side.SHA256))
	}
	return fetchSidecar(ctx, d, c, privateKeyKey(c.Key), side, "private key", "the certificate cannot be restored with its private key", pk.Bytes)
}

// privateKeySidecar is the .pvk a receipt records for a certificate copy
// at destination d (nil when none).
func privateKeySidecar(rec *receipt.Receipt, d Destination, c Copy) *receipt.Sidecar {
	return sidecarEntry(rec, d.Config.Name, d.Backend.Location(privateKeyKey(c.Key)), func(x receipt.Destination) *receipt.Sidecar { return x.PrivateKey })
}

// privateKeyOut is where restore --out writes a certificate's .pvk: out
// with .pvk for its .cer extension, or with .pvk added.
func privateKeyOut(out string) string {
	if ext := filepath.Ext(out); strings.EqualFold(ext, ".cer") {
		return strings.TrimSuffix(out, ext) + privateKeySuffix
	}
	return out + privateKeySuffix
}

// writeOut writes the verified copy to opts.Out and, for a certificate in
// the pvk format, its private key beside it; both are create-only and
// owner-only, and when the second cannot be written the first is removed:
// either both files are there or neither.
func (r *Runner) writeOut(ctx context.Context, rec *receipt.Receipt, cc *CheckedCopy, opts RestoreOptions) error {
	if rec.Kind == receipt.KindCertificate && !strings.EqualFold(filepath.Ext(opts.Out), filepath.Ext(rec.File.Name)) {
		r.Log.WarnContext(ctx, "--out does not end like the copy's file: it is written as named, but a .pfx needs FORMAT = 'PFX' in CREATE CERTIFICATE … FROM FILE, and a .cer its .pvk", "copy", rec.File.Name, "out", opts.Out)
	}
	keyOut := ""
	if cc.privateKey != nil {
		keyOut = privateKeyOut(opts.Out)
		if keyOut == opts.PasswordOut {
			return exitcode.Wrap(exitcode.Usage, fmt.Errorf("the certificate's private key goes to %s, which --password-out names too: choose another --password-out", keyOut))
		}
		if _, err := os.Lstat(keyOut); err == nil {
			return exitcode.Wrap(exitcode.Usage, fmt.Errorf("the certificate's private key goes beside --out, to %s, which exists already: keyescrow never overwrites a key file; choose another --out", keyOut))
		}
	}
	if err := writeCreateOnly(opts.Out, cc.data); err != nil {
		return err
	}
	if keyOut != "" {
		if err := writeCreateOnly(keyOut, cc.privateKey); err != nil {
			if rerr := os.Remove(opts.Out); rerr != nil {
				r.Log.ErrorContext(ctx, "the certificate file could not be removed after its private key failed: remove it by hand", "path", opts.Out, "err", rerr.Error())
			}
			return err
		}
		rec.Restore.PrivateKeyOut = keyOut
		r.Log.InfoContext(ctx, "wrote the verified certificate and its private key, owner-only", "path", opts.Out, "private_key", keyOut, "sha256", cc.Checksum.Local)
		return nil
	}
	r.Log.InfoContext(ctx, "wrote the verified copy, owner-only", "path", opts.Out, "sha256", cc.Checksum.Local)
	return nil
}

// stageFile is a file to place in the folder the server reads.
type stageFile struct {
	name string
	data []byte
}

// stage writes each file, create-only and owner-only and shared with the
// server's account, into the folder the server reads (localDir as this
// host sees it) and returns their paths as the server sees them; remove
// deletes every file staged (all or none are: a failure removes those
// written before it).
func (r *Runner) stage(ctx context.Context, localDir, serverDir string, files ...stageFile) (serverPaths []string, remove func(), err error) {
	var locals []string
	remove = func() {
		for _, p := range locals {
			if err := os.Remove(p); err != nil {
				r.Log.WarnContext(ctx, "a staged key file could not be removed: remove it by hand", "path", p, "err", err.Error())
			}
		}
	}
	for _, f := range files {
		local := filepath.Join(localDir, f.name)
		if err := writeCreateOnly(local, f.data); err != nil {
			remove()
			return nil, func() {}, err
		}
		shareWithServer(local, localDir)
		locals = append(locals, local)
		serverPaths = append(serverPaths, serverJoin(serverDir, f.name))
	}
	return serverPaths, remove, nil
}

// restoreTarget is the server an item is restored into.
type restoreTarget struct {
	hdb  HierarchyRestoreSQL
	info sqlserver.Info
}

// restoreScope names what restore looks for, in messages.
func restoreScope(f Filter) string {
	switch f.Kind {
	case receipt.KindDatabaseMasterKey:
		return "the database master key of " + f.Database + " of " + scopeNames(f)
	case receipt.KindCertificate:
		return "certificate " + f.Database + "/" + f.Name + " of " + scopeNames(f)
	}
	return scopeNames(f)
}

// copiedItem is the item a verified copy holds, as its receipt records it.
func copiedItem(c Copy, cc *CheckedCopy) (receipt.Item, error) {
	if cc.rec == nil || cc.rec.Item == nil {
		return receipt.Item{}, exitcode.Wrap(exitcode.Verify, fmt.Errorf("the receipt of %s names no item of the hierarchy", c.Location))
	}
	return *cc.rec.Item, nil
}

// keyPassword reads the configured password (hierarchy.passwords, through
// r.KeyPassword) of a database master key (certificate "") or of a
// certificate's private key; ok is false when none is configured.
func (r *Runner) keyPassword(database, certificate string) (secret.Value, bool, error) {
	if r.KeyPassword == nil {
		return secret.Value{}, false, nil
	}
	pw, err := r.KeyPassword(database, certificate)
	if err != nil {
		return secret.Value{}, false, err
	}
	return pw, !pw.Empty(), nil
}

// applyDatabaseMasterKey runs RESTORE MASTER KEY in the item's database.
// The restored key is encrypted by the password hierarchy.passwords gives
// that database (RESTORE MASTER KEY needs one); the same password opens
// the database's current master key first when the service master key
// does not protect it, so that SQL Server can re-encrypt what it protects.
// FORCE is gated exactly as for the service master key.
func (r *Runner) applyDatabaseMasterKey(ctx context.Context, rec *receipt.Receipt, c Copy, cc *CheckedCopy, opts RestoreOptions, tg restoreTarget, filePW secret.Value, localDir string) error {
	it, err := copiedItem(c, cc)
	if err != nil {
		return err
	}
	newPW, ok, err := r.keyPassword(it.Database, "")
	if err != nil {
		return err
	}
	if !ok {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("restoring the database master key of %s needs the password that will protect it in that database (RESTORE MASTER KEY … ENCRYPTION BY PASSWORD): add to hierarchy.passwords an entry with database: %s and password_env (or password_file)", it.Database, it.Database))
	}
	if err := sqlserver.CheckPassword(newPW); err != nil {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("the hierarchy.passwords password of database %s: %w", it.Database, err))
	}
	h, err := tg.hdb.Inventory(ctx)
	if err != nil {
		return err
	}
	var openPW secret.Value
	if d := h.Find(it.Database); d != nil && d.MasterKey != nil && !d.MasterKey.ServiceMasterKey {
		openPW = newPW
		r.Log.InfoContext(ctx, "the database's current master key is not protected by the service master key: opening it with its configured password first", "database", it.Database)
	}
	paths, remove, err := r.stage(ctx, localDir, opts.ServerDirectory, stageFile{"restore-" + r.RunID[:8] + "-" + c.Name, cc.data})
	if err != nil {
		return err
	}
	defer remove()
	r.Log.InfoContext(ctx, "restoring the database master key", "database", it.Database, "server", tg.info.ServerName, "force", opts.Force, "drill", opts.Drill)
	if err := tg.hdb.RestoreDatabaseMasterKey(ctx, it.Database, paths[0], filePW, newPW, openPW, opts.Force); err != nil {
		return err
	}
	rec.Restore.Applied, rec.Restore.Server = true, tg.info.ServerName
	r.Log.InfoContext(ctx, "the database master key is restored", "database", it.Database, "server", tg.info.ServerName)
	return nil
}

// applyCertificate stages the certificate's file(s) and runs CREATE
// CERTIFICATE … FROM FILE in the item's database, then reads the server's
// catalog back: the certificate must have the thumbprint the copy's
// receipt records and its private key (else exit 6). Its private key is
// protected as it was: by the database master key, which must exist and be
// open (opened with the database's hierarchy.passwords entry when the
// service master key does not protect it), or, for a key that had a
// password of its own, by that password from hierarchy.passwords.
func (r *Runner) applyCertificate(ctx context.Context, rec *receipt.Receipt, c Copy, cc *CheckedCopy, opts RestoreOptions, tg restoreTarget, filePW secret.Value, localDir string) error {
	it, err := copiedItem(c, cc)
	if err != nil {
		return err
	}
	format := certFormat(c.Name)
	h, err := tg.hdb.Inventory(ctx)
	if err != nil {
		return err
	}
	if format == sqlserver.FormatPFX && sqlserver.FormatFor(h.MajorVersion) != sqlserver.FormatPFX {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("%s is a PFX file (made on SQL Server 2022 or later), and %s runs SQL Server %d, which reads a certificate only from a .cer and a .pvk: restore it into SQL Server 2022 or later", c.Location, tg.info.ServerName, h.MajorVersion))
	}
	d := h.Find(it.Database)
	if d != nil {
		for _, have := range d.Certificates {
			if it.Thumbprint != "" && strings.EqualFold(have.ThumbprintHex(), it.Thumbprint) && have.HasPrivateKey() && !opts.Drill {
				// The very certificate is there with its private key: a
				// TDE certificate already present needs nothing.
				match := true
				rec.Restore.Server, rec.Restore.Thumbprint, rec.Restore.ThumbprintMatch = tg.info.ServerName, have.ThumbprintHex(), &match
				r.Log.WarnContext(ctx, "the certificate is already in the database with its private key (same thumbprint): nothing to restore", "database", it.Database, "certificate", have.Name, "thumbprint", have.ThumbprintHex(), "server", tg.info.ServerName)
				return nil
			}
		}
	}
	var newPW, openPW secret.Value
	if it.PrivateKey == sqlserver.KeyByPassword {
		pw, ok, err := r.keyPassword(it.Database, it.Name)
		if err != nil {
			return err
		}
		if !ok {
			return exitcode.Wrap(exitcode.Usage, fmt.Errorf("the private key of certificate %s/%s was protected by a password of its own: add to hierarchy.passwords an entry with database: %s, certificate: %s and password_env (or password_file) to protect it with again", it.Database, it.Name, it.Database, it.Name))
		}
		newPW = pw
	} else if d != nil && d.MasterKey != nil && !d.MasterKey.ServiceMasterKey {
		if pw, ok, err := r.keyPassword(it.Database, ""); err != nil {
			return err
		} else if ok {
			openPW = pw
			r.Log.InfoContext(ctx, "the database's master key is not protected by the service master key: opening it with its configured password", "database", it.Database)
		}
	}
	base := "restore-" + r.RunID[:8] + "-" + c.Name
	files := []stageFile{{base, cc.data}}
	if format == sqlserver.FormatPVK {
		if cc.privateKey == nil {
			return exitcode.Wrap(exitcode.Verify, fmt.Errorf("%s: the certificate's private key file was not read", c.Location))
		}
		files = append(files, stageFile{privateKeyKey(base), cc.privateKey})
	}
	paths, remove, err := r.stage(ctx, localDir, opts.ServerDirectory, files...)
	if err != nil {
		return err
	}
	defer remove()
	req := sqlserver.CertificateRestore{
		Database: it.Database, Name: it.Name,
		Files:    sqlserver.CertificateFiles{Format: format, Certificate: paths[0]},
		Password: filePW, NewPassword: newPW, MasterKeyPassword: openPW,
	}
	if format == sqlserver.FormatPVK {
		req.Files.PrivateKey = paths[1]
	}
	r.Log.InfoContext(ctx, "restoring the certificate", "database", it.Database, "certificate", it.Name, "server", tg.info.ServerName, "drill", opts.Drill)
	if err := tg.hdb.CreateCertificateFromFile(ctx, req); err != nil {
		return certificateError(err, it, tg.info, opts.Drill)
	}
	rec.Restore.Applied, rec.Restore.Server = true, tg.info.ServerName
	return r.checkRestoredCertificate(ctx, rec, it, tg)
}

// certificateError explains the errors of CREATE CERTIFICATE that mean
// the target server is not ready rather than the copy bad.
func certificateError(err error, it receipt.Item, info sqlserver.Info, drill bool) error {
	var se *sqlserver.Error
	if !errors.As(err, &se) {
		return err
	}
	server := "the server"
	if drill {
		server = "the drill's scratch server"
	}
	switch se.Number {
	case sqlserver.ErrNumMasterKeyNotOpen:
		return exitcode.Wrap(exitcode.SQLServer, fmt.Errorf("%s %s has no open database master key in database %s to protect the restored private key: create a master key in %s of %s first (USE [%s]; CREATE MASTER KEY ENCRYPTION BY PASSWORD = '…';), or, when its master key is protected by a password only, add that password to hierarchy.passwords (database: %s): %w", server, info.ServerName, it.Database, it.Database, server, it.Database, it.Database, err))
	case sqlserver.ErrNumCertificateExists:
		if drill {
			return exitcode.Wrap(exitcode.SQLServer, fmt.Errorf("the drill's scratch server %s already holds certificate %s, or this very certificate, in database %s (from an earlier drill?): a drill must load the file to prove it, so drop it there first (USE [%s]; DROP CERTIFICATE [%s];) or use a fresh scratch server: %w", info.ServerName, it.Name, it.Database, it.Database, it.Name, err))
		}
		return exitcode.Wrap(exitcode.SQLServer, fmt.Errorf("database %s of %s already holds a certificate named %s, or this very certificate without its private key: nothing was changed (a TDE certificate already present with its private key needs no restore; keyescrow inventory shows it): %w", it.Database, info.ServerName, it.Name, err))
	}
	return err
}

// checkRestoredCertificate reads the server's catalog after CREATE
// CERTIFICATE: the certificate must have the recorded thumbprint and its
// private key, else the file was not the certificate its receipt records
// (exit 6).
func (r *Runner) checkRestoredCertificate(ctx context.Context, rec *receipt.Receipt, it receipt.Item, tg restoreTarget) error {
	h, err := tg.hdb.Inventory(ctx)
	if err != nil {
		return err
	}
	var got *sqlserver.Certificate
	if d := h.Find(it.Database); d != nil {
		for i := range d.Certificates {
			if strings.EqualFold(d.Certificates[i].Name, it.Name) {
				got = &d.Certificates[i]
			}
		}
	}
	match := false
	rec.Restore.ThumbprintMatch = &match
	if got == nil {
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("CREATE CERTIFICATE succeeded, but %s does not list certificate %s in database %s: the restore cannot be proven", tg.info.ServerName, it.Name, it.Database))
	}
	rec.Restore.Thumbprint = got.ThumbprintHex()
	switch {
	case it.Thumbprint == "":
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("the copy's receipt records no thumbprint for %s: the restored certificate (thumbprint %s) cannot be proven to be it", it.Label(), got.ThumbprintHex()))
	case !strings.EqualFold(got.ThumbprintHex(), it.Thumbprint):
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("the certificate restored into %s database %s has thumbprint %s, and the copy's receipt records %s: the file is not the certificate recorded; drop it there (USE [%s]; DROP CERTIFICATE [%s];) and restore another copy", tg.info.ServerName, it.Database, got.ThumbprintHex(), it.Thumbprint, it.Database, it.Name))
	case !got.HasPrivateKey():
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("the certificate restored into %s database %s has the recorded thumbprint %s but no private key: it cannot decrypt anything", tg.info.ServerName, it.Database, got.ThumbprintHex()))
	}
	match = true
	r.Log.InfoContext(ctx, "the certificate is restored: its thumbprint is the recorded one and it has its private key", "database", it.Database, "certificate", it.Name, "thumbprint", got.ThumbprintHex(), "private_key_protection", got.PrivateKey, "server", tg.info.ServerName)
	return nil
}

// errNotTDE ends a DrillTDE restore of a certificate that protects no TDE
// database.
var errNotTDE = errors.New("not a TDE certificate")

// DrillTDE drills every TDE certificate of the host and instance: each
// certificate archived in master whose newest genuine copy records the
// TDE databases it protects, and each TDE certificate the inventory of the
// newest genuine service master key copy lists, is restored into the
// scratch server and its thumbprint proven, as `drill --kind certificate
// --database master --name …` does for one. The receipt lists each
// certificate in items (action restored, failed, or excluded for a
// certificate that protects no TDE database); the exit code is the largest
// of the failures' (8 for a TDE certificate the inventory lists and no
// destination holds a copy of). With no TDE certificate at all it is
// exit 2.
func (r *Runner) DrillTDE(ctx context.Context, opts RestoreOptions) (*receipt.Receipt, error) {
	rec := r.newReceipt()
	rec.Kind = receipt.KindCertificate
	rec.Restore = &receipt.Restore{Drill: true}
	r.warnUnauthenticated(ctx, false)
	err := r.drillTDE(ctx, rec, opts)
	return r.finish(rec, err, nil)
}

func (r *Runner) drillTDE(ctx context.Context, rec *receipt.Receipt, opts RestoreOptions) error {
	opts.Filter.Kind, opts.Filter.Database, opts.Filter.Name = receipt.KindCertificate, "master", ""
	opts.Apply, opts.Drill, opts.tdeOnly = true, true, true
	if err := checkRestoreOptions(opts); err != nil {
		return err
	}
	names, err := r.archivedCertificates(ctx, opts)
	if err != nil {
		return err
	}
	listed := map[string]receipt.Item{} // TDE certificates the inventory lists
	if inv := r.newestInventory(ctx, opts); inv != nil {
		for _, it := range inv.Items {
			if it.Kind == receipt.KindCertificate && strings.EqualFold(it.Database, "master") && len(it.TDE) > 0 {
				listed[strings.ToLower(it.Name)] = it
				if !slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, it.Name) }) {
					names = append(names, it.Name)
				}
			}
		}
		slices.Sort(names)
	}
	if len(names) == 0 {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("no certificate of database master is archived for %s: nothing to drill (keyescrow list shows what is archived)", scopeNames(opts.Filter)))
	}
	var errs []error
	restored, authenticated := 0, true
	for _, name := range names {
		o := opts
		o.Filter.Name = name
		sub := r.newReceipt()
		sub.Restore = &receipt.Restore{Drill: true}
		runErr, destErr := r.restore(ctx, sub, o)
		res := receipt.ItemResult{Item: receipt.Item{Kind: receipt.KindCertificate, Database: "master", Name: name},
			File: sub.File, Destinations: sub.Destinations}
		if sub.Item != nil {
			res.Item = *sub.Item
		}
		if sub.Host != "" {
			rec.Host, rec.Instance, rec.MachineName = sub.Host, sub.Instance, sub.MachineName
		}
		rec.Restore.Skipped = append(rec.Restore.Skipped, sub.Restore.Skipped...)
		inv, isListed := listed[strings.ToLower(name)]
		switch err := errors.Join(runErr, destErr); {
		case isListed && errors.Is(runErr, errNoCopy):
			res.Item = inv
			res.Action, res.Reason = receipt.ItemFailed, "the inventory lists it and no destination holds a copy"
			err = exitcode.Wrap(exitcode.Stale, fmt.Errorf("TDE certificate master/%s protects %s, as the inventory of the newest service master key copy records, and no destination holds a copy of it: the databases it protects cannot be brought back on another server; run keyescrow backup (keyescrow inventory shows what is missing)", inv.Name, strings.Join(inv.TDE, ", ")))
			res.Error = &receipt.Error{Code: exitcode.Stale, Message: err.Error()}
			errs = append(errs, err)
			r.Log.ErrorContext(ctx, "a TDE certificate has no copy to drill", "certificate", inv.Name, "tde_databases", strings.Join(inv.TDE, ","))
		case errors.Is(runErr, errNotTDE):
			res.Action, res.Reason = receipt.ItemExcluded, "it protects no TDE database: drill it by name (--database master --name "+res.Name+")"
			r.Log.InfoContext(ctx, "not drilled: not a TDE certificate", "certificate", res.Name)
		case err != nil:
			res.Action, res.Reason = receipt.ItemFailed, "the drill failed"
			res.Error = &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}
			errs = append(errs, fmt.Errorf("certificate master/%s: %w", name, err))
			r.Log.ErrorContext(ctx, "the drill of a TDE certificate failed", "certificate", res.Name, "err", err.Error())
		default:
			restored++
			authenticated = authenticated && sub.Restore.Authenticated
			rec.Restore.Server = sub.Restore.Server
			res.Action = receipt.ItemRestored
			res.Reason = fmt.Sprintf("restored into %s: thumbprint %s is the recorded one and the private key is there", sub.Restore.Server, sub.Restore.Thumbprint)
		}
		rec.Items = append(rec.Items, res)
	}
	rec.Restore.Applied = restored > 0 && len(errs) == 0
	rec.Restore.Authenticated = restored > 0 && authenticated
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if restored == 0 {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("none of the %d certificates archived in master for %s protects a TDE database (items says which): nothing to drill; drill one by name with --database master --name", len(names), scopeNames(opts.Filter)))
	}
	r.Log.InfoContext(ctx, "every TDE certificate drilled", "certificates", restored, "server", rec.Restore.Server)
	return nil
}

// newestInventory is the inventory recorded in the newest genuine copy of
// the service master key of the filter's host and instance, at the first
// destination that has one; nil when none does (a backup without the
// hierarchy, or before it was escrowed).
func (r *Runner) newestInventory(ctx context.Context, opts RestoreOptions) *receipt.Inventory {
	dests, err := r.selectDestinations(opts.Destination)
	if err != nil {
		return nil
	}
	f := opts.Filter
	f.Kind, f.Database, f.Name = receipt.KindServiceMasterKey, "", ""
	for _, d := range dests {
		var cands []Copy
		if _, err := walkHost(ctx, d, f, junkWindow, func(g *group) error {
			cands = append(cands, g.Copies...)
			return nil
		}); err != nil {
			r.Log.WarnContext(ctx, "the service master key's copies could not be listed for their inventory", "destination", d.Config.Name, "err", err.Error())
			continue
		}
		sortNewestFirst(cands)
		for _, c := range cands {
			if j := r.judge(ctx, d, c); j.skip == nil && j.err == nil && j.sr != nil {
				if inv := j.sr.rec.Inventory; inv != nil {
					r.Log.InfoContext(ctx, "the TDE certificates to drill include those of the newest service master key copy's inventory", "destination", d.Config.Name, "location", c.Location, "run_id", j.sr.rec.RunID)
					return inv
				}
				break
			}
		}
	}
	r.Log.WarnContext(ctx, "no service master key copy records an inventory: only the certificates archived are drilled")
	return nil
}

// archivedCertificates lists the certificates archived in the filter's
// database at the destinations restore reads (by name, decoded from their
// folders, sorted, each once).
func (r *Runner) archivedCertificates(ctx context.Context, opts RestoreOptions) ([]string, error) {
	dests, err := r.selectDestinations(opts.Destination)
	if err != nil {
		return nil, err
	}
	seen := map[string]string{}
	var errs []error
	for _, d := range dests {
		_, err := walkHost(ctx, d, opts.Filter, 1, func(g *group) error {
			if name, ok := unSafeName(g.Item); ok && name != "" {
				seen[strings.ToLower(name)] = name
			}
			return nil
		})
		if err != nil {
			errs = append(errs, listError(d, err))
		}
	}
	if len(seen) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	names := make([]string, 0, len(seen))
	for _, n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

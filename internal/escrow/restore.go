package escrow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
)

// RestoreSQL is what restore --apply and drill need of SQL Server
// (implemented by *sqlserver.Client, which is a HierarchyRestoreSQL too:
// a database master key or a certificate needs both).
type RestoreSQL interface {
	Info(ctx context.Context) (sqlserver.Info, error)
	RestoreServiceMasterKey(ctx context.Context, serverPath string, password secret.Value, force bool) error
	Close() error
}

// RestoreOptions choose a copy and what to do with it.
type RestoreOptions struct {
	// Destination: fetch from this one only; "" = the first destination, in
	// configuration order, whose copy verifies.
	Destination string
	// Filter: the host (required) and instance ("" when the host has one),
	// and the key: Kind "" is the service master key; a database master
	// key needs Database, a certificate Database and Name (SelectKind).
	Filter Filter
	// VersionID picks one version; At the newest copy stored at or before
	// it; neither: the newest copy.
	VersionID string
	At        *time.Time
	// Out: write the verified copy there, create-only, owner-only.
	Out string
	// PasswordOut: write the copy's opened sealed password there,
	// create-only, owner-only (for a RESTORE run by hand).
	PasswordOut string
	// Apply: run RESTORE SERVICE MASTER KEY with the copy on the server
	// ConnectRestore opens; Force adds FORCE and needs ConfirmForce to be
	// that server's name.
	Apply        bool
	Force        bool
	ConfirmForce string
	// ServerDirectory is where the server reads the key file (as it sees
	// it), LocalDirectory the same folder as this host sees it ("" = the
	// same path).
	ServerDirectory, LocalDirectory string
	// Drill: the server is a scratch server (drill); the copy's own server
	// is refused.
	Drill bool
	// tdeOnly: restore only a certificate that protects a TDE database
	// (DrillTDE); another one ends with errNotTDE before anything is
	// written or applied.
	tdeOnly bool
}

// Restore fetches a copy, proves it against its receipt and the service's
// checksum, writes it to Out and, with Apply, restores it into SQL Server.
// The returned receipt describes the copy and where it was proven; it is
// returned even when err is not nil.
func (r *Runner) Restore(ctx context.Context, opts RestoreOptions) (*receipt.Receipt, error) {
	rec := r.newReceipt()
	rec.Restore = &receipt.Restore{Out: opts.Out, Force: opts.Force, Drill: opts.Drill}
	r.warnUnauthenticated(ctx, false)
	runErr, destErr := r.restore(ctx, rec, opts)
	return r.finish(rec, runErr, destErr)
}

func (r *Runner) restore(ctx context.Context, rec *receipt.Receipt, opts RestoreOptions) (runErr, destErr error) {
	// Restore takes only copies of the chosen kind: the walker yields the
	// hierarchy's items under the same host and instance, and a newer
	// certificate copy must never be restored as the service master key.
	kind, err := SelectKind(opts.Filter.Kind, opts.Filter.Database, opts.Filter.Name)
	if err != nil {
		return err, nil
	}
	opts.Filter.Kind = kind
	rec.Kind = kind
	rec.Item = askedItem(opts.Filter) // until a copy says what it holds
	if err := checkRestoreOptions(opts); err != nil {
		return err, nil
	}
	dests, err := r.selectDestinations(opts.Destination)
	if err != nil {
		return err, nil
	}
	c, cc, destErr, err := r.fetchVerified(ctx, rec, dests, opts)
	if err != nil || cc == nil {
		return err, destErr
	}
	rec.Host, rec.Instance, rec.Kind = c.Host, c.Instance, c.Kind
	rec.File = &receipt.File{Name: c.Name, Bytes: int64(len(cc.data)), SHA256: cc.Checksum.Local}
	if cc.rec != nil && cc.rec.Host != "" {
		rec.Host, rec.Instance, rec.MachineName = cc.rec.Host, cc.rec.Instance, cc.rec.MachineName
	}
	rec.Item = nil
	if cc.rec != nil && cc.rec.Item != nil {
		it := *cc.rec.Item
		rec.Item = &it
	}
	if cc.privateKey != nil && cc.rec != nil && cc.rec.File != nil && cc.rec.File.PrivateKey != nil {
		pk := *cc.rec.File.PrivateKey
		rec.File.PrivateKey = &pk
	}
	if opts.tdeOnly && (rec.Item == nil || len(rec.Item.TDE) == 0) {
		return errNotTDE, nil
	}
	// A copy that verified at a later destination is what counts: the
	// earlier ones' failures are reported, not fatal.
	if destErr != nil {
		r.Log.WarnContext(ctx, "a copy at an earlier destination did not verify; a later one did", "err", destErr.Error())
	}
	if opts.Out != "" {
		if err := r.writeOut(ctx, rec, cc, opts); err != nil {
			return err, nil
		}
	}
	if opts.PasswordOut != "" {
		pw, sealedMode, err := r.openSealed(ctx, c, cc)
		if err != nil {
			return err, nil
		}
		if !sealedMode {
			return exitcode.Wrap(exitcode.Usage, fmt.Errorf("--password-out: the password of %s is not sealed (it is the static backup password the copy was made with): drop --password-out", c.Location)), nil
		}
		if err := writeCreateOnly(opts.PasswordOut, []byte(pw.Reveal())); err != nil {
			return err, nil
		}
		r.Log.InfoContext(ctx, "wrote the opened sealed password, owner-only", "path", opts.PasswordOut)
	}
	if opts.Apply {
		if err := r.apply(ctx, rec, c, cc, opts); err != nil {
			return err, nil
		}
	}
	return nil, nil
}

func checkRestoreOptions(opts RestoreOptions) error {
	usage := func(msg string) error { return exitcode.Wrap(exitcode.Usage, errors.New(msg)) }
	switch {
	case opts.Filter.Host == "":
		return usage("restore needs the host whose key to fetch: pass --host NAME (keyescrow list shows the hosts)")
	case opts.VersionID != "" && opts.At != nil:
		return usage("--version-id and --at both choose the copy: pass one of them")
	case opts.Force && opts.Filter.Kind == receipt.KindCertificate:
		return usage("--force is RESTORE … FORCE of a master key: a certificate has none; drop --force")
	case opts.Force && !opts.Apply:
		return usage("--force only applies to --apply (RESTORE … FORCE): add --apply, or drop --force")
	case opts.Force && opts.ConfirmForce == "":
		stmt := "RESTORE SERVICE MASTER KEY"
		if opts.Filter.Kind == receipt.KindDatabaseMasterKey {
			stmt = "RESTORE MASTER KEY"
		}
		return usage(stmt + " … FORCE loses every secret the current key protects that the restored key cannot decrypt: to go ahead, pass --confirm-force with the SQL Server's name (@@SERVERNAME)")
	case !opts.Force && opts.ConfirmForce != "":
		return usage("--confirm-force is only used with --apply --force")
	case !opts.Apply && opts.Out == "":
		return usage("restore needs --out FILE (where to write the verified copy) or --apply (restore it into SQL Server), or both")
	case opts.PasswordOut != "" && opts.PasswordOut == opts.Out:
		return usage("--password-out and --out name the same file: choose two new files")
	case opts.Apply && opts.ServerDirectory == "":
		return usage("--apply needs backup.server_directory: the folder SQL Server reads the key file from, as it sees the path")
	}
	for flag, path := range map[string]string{"--out": opts.Out, "--password-out": opts.PasswordOut} {
		if path == "" {
			continue
		}
		if _, err := os.Lstat(path); err == nil {
			return usage(fmt.Sprintf("%s %s exists already: keyescrow never overwrites a key or password file; choose a new name", flag, path))
		}
		if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
			return usage(fmt.Sprintf("%s %s: the folder %s does not exist", flag, path, filepath.Dir(path)))
		}
	}
	return nil
}

// fetchVerified finds the chosen copy at each destination in turn and
// returns the first that verifies. Without --version-id, copies that are
// not genuine (no receipt, a receipt recording another copy, and, when keys
// are pinned, a receipt not signed by one) are passed over, newest first,
// and listed in rec.Restore.Skipped: restore falls back to the newest
// genuine copy and says so. Every destination tried is recorded in rec;
// destErr joins the failures of those that did not verify, err is set when
// none did.
func (r *Runner) fetchVerified(ctx context.Context, rec *receipt.Receipt, dests []Destination, opts RestoreOptions) (c Copy, cc *CheckedCopy, destErr, err error) {
	var errs []error
	var missing []string
	for _, d := range dests {
		cands, err := r.findCopies(ctx, d, opts)
		if err != nil {
			if exitcode.Code(err) == exitcode.Usage {
				return Copy{}, nil, nil, err
			}
			if errors.Is(err, errNoCopy) {
				missing = append(missing, d.Config.Name)
				r.Log.WarnContext(ctx, "no matching copy at this destination", "destination", d.Config.Name, "err", err.Error())
				continue
			}
			errs = append(errs, err)
			rec.Destinations = append(rec.Destinations, receipt.Destination{Name: d.Config.Name, Type: d.Backend.Type(),
				Status: receipt.DestFailed, Error: &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}})
			continue
		}
		c, checked, ok := r.firstGenuine(ctx, rec, d, cands, opts)
		if !ok {
			err := exitcode.Wrap(exitcode.Verify, fmt.Errorf("%s: none of the %d copies of %s%s is genuine (restore.skipped says why for each): pass --version-id to use one explicitly", d.Config.Name, len(cands), restoreScope(opts.Filter), choiceText(opts)))
			errs = append(errs, err)
			rec.Destinations = append(rec.Destinations, receipt.Destination{Name: d.Config.Name, Type: d.Backend.Type(),
				Status: receipt.DestFailed, Error: &receipt.Error{Code: exitcode.Verify, Message: err.Error()}})
			r.Log.ErrorContext(ctx, "no genuine copy at this destination", "destination", d.Config.Name, "copies", len(cands))
			continue
		}
		rd := receipt.Destination{Name: d.Config.Name, Type: d.Backend.Type(), Location: c.Location, VersionID: c.VersionID,
			Retention: checked.Retention, Checksum: checked.Checksum, ReadBack: checked.ReadBack, Status: checked.Status, Error: checked.Error}
		if checked.privateKey != nil && checked.rec != nil {
			if side := privateKeySidecar(checked.rec, d, c); side != nil {
				s := *side
				s.ReadBack = true
				rd.PrivateKey = &s
			}
		}
		rec.Destinations = append(rec.Destinations, rd)
		if checked.Status == receipt.DestVerified {
			rec.Restore.Authenticated, rec.Restore.KeyID = checked.Authenticated, checked.KeyID
			args := []any{"destination", d.Config.Name, "location", c.Location, "version_id", c.VersionID, "stored", c.Time.Format(time.RFC3339), "sha256", checked.Checksum.Local, "run_id", checked.RunID, "receipt_authenticated", checked.Authenticated}
			if n := skippedAt(rec, d.Config.Name); n > 0 {
				r.Log.WarnContext(ctx, fmt.Sprintf("fell back past %d newer copies that are not genuine to the newest genuine copy", n), args...)
			} else {
				r.Log.InfoContext(ctx, "copy verified", args...)
			}
			return c, &checked, errors.Join(errs...), nil
		}
		r.Log.ErrorContext(ctx, "copy refused: it does not verify", "destination", d.Config.Name, "location", c.Location, "version_id", c.VersionID, "err", checked.Error.Message)
		errs = append(errs, checked.err)
	}
	if len(errs) == 0 {
		hint := ""
		if opts.VersionID != "" && opts.Filter.Kind == receipt.KindServiceMasterKey {
			hint = "; the copy of a database master key or certificate needs --kind with --database (and --name)"
		}
		return Copy{}, nil, nil, exitcode.Wrap(exitcode.Usage, noCopyError(fmt.Sprintf("no copy of %s%s at %s: keyescrow list shows what is archived%s", restoreScope(opts.Filter), choiceText(opts), strings.Join(missing, ", "), hint)))
	}
	return Copy{}, nil, errors.Join(errs...), nil
}

// firstGenuine judges the candidates newest first and proves the first
// genuine one (by --version-id: the named copy, whose signature alone may
// fail, loudly). Copies passed over are added to rec.Restore.Skipped. ok is
// false when no candidate is genuine.
func (r *Runner) firstGenuine(ctx context.Context, rec *receipt.Receipt, d Destination, cands []Copy, opts RestoreOptions) (Copy, CheckedCopy, bool) {
	for _, c := range cands {
		j := r.judge(ctx, d, c)
		for _, f := range j.findings {
			r.Log.WarnContext(ctx, f.Message, "destination", d.Config.Name, "reason", f.Reason)
		}
		named := opts.VersionID != ""
		if j.skip != nil && j.err == nil && !(named && j.sigOnly) {
			rec.Restore.Skipped = append(rec.Restore.Skipped, *j.skip)
			r.Log.WarnContext(ctx, "passed over a copy that is not genuine", "destination", d.Config.Name, "location", c.Location, "version_id", c.VersionID, "run_id", j.c.RunID, "reason", j.skip.Reason, "why", j.skip.Message)
			if named {
				return c, r.checkContent(ctx, d, j, r.Clock(), false), true
			}
			continue
		}
		if named && j.sigOnly {
			r.Log.WarnContext(ctx, "--version-id names a copy whose receipt is not authenticated: it is used because it was named, on the strength of its checksums alone", "destination", d.Config.Name, "version_id", c.VersionID, "why", j.skip.Message)
		}
		return c, r.checkContent(ctx, d, j, r.Clock(), named), true
	}
	return Copy{}, CheckedCopy{}, false
}

func skippedAt(rec *receipt.Receipt, dest string) int {
	n := 0
	for _, s := range rec.Restore.Skipped {
		if s.Destination == dest {
			n++
		}
	}
	return n
}

var errNoCopy = errors.New("no matching copy")

// noCopyError is restore's failure when no destination holds a copy of
// what was asked for; it is errNoCopy.
type noCopyError string

func (e noCopyError) Error() string        { return string(e) }
func (e noCopyError) Is(target error) bool { return target == errNoCopy }

func choiceText(opts RestoreOptions) string {
	switch {
	case opts.VersionID != "":
		return fmt.Sprintf(" with version id %q", opts.VersionID)
	case opts.At != nil:
		return " stored at or before " + opts.At.UTC().Format(time.RFC3339)
	}
	return ""
}

// findCopies returns the candidates for the chosen copy of the
// host/instance at one destination, newest first: the copy with the
// version id, else every copy stored at or before At (or every copy).
func (r *Runner) findCopies(ctx context.Context, d Destination, opts RestoreOptions) ([]Copy, error) {
	var found []Copy
	instances := map[string]bool{}
	_, err := walkHost(ctx, d, opts.Filter, 0, func(g *group) error {
		instances[g.Instance] = true
		for _, c := range g.Copies {
			switch {
			case opts.VersionID != "":
				if c.VersionID == opts.VersionID {
					found = append(found, c)
				}
			case opts.At != nil && c.Time.After(*opts.At):
			default:
				found = append(found, c)
			}
		}
		return nil
	})
	if err != nil {
		return nil, listError(d, err)
	}
	if opts.Filter.Instance == "" && len(instances) > 1 {
		names := make([]string, 0, len(instances))
		for n := range instances {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("host %s has copies of several instances at %s (%s): pass --instance NAME", opts.Filter.Host, d.Config.Name, strings.Join(names, ", ")))
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("%s: %w of %s%s", d.Config.Name, errNoCopy, restoreScope(opts.Filter), choiceText(opts))
	case opts.VersionID != "" && len(found) > 1:
		keys := make([]string, len(found))
		for i, c := range found {
			keys[i] = c.Location
		}
		return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("version id %q matches several copies at %s (%s): pass --instance or --destination to choose", opts.VersionID, d.Config.Name, strings.Join(keys, ", ")))
	}
	return found, nil
}

// apply restores the verified copy into SQL Server: the file is staged,
// create-only and owner-only, in the folder the server reads, and removed
// afterwards whatever the outcome.
func (r *Runner) apply(ctx context.Context, rec *receipt.Receipt, c Copy, cc *CheckedCopy, opts RestoreOptions) error {
	if r.ConnectRestore == nil {
		return exitcode.Wrap(exitcode.Internal, errors.New("no SQL Server connection is configured for --apply"))
	}
	pw := r.Password
	if spw, sealedMode, err := r.openSealed(ctx, c, cc); err != nil {
		return err
	} else if sealedMode {
		pw = spw
	} else if pw.Empty() {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("the copy %s was not made with a sealed password: set the backup password it was made with (backup.password_env or backup.password_file)", c.Location))
	}
	localDir := opts.LocalDirectory
	if localDir == "" {
		localDir = opts.ServerDirectory
	}
	key := "backup.local_directory"
	if opts.Drill {
		key = "drill.local_directory"
	}
	if err := checkPrivateDir(localDir, key); err != nil {
		return err
	}
	if fi, err := os.Stat(localDir); err != nil || !fi.IsDir() {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("%s %s does not exist on this host: create it (readable by the SQL Server service account, closed to others)", key, localDir))
	}
	db, err := r.ConnectRestore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	info, err := db.Info(ctx)
	if err != nil {
		return err
	}
	// The copy's machine: its receipt's machine_name when the host key named
	// it otherwise (a cluster's virtual name), else its host.
	sameMachine := strings.EqualFold(info.MachineName, rec.Host) || (rec.MachineName != "" && strings.EqualFold(info.MachineName, rec.MachineName))
	if opts.Drill && sameMachine && strings.EqualFold(info.InstanceName, rec.Instance) {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("the drill's scratch server reports itself as host %s instance %s: the very server this copy came from. A drill never restores into production: point drill.dsn_env/dsn_file at a scratch server", info.MachineName, info.InstanceName))
	}
	if opts.Force && !strings.EqualFold(opts.ConfirmForce, info.ServerName) {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("--confirm-force %q does not name the server connected to (%s): FORCE was not run", opts.ConfirmForce, info.ServerName))
	}
	if !opts.Drill && !sameMachine {
		r.Log.WarnContext(ctx, "restoring another host's key", "copy_host", rec.Host, "server", info.ServerName)
	}
	if c.Kind != receipt.KindServiceMasterKey {
		hdb, ok := db.(HierarchyRestoreSQL)
		if !ok {
			return exitcode.Wrap(exitcode.Internal, fmt.Errorf("this SQL Server connection cannot restore a %s", c.Kind))
		}
		tg := restoreTarget{hdb: hdb, info: info}
		if c.Kind == receipt.KindDatabaseMasterKey {
			return r.applyDatabaseMasterKey(ctx, rec, c, cc, opts, tg, pw, localDir)
		}
		return r.applyCertificate(ctx, rec, c, cc, opts, tg, pw, localDir)
	}
	paths, remove, err := r.stage(ctx, localDir, opts.ServerDirectory, stageFile{"restore-" + r.RunID[:8] + "-" + c.Name, cc.data})
	if err != nil {
		return err
	}
	defer remove()
	r.Log.InfoContext(ctx, "restoring the service master key", "server", info.ServerName, "force", opts.Force, "drill", opts.Drill)
	if err := db.RestoreServiceMasterKey(ctx, paths[0], pw, opts.Force); err != nil {
		return err
	}
	rec.Restore.Applied, rec.Restore.Server = true, info.ServerName
	r.Log.InfoContext(ctx, "the service master key is restored", "server", info.ServerName)
	return nil
}

// writeCreateOnly writes data to a new file readable by its owner only; it
// never replaces a file, and leaves nothing behind when it fails.
func writeCreateOnly(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return exitcode.Wrap(exitcode.Usage, fmt.Errorf("%s exists already: keyescrow never overwrites a key file; choose a new name", path))
		}
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("cannot create %s: %w", path, err))
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return exitcode.Wrap(exitcode.Internal, fmt.Errorf("writing %s: %w", path, err))
	}
	return nil
}

package escrow

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/sign"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// SQL is what a run needs of SQL Server (implemented by *sqlserver.Client).
type SQL interface {
	Info(ctx context.Context) (sqlserver.Info, error)
	BackupServiceMasterKey(ctx context.Context, serverPath string, password secret.Value) error
	// ReadServerFile reads a file on the server's disk over the connection
	// (backup.remote), at most max bytes.
	ReadServerFile(ctx context.Context, serverPath string, max int64) ([]byte, error)
	// RemoveServerFile removes a file on the server's disk and proves it gone.
	RemoveServerFile(ctx context.Context, serverPath string) error
	Close() error
}

// Destination is a configured destination with its opened backend.
type Destination struct {
	Config  config.Destination
	Backend storage.Backend
}

// Runner runs backups and archives. Every dependency is injected.
type Runner struct {
	Config       *config.Config
	Destinations []Destination
	Log          *slog.Logger
	Clock        func() time.Time
	Version      string
	RunID        string
	// Lock takes the host lock; the returned func releases it.
	Lock func() (release func(), err error)
	// ConnectSQL opens the SQL Server session (backup only).
	ConnectSQL func(ctx context.Context) (SQL, error)
	// Password encrypts the key export (backup only, unless
	// backup.seal_to makes a fresh one per run), and opens it for restore
	// --apply and drill when the copy's password is not sealed.
	Password secret.Value
	// Identities open sealed passwords (restore, drill).
	Identities []age.Identity
	// Hostname names this host for archive (backup uses Host or the
	// server's).
	Hostname string
	// Host, when set (the configuration's host key), names backup's copies
	// instead of SQL Server's MachineName.
	Host string
	// OnIdentity is told, once SQL Server has said who it is, the host name
	// backup files its copies under (backup only; may be nil).
	OnIdentity func(ctx context.Context, info sqlserver.Info, host string)
	// Signer signs every stored receipt (signing.key_file); nil: receipts
	// are stored unsigned.
	Signer ed25519.PrivateKey
	// Trust are the pinned public keys (trust.public_keys) a copy's receipt
	// must be signed by to count; empty: receipts are not authenticated.
	Trust sign.Trust
	// KeyPassword returns the password configured for a database master
	// key (certificate "") or a certificate's private key
	// (hierarchy.passwords), empty when none is; nil: none is configured.
	KeyPassword func(database, certificate string) (secret.Value, error)
	// ConnectRestore opens the SQL Server session restore --apply (the
	// production server) or drill (the scratch server) restores into.
	ConnectRestore func(ctx context.Context) (RestoreSQL, error)
}

func (r *Runner) newReceipt() *receipt.Receipt {
	waived := slices.Clone(r.Config.Waive)
	slices.Sort(waived)
	return &receipt.Receipt{
		Status:    receipt.StatusFailed,
		Tool:      "keyescrow",
		Version:   r.Version,
		RunID:     r.RunID,
		Kind:      receipt.KindServiceMasterKey,
		StartedAt: r.Clock().UTC(),
		Waived:    waived,
	}
}

// Backup runs BACKUP SERVICE MASTER KEY and archives the file to every
// destination. The receipt is returned even when err is not nil.
func (r *Runner) Backup(ctx context.Context) (*receipt.Receipt, error) {
	rec := r.newReceipt()
	runErr, destErr, hierErr := r.backup(ctx, rec)
	return r.finishBackup(rec, runErr, destErr, hierErr)
}

// backup returns the run's own failure (SQL Server, lock, key file) apart
// from the destinations' failures (refused, transfer, verification), so the
// receipt can show both and the exit code is the largest of them; hierErr
// is the hierarchy's (the inventory, or the items that failed).
func (r *Runner) backup(ctx context.Context, rec *receipt.Receipt) (runErr, destErr, hierErr error) {
	targets, refused, release, err := r.start(ctx, rec)
	if err != nil || release == nil {
		return err, refused, nil
	}
	defer release()

	db, err := r.ConnectSQL(ctx)
	if err != nil {
		return err, refused, nil
	}
	defer db.Close()
	info, err := db.Info(ctx)
	if err != nil {
		return err, refused, nil
	}
	rec.Host, rec.Instance = info.MachineName, info.InstanceName
	r.Log.InfoContext(ctx, "connected to SQL Server", "server", info.ServerName, "version", info.ProductVersion, "edition", info.Edition)
	source := "SQL Server's MachineName"
	if r.Host != "" {
		rec.Host, source = r.Host, "the host key of the configuration"
		if !strings.EqualFold(info.MachineName, r.Host) {
			rec.MachineName = info.MachineName
		}
	}
	r.Log.InfoContext(ctx, "host identity", "host", rec.Host, "source", source, "instance", rec.Instance, "machine_name", info.MachineName)
	if r.OnIdentity != nil {
		r.OnIdentity(ctx, info, rec.Host)
	}
	// The inventory is read first, so the service master key's stored
	// receipt records it: verify then knows, from a signed record, which
	// items must have a proven copy.
	hier := r.takeInventory(ctx, rec, db)
	if r.Config.Backup.Remote {
		runErr, destErr = r.backupRemote(ctx, rec, db, info, targets, refused)
	} else {
		runErr, destErr = r.backupLocal(ctx, rec, db, info, targets, refused)
	}
	hierErr = r.backupHierarchy(ctx, rec, db, info, hier, targets, refused)
	return runErr, destErr, hierErr
}

// backupLocal is the service master key's export, archive and clean-up
// when SQL Server writes to a folder this host reads.
func (r *Runner) backupLocal(ctx context.Context, rec *receipt.Receipt, db SQL, info sqlserver.Info, targets []target, refused error) (runErr, destErr error) {
	b := r.Config.Backup
	localDir, localKey := b.LocalDirectory, "backup.local_directory"
	if localDir == "" {
		localDir, localKey = b.ServerDirectory, "backup.server_directory"
	}
	if b.LocalDirectory == "" && runtime.GOOS != "windows" && isWindowsPath(b.ServerDirectory) {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("backup.server_directory %s is a Windows path, which this host cannot open: set backup.local_directory to where this host sees that folder (a mounted share)", b.ServerDirectory)), refused
	}
	if err := checkPrivateDir(localDir, localKey); err != nil {
		return err, refused
	}
	name := backupFileName(info.ServerName, r.Clock(), r.RunID)
	serverPath, localPath := serverJoin(b.ServerDirectory, name), filepath.Join(localDir, name)
	rec.File = &receipt.File{Name: name}

	pw, err := r.backupPassword(rec)
	if err != nil {
		return err, refused
	}
	r.Log.InfoContext(ctx, "exporting the service master key", "server_path", serverPath, "password", rec.Password.Mode)
	if err := db.BackupServiceMasterKey(ctx, serverPath, pw); err != nil {
		if _, statErr := os.Lstat(localPath); statErr == nil {
			restrict(localPath)
			r.Log.WarnContext(ctx, "the backup failed but a key file exists; it is kept, owner-only", "path", localPath)
		}
		return err, refused
	}
	restrict(localPath)
	kf, err := readKeyFile(localPath)
	if err != nil {
		if os.IsNotExist(err) {
			return exitcode.Wrap(exitcode.SQLServer, fmt.Errorf("SQL Server reported the backup done, but the file is not at %s: when this host sees server_directory under another path, set backup.local_directory", localPath)), refused
		}
		return exitcode.Wrap(exitcode.SQLServer, fmt.Errorf("reading the key file SQL Server wrote: %w", err)), refused
	}
	if err := r.seal(kf, name, pw); err != nil {
		return err, refused
	}
	key := func(prefix string) string { return objectKey(prefix, rec.Host, rec.Instance, rec.Kind, name) }
	if err := r.quorum(ctx, rec, errors.Join(r.archive(ctx, rec, kf, targets, key), refused)); err != nil {
		r.Log.WarnContext(ctx, "not every destination is verified; the local key file is kept, owner-only", "path", localPath)
		return nil, err
	}
	if !b.KeepLocal {
		if err := os.Remove(localPath); err != nil {
			r.Log.WarnContext(ctx, "every destination is verified but the local key file could not be removed", "path", localPath, "err", err)
		} else {
			r.Log.InfoContext(ctx, "removed the local key file: every destination is verified", "path", localPath)
		}
		r.warnLeftovers(ctx, localDir, name)
	}
	return nil, nil
}

// Archive archives an existing key file without SQL Server. The file is
// never removed: it belongs to whoever made it.
func (r *Runner) Archive(ctx context.Context, file, instance string) (*receipt.Receipt, error) {
	rec := r.newReceipt()
	rec.Host, rec.Instance = r.Hostname, instance
	runErr, destErr := func() (error, error) {
		kf, err := readKeyFile(file)
		if err != nil {
			return exitcode.Wrap(exitcode.Usage, fmt.Errorf("cannot archive %s: %w", file, err)), nil
		}
		name := archiveFileName(file, r.Clock(), r.RunID)
		rec.File = &receipt.File{Name: name}
		targets, refused, release, err := r.start(ctx, rec)
		if err != nil || release == nil {
			return err, refused
		}
		defer release()
		key := func(prefix string) string { return objectKey(prefix, rec.Host, rec.Instance, rec.Kind, name) }
		return nil, r.quorum(ctx, rec, errors.Join(r.archive(ctx, rec, kf, targets, key), refused))
	}()
	return r.finish(rec, runErr, destErr)
}

// start preflights every destination and, when any may be written, takes
// the host lock. release is nil when no destination may be written (refused
// says why) or when the lock was not taken (err says why).
func (r *Runner) start(ctx context.Context, rec *receipt.Receipt) (targets []target, refused error, release func(), err error) {
	targets, refused = r.preflight(ctx, rec)
	if len(targets) == 0 {
		return nil, refused, nil, nil
	}
	release, err = r.Lock()
	if err != nil {
		return nil, refused, nil, err
	}
	return targets, refused, release, nil
}

// archive copies kf (with its private key file and sealed password, when
// it has them) to every target concurrently, proves each copy, then stores
// the receipt beside each proven copy. rec is the receipt of this copy
// alone: the run's for the service master key, an item's own for a
// database master key or a certificate.
func (r *Runner) archive(ctx context.Context, rec *receipt.Receipt, kf *keyFile, targets []target, key func(prefix string) string) error {
	rec.File.Bytes = int64(len(kf.data))
	rec.File.SHA256 = fmt.Sprintf("%x", kf.sha256)
	if pk := kf.privateKey; pk != nil {
		rec.File.PrivateKey = &receipt.File{Name: privateKeyKey(rec.File.Name), Bytes: int64(len(pk.data)), SHA256: fmt.Sprintf("%x", pk.sha256)}
	}
	results := make([]receipt.Destination, len(targets))
	errs := make([]error, len(targets))
	keys := make([]string, len(targets))
	now := r.Clock()
	var wg sync.WaitGroup
	for i := range targets {
		// The lock runs the configured days from the write, not from preflight.
		targets[i].retention = targets[i].lockUntil(now)
		t := targets[i]
		keys[i] = key(r.destConfig(t.name).Prefix)
		wg.Go(func() {
			results[i], errs[i] = copyAndProve(ctx, t, keys[i], kf)
			if errs[i] == nil && kf.privateKey != nil {
				results[i], errs[i] = provePrivateKey(ctx, t, keys[i], kf.privateKey, results[i])
			}
			if errs[i] == nil && kf.sealed != nil {
				results[i], errs[i] = proveSealed(ctx, t, keys[i], kf.sealed, results[i])
			}
			r.logDestination(ctx, results[i])
		})
	}
	wg.Wait()
	rec.Destinations = append(rec.Destinations, results...)
	copyErr := errors.Join(errs...)

	// Store the receipt beside every proven copy, locked like it, also when
	// another destination failed. It states only what is proven now (each
	// destination's copy verified or not) and never how the run ends: a
	// receipt store may still fail, and the run's outcome is its exit code.
	doc, err := r.storedReceipt(rec)
	if err != nil {
		return errors.Join(copyErr, err)
	}
	receiptErrs := make([]error, len(targets))
	for i, t := range targets {
		if results[i].Status == receipt.DestVerified {
			wg.Go(func() { receiptErrs[i] = storeReceipt(ctx, t, receiptKey(keys[i]), doc) })
		}
	}
	wg.Wait()
	for i, err := range receiptErrs {
		if err != nil {
			d := &rec.Destinations[len(rec.Destinations)-len(targets)+i]
			d.Status = receipt.DestFailed
			d.Error = &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}
		}
	}
	return errors.Join(copyErr, errors.Join(receiptErrs...))
}

// storedReceipt renders the receipt stored beside each copy, signed when a
// signing key is configured.
func (r *Runner) storedReceipt(rec *receipt.Receipt) ([]byte, error) {
	payload, err := rec.Stored(r.Clock()).JSON()
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Internal, fmt.Errorf("rendering the stored receipt: %w", err))
	}
	if r.Signer == nil {
		return append(payload, '\n'), nil
	}
	doc, err := sign.Seal(r.Signer, payload)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Internal, fmt.Errorf("signing the stored receipt: %w", err))
	}
	return doc, nil
}

func storeReceipt(ctx context.Context, t target, key string, doc []byte) error {
	kf := newKeyFile("", doc)
	_, err := t.backend.Put(ctx, key, doc, storage.PutOptions{
		SHA256: kf.sha256[:], MD5: kf.md5[:], Retention: t.retention, LegalHold: t.legalHold, ContentType: "application/json",
	})
	if err != nil {
		return transferError("store the receipt at", t, key, fmt.Errorf("the key copy is verified, but %w", err))
	}
	return nil
}

func (r *Runner) destConfig(name string) config.Destination {
	for _, d := range r.Destinations {
		if d.Config.Name == name {
			return d.Config
		}
	}
	return config.Destination{}
}

func (r *Runner) logDestination(ctx context.Context, d receipt.Destination) {
	if d.Status == receipt.DestVerified {
		r.Log.InfoContext(ctx, "destination verified", "destination", d.Name, "location", d.Location, "version_id", d.VersionID, "sha256", d.Checksum.Remote, "read_back", d.ReadBack)
		return
	}
	r.Log.ErrorContext(ctx, "destination failed", "destination", d.Name, "location", d.Location, "err", d.Error.Message)
}

// finish stamps the receipt with its outcome: runErr is the run's own
// failure, destErr the destinations'; the exit code is the largest.
func (r *Runner) finish(rec *receipt.Receipt, runErr, destErr error) (*receipt.Receipt, error) {
	interrupted := func(err error) error {
		if err != nil && errors.Is(err, context.Canceled) {
			return exitcode.Wrap(exitcode.Interrupted, fmt.Errorf("interrupted: %w", err))
		}
		return err
	}
	runErr, destErr = interrupted(runErr), interrupted(destErr)
	err := errors.Join(runErr, destErr)
	rec.FinishedAt = r.Clock().UTC()
	rec.ExitCode = exitcode.Code(err)
	order := map[string]int{}
	for i, d := range r.Destinations {
		order[d.Config.Name] = i
	}
	slices.SortStableFunc(rec.Destinations, func(a, b receipt.Destination) int { return order[a.Name] - order[b.Name] })
	if err == nil {
		rec.Status = receipt.StatusOK
		return rec, nil
	}
	rec.Status = receipt.StatusFailed
	switch {
	case runErr != nil:
		rec.Error = &receipt.Error{Code: exitcode.Code(runErr), Message: runErr.Error()}
	case !destinationsExplain(rec):
		rec.Error = &receipt.Error{Code: rec.ExitCode, Message: destErr.Error()}
	}
	return rec, err
}

// finishBackup is finish for a backup run: the service master key's
// outcome, then the hierarchy's. The exit code is the largest of all;
// rec.Error explains a failure of the hierarchy alone, and is extended
// when the service master key failed too.
func (r *Runner) finishBackup(rec *receipt.Receipt, runErr, destErr, hierErr error) (*receipt.Receipt, error) {
	rec, err := r.finish(rec, runErr, destErr)
	if hierErr == nil {
		return rec, err
	}
	if errors.Is(hierErr, context.Canceled) {
		hierErr = exitcode.Wrap(exitcode.Interrupted, fmt.Errorf("interrupted: %w", hierErr))
	}
	all := errors.Join(err, hierErr)
	rec.Status = receipt.StatusFailed
	rec.ExitCode = exitcode.Code(all)
	if rec.Error == nil {
		rec.Error = &receipt.Error{Code: exitcode.Code(hierErr), Message: hierErr.Error()}
	} else {
		rec.Error.Code = max(rec.Error.Code, exitcode.Code(hierErr))
		rec.Error.Message += "; and " + hierErr.Error()
	}
	return rec, all
}

// destinationsExplain reports whether the failure is fully described by the
// destinations' own errors.
func destinationsExplain(rec *receipt.Receipt) bool {
	if len(rec.Destinations) == 0 {
		return false
	}
	worst := 0
	for _, d := range rec.Destinations {
		if d.Error != nil && d.Error.Code > worst {
			worst = d.Error.Code
		}
	}
	return worst == rec.ExitCode
}

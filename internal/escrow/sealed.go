package escrow

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/sealed"
	"github.com/keyescrow/keyescrow/internal/secret"
)

// sealedSuffix ends the key of the sealed password stored beside a copy.
const sealedSuffix = ".password.age"

// sealedKey is the key of the sealed password stored beside a copy.
func sealedKey(key string) string { return key + sealedSuffix }

// sealing reports whether backups use a fresh sealed password (seal_to).
func (r *Runner) sealing() bool { return len(r.Config.Backup.SealTo) > 0 }

// backupPassword is the password for this run's export: the configured one,
// or with seal_to a fresh random one that exists only in memory until it
// is sealed.
func (r *Runner) backupPassword(rec *receipt.Receipt) (secret.Value, error) {
	if !r.sealing() {
		rec.Password = &receipt.Password{Mode: receipt.PasswordStatic}
		return r.Password, nil
	}
	rec.Password = &receipt.Password{Mode: receipt.PasswordSealed, Recipients: r.Config.Backup.SealTo}
	pw, err := sealed.NewPassword()
	if err != nil {
		return secret.Value{}, exitcode.Wrap(exitcode.Internal, err)
	}
	return pw, nil
}

// seal attaches to kf its password sealed to the configured recipients, so
// that every destination stores and proves it beside the copy.
func (r *Runner) seal(kf *keyFile, name string, pw secret.Value) error {
	if !r.sealing() {
		return nil
	}
	rcpts, err := sealed.ParseRecipients(r.Config.Backup.SealTo)
	if err != nil {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("backup.seal_to: %w", err))
	}
	blob, err := sealed.Seal(pw, sealed.Copy{Name: name, Bytes: int64(len(kf.data)), SHA256: hex.EncodeToString(kf.sha256[:])}, rcpts)
	if err != nil {
		return exitcode.Wrap(exitcode.Internal, err)
	}
	kf.sealed = newKeyFile("", blob)
	return nil
}

// proveSealed stores the sealed password beside the proven copy at key and
// proves it the same way (create-only, locked, checksum and bytes read
// back). The copy counts only when both are proven.
func proveSealed(ctx context.Context, t target, key string, sf *keyFile, d receipt.Destination) (receipt.Destination, error) {
	sd, err := copyAndProve(ctx, t, sealedKey(key), sf)
	d.SealedPassword = &receipt.Sidecar{
		Location: sd.Location, VersionID: sd.VersionID, SHA256: sd.Checksum.Local,
		Bytes: int64(len(sf.data)), Retention: sd.Retention, ReadBack: sd.ReadBack,
	}
	if err != nil {
		return fail(d, exitcode.Wrap(exitcode.Code(err), fmt.Errorf("the key copy is verified, but its sealed password is not: %w", err)))
	}
	return d, nil
}

// provePrivateKey stores a certificate's .pvk beside its proven .cer at
// key and proves it the same way (create-only, locked, checksum and bytes
// read back). The .cer and the .pvk travel together: the copy counts only
// when both are proven.
func provePrivateKey(ctx context.Context, t target, key string, pk *keyFile, d receipt.Destination) (receipt.Destination, error) {
	pd, err := copyAndProve(ctx, t, privateKeyKey(key), pk)
	d.PrivateKey = &receipt.Sidecar{
		Location: pd.Location, VersionID: pd.VersionID, SHA256: pd.Checksum.Local,
		Bytes: int64(len(pk.data)), Retention: pd.Retention, ReadBack: pd.ReadBack,
	}
	if err != nil {
		return fail(d, exitcode.Wrap(exitcode.Code(err), fmt.Errorf("the certificate copy is verified, but its private key file is not: %w", err)))
	}
	return d, nil
}

// openSealed fetches the sealed password stored beside a verified copy,
// proves it against the copy's receipt and opens it with r.Identities.
// sealedMode is false when the copy's password is not sealed (a static
// password or an archive of a file made elsewhere).
func (r *Runner) openSealed(ctx context.Context, c Copy, cc *CheckedCopy) (pw secret.Value, sealedMode bool, err error) {
	rec := cc.rec
	if rec == nil || rec.Password == nil || rec.Password.Mode != receipt.PasswordSealed {
		return secret.Value{}, false, nil
	}
	side := sealedEntry(rec, c.Destination, "")
	if side == nil {
		return secret.Value{}, true, exitcode.Wrap(exitcode.Verify, fmt.Errorf("%s: the receipt of %s says its password is sealed but names no sealed password at this destination", c.Destination, c.Location))
	}
	if len(r.Identities) == 0 {
		return secret.Value{}, true, exitcode.Wrap(exitcode.Usage, fmt.Errorf("the password of %s is sealed to %s: pass --identity FILE (or set KEYESCROW_IDENTITY_FILE) with the age identity of one of them", c.Location, strings.Join(rec.Password.Recipients, ", ")))
	}
	dests, err := r.selectDestinations(c.Destination)
	if err != nil {
		return secret.Value{}, true, exitcode.Wrap(exitcode.Internal, err)
	}
	dest := dests[0]
	t := target{name: dest.Config.Name, backend: dest.Backend}
	blob, side, err := fetchSealed(ctx, dest, c, rec)
	if err != nil {
		return secret.Value{}, true, err
	}
	pw, _, err = sealed.Open(blob, sealed.Copy{Name: c.Name, Bytes: cc.Bytes, SHA256: cc.Checksum.Local}, r.Identities)
	switch {
	case errors.Is(err, sealed.ErrNoIdentity):
		return secret.Value{}, true, exitcode.Wrap(exitcode.Usage, fmt.Errorf("%w: the password of %s is sealed to %s; pass the identity of one of them", err, c.Location, strings.Join(rec.Password.Recipients, ", ")))
	case err != nil:
		return secret.Value{}, true, verifyError(t, fmt.Sprintf("the sealed password of %s: %v", c.Location, err))
	}
	r.Log.InfoContext(ctx, "opened the sealed password", "destination", c.Destination, "location", side.Location, "version_id", side.VersionID)
	return pw, true, nil
}

// quorum decides a write run whose destinations did not all verify: with
// `require` below the number of destinations, the run succeeds when at
// least that many hold a proven copy and every `required` one does; the
// failures stay in the receipt and the log. destErr is returned unchanged
// when the quorum is not met (or not configured).
func (r *Runner) quorum(ctx context.Context, rec *receipt.Receipt, destErr error) error {
	need := r.Config.Require
	if need == 0 {
		return destErr
	}
	q := &receipt.Quorum{Require: need, Destinations: len(r.Destinations)}
	verified := map[string]bool{}
	for _, d := range rec.Destinations {
		if d.Status == receipt.DestVerified {
			verified[d.Name] = true
		}
	}
	q.Verified = len(verified)
	q.Met = q.Verified >= need
	var missingRequired []string
	for _, d := range r.Destinations {
		if d.Config.Required && !verified[d.Config.Name] {
			missingRequired = append(missingRequired, d.Config.Name)
			q.Met = false
		}
	}
	rec.Quorum = q
	if destErr == nil {
		return nil
	}
	if !q.Met {
		if len(missingRequired) > 0 {
			r.Log.ErrorContext(ctx, "a required destination holds no proven copy", "destinations", strings.Join(missingRequired, ", "))
		}
		return destErr
	}
	r.Log.WarnContext(ctx, "quorum met: the run succeeds without every destination", "verified", q.Verified, "require", need, "destinations", q.Destinations, "failures", destErr.Error())
	return nil
}

// sealedEntry is the sealed password a receipt records for a copy: the
// entry stored at location when one is, else the one of the destination
// named name (the same destination under its configured name).
func sealedEntry(rec *receipt.Receipt, name, location string) *receipt.Sidecar {
	return sidecarEntry(rec, name, location, func(d receipt.Destination) *receipt.Sidecar { return d.SealedPassword })
}

// fetchSealed reads the sealed password stored beside a copy and proves it
// is the one its receipt records (by version and SHA-256): without it a
// sealed copy cannot be opened, so a missing or damaged one fails the copy
// (exit 6). Copies made with a static password return nil, nil, nil.
// verify and restore call it for every sealed copy they prove; restore
// --apply, drill and --password-out open what it returns.
func fetchSealed(ctx context.Context, d Destination, c Copy, rec *receipt.Receipt) ([]byte, *receipt.Sidecar, error) {
	if rec == nil || rec.Password == nil || rec.Password.Mode != receipt.PasswordSealed {
		return nil, nil, nil
	}
	t := target{name: d.Config.Name, backend: d.Backend}
	key := sealedKey(c.Key)
	side := sealedEntry(rec, d.Config.Name, d.Backend.Location(key))
	if side == nil {
		return nil, nil, verifyError(t, fmt.Sprintf("the receipt of %s says its password is sealed but names no sealed password at this destination", c.Location))
	}
	blob, err := fetchSidecar(ctx, d, c, key, side, "sealed password", "the copy cannot be opened", sealed.MaxSize)
	return blob, side, err
}

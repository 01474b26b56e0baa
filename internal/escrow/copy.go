package escrow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// target is one destination that passed preflight.
type target struct {
	name      string
	backend   storage.Backend
	region    string
	retain    *config.Retention  // configured lock; nil for none
	retention *storage.Retention // the lock asked for this write (lockUntil)
	legalHold bool               // also place a legal hold
	checks    []receipt.Check
	// unversioned: versioning is waived and not proven, so a copy without
	// a version id is accepted (acceptUnversioned).
	unversioned bool
}

// lockUntil is the retention asked for a write at now: the configured days
// in whole seconds, rounded up so the lock is never shorter than configured.
func (t target) lockUntil(now time.Time) *storage.Retention {
	if t.retain == nil {
		return nil
	}
	until := now.Add(time.Duration(t.retain.Days) * 24 * time.Hour).UTC()
	if tr := until.Truncate(time.Second); tr.Before(until) {
		until = tr.Add(time.Second)
	}
	return &storage.Retention{Mode: t.retain.Mode, Until: until}
}

// copyAndProve writes kf to t under key, create-only, and proves the copy:
// the version exists, the service's checksum equals ours, the retention read
// back is at least what was asked, and the stored bytes re-hash the same.
// The properties and the bytes are read concurrently, by version id.
// The returned Destination is "verified" only when all of that held; err
// carries the exit code otherwise.
func copyAndProve(ctx context.Context, t target, key string, kf *keyFile) (receipt.Destination, error) {
	d := receipt.Destination{
		Name:     t.name,
		Type:     t.backend.Type(),
		Location: t.backend.Location(key),
		Region:   t.region,
		Checks:   t.checks,
		Status:   receipt.DestFailed,
		Checksum: receipt.Checksum{Algorithm: receipt.ChecksumSHA256, Local: hex.EncodeToString(kf.sha256[:])},
	}
	caps := t.backend.Capabilities()
	obj, err := t.backend.Put(ctx, key, kf.data, storage.PutOptions{
		SHA256:      kf.sha256[:],
		MD5:         kf.md5[:],
		Retention:   t.retention,
		LegalHold:   t.legalHold,
		ContentType: "application/octet-stream",
		Metadata:    map[string]string{"sha256": d.Checksum.Local},
	})
	if err != nil {
		return fail(d, transferError("write", t, key, err))
	}
	d.VersionID = obj.VersionID
	if caps.Versioning && obj.VersionID == "" && !t.unversioned {
		return fail(d, verifyError(t, "the service returned no version id for the new copy: versioning is not in effect"))
	}

	// The service's description and the stored bytes are read at once (two
	// requests, one round trip); both must hold before the copy counts.
	var (
		sum      [sha256.Size]byte
		n        int64
		readErr  error
		readDone = make(chan struct{})
	)
	go func() {
		defer close(readDone)
		sum, n, readErr = readBack(ctx, t.backend, key, obj.VersionID, int64(len(kf.data)))
	}()
	st, err := t.backend.Stat(ctx, key, obj.VersionID)
	<-readDone
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return fail(d, verifyErrorf(t, "the version just written (%q) cannot be found: %w", obj.VersionID, err))
		}
		return fail(d, transferError("read the properties of", t, key, err))
	}
	if st.Retention != nil {
		d.Retention = &receipt.Retention{Mode: st.Retention.Mode, Until: st.Retention.Until.UTC()}
	}
	if st.SHA256 != nil {
		d.Checksum.Remote = hex.EncodeToString(st.SHA256)
	}
	if st.Size != int64(len(kf.data)) {
		return fail(d, verifyError(t, fmt.Sprintf("the stored copy has %d bytes, the key file %d", st.Size, len(kf.data))))
	}
	if st.SHA256 == nil {
		return fail(d, verifyError(t, "the service reported no SHA-256 for the stored copy"))
	}
	if !bytes.Equal(st.SHA256, kf.sha256[:]) {
		return fail(d, verifyError(t, fmt.Sprintf("the service's SHA-256 %s differs from the key file's %s", d.Checksum.Remote, d.Checksum.Local)))
	}
	if st.MD5 != nil && !bytes.Equal(st.MD5, kf.md5[:]) {
		return fail(d, verifyError(t, "the service's MD5 differs from the key file's"))
	}
	d.Checksum.Match = true
	if err := retentionAtLeast(t.retention, st.Retention); err != nil {
		return fail(d, verifyError(t, err.Error()))
	}
	if t.legalHold && !st.LegalHold {
		return fail(d, verifyError(t, "a legal hold was asked but the stored copy has none"))
	}

	if readErr != nil {
		return fail(d, transferError("read back", t, key, readErr))
	}
	d.ReadBack = true
	if n != int64(len(kf.data)) || sum != kf.sha256 {
		d.Checksum.Match = false
		return fail(d, verifyError(t, fmt.Sprintf("the bytes read back (%d, SHA-256 %s) differ from the key file", n, hex.EncodeToString(sum[:]))))
	}
	d.Status = receipt.DestVerified
	return d, nil
}

// readBack downloads a version and hashes it.
func readBack(ctx context.Context, b storage.Backend, key, versionID string, want int64) ([sha256.Size]byte, int64, error) {
	data, err := download(ctx, b, key, versionID, want)
	return sha256.Sum256(data), int64(len(data)), err
}

// download reads a version whole, at most one byte more than expected, so
// a longer object is noticed without reading it all.
func download(ctx context.Context, b storage.Backend, key, versionID string, want int64) ([]byte, error) {
	rc, err := b.Open(ctx, key, versionID)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rc, want+1)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// retentionAtLeast proves the lock read back is at least the lock asked for:
// the same or a stronger mode, and an until-date no earlier.
func retentionAtLeast(asked, got *storage.Retention) error {
	if asked == nil {
		return nil
	}
	if got == nil {
		return fmt.Errorf("retention %s until %s was asked but the stored copy has none", asked.Mode, asked.Until.Format(time.RFC3339))
	}
	if modeStrength(got.Mode) < modeStrength(asked.Mode) {
		return fmt.Errorf("retention mode read back is %s, weaker than the %s asked", got.Mode, asked.Mode)
	}
	if got.Until.Before(asked.Until) {
		return fmt.Errorf("retention read back ends %s, before the %s asked", got.Until.UTC().Format(time.RFC3339), asked.Until.UTC().Format(time.RFC3339))
	}
	return nil
}

// modeStrength ranks retention modes: a mode nobody can shorten (S3
// COMPLIANCE, Azure locked) above one that can be bypassed.
func modeStrength(mode string) int {
	switch strings.ToLower(mode) {
	case "compliance", "locked":
		return 2
	case "governance", "unlocked":
		return 1
	default:
		return 0
	}
}

func fail(d receipt.Destination, err error) (receipt.Destination, error) {
	d.Status = receipt.DestFailed
	d.Error = &receipt.Error{Code: exitcode.Code(err), Message: err.Error()}
	return d, err
}

// transferError is a failed request: exit 5, or 130 when interrupted. It
// wraps err, so its sentinels (storage.ErrNotFound …) survive.
func transferError(what string, t target, key string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	hint := ""
	switch {
	case errors.Is(err, storage.ErrExists):
		hint = " (keyescrow never overwrites; a copy with this name exists already)"
	case errors.Is(err, storage.ErrChecksum):
		hint = " (the service refused the bytes as corrupted in transit; nothing was stored)"
	case errors.Is(err, storage.ErrAuth):
		hint = " (check the destination's credentials)"
	case errors.Is(err, storage.ErrPermission):
		hint = " (the credentials lack the permission for this action)"
	}
	return exitcode.Wrap(exitcode.Transfer, fmt.Errorf("%s: could not %s %s: %w%s", t.name, what, t.backend.Location(key), err, hint))
}

// verifyError is a copy that was written but could not be proven: exit 6.
func verifyError(t target, msg string) error {
	return exitcode.Wrap(exitcode.Verify, fmt.Errorf("%s: verification failed: %s", t.name, msg))
}

// verifyErrorf is verifyError with a format whose %w wraps the cause.
func verifyErrorf(t target, format string, args ...any) error {
	return exitcode.Wrap(exitcode.Verify, fmt.Errorf("%s: verification failed: "+format, append([]any{t.name}, args...)...))
}

package escrow

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"

	"github.com/keyescrow/keyescrow/internal/exitcode"
)

// maxKeyFileSize bounds what keyescrow reads as a key file. A service master
// key backup is a few hundred bytes; anything near this is not one.
const maxKeyFileSize = 1 << 20

// keyFile is a key file read into memory once and hashed once.
type keyFile struct {
	path   string
	data   []byte
	sha256 [sha256.Size]byte
	md5    [md5.Size]byte
	// sealed is the key file's password sealed to the configured
	// recipients (backup.seal_to), stored and proven beside every copy.
	sealed *keyFile
	// privateKey is a certificate's .pvk, written beside its .cer (PVK
	// format): stored and proven with it, the copy counts only with both.
	privateKey *keyFile
}

// readKeyFile reads a regular, non-empty key file (not following a symlink
// at the last element) and hashes it.
func readKeyFile(path string) (*keyFile, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	switch {
	case len(data) == 0:
		return nil, fmt.Errorf("%s is empty", path)
	case len(data) > maxKeyFileSize:
		return nil, fmt.Errorf("%s is larger than %d bytes: not a key backup", path, maxKeyFileSize)
	}
	return newKeyFile(path, data), nil
}

// newKeyFile hashes data once, with every checksum a destination may want.
func newKeyFile(path string, data []byte) *keyFile {
	return &keyFile{path: path, data: data, sha256: sha256.Sum256(data), md5: md5.Sum(data)}
}

// checkPrivateDir refuses a key folder that other users can enter or read:
// the key file must never be readable by them, not even for a moment. On
// Windows the folder's ACL is inherited by the file (see docs/how-it-works.md).
func checkPrivateDir(dir, key string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil // SQL Server reports a missing folder itself (Msg 15240)
		}
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("%s %s cannot be read: %w", key, dir, err))
	}
	if !fi.IsDir() {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("%s %s is not a folder: point it at the folder SQL Server writes the key file to", key, dir))
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o007 != 0 {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("%s %s is open to other users (mode %04o): run chmod o-rwx %s, so the key file is never readable by them", key, dir, fi.Mode().Perm(), dir))
	}
	return nil
}

// restrict makes a key file owner-only where the platform allows it. It is
// best effort: a file owned by the SQL Server service account may refuse.
func restrict(path string) {
	if runtime.GOOS == "windows" {
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&^fs.FileMode(0o600) != 0 {
		_ = os.Chmod(path, 0o600)
	}
}

// CheckKeyFolder is the preflight of the folder where this host reads the
// key file SQL Server writes (local_directory, else server_directory): it
// must exist and be closed to other users.
func CheckKeyFolder(localDir, serverDir string) error {
	dir, key := localDir, "backup.local_directory"
	if dir == "" {
		dir, key = serverDir, "backup.server_directory"
	}
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("%s %s does not exist on this host: create it (owned by the SQL Server service account, closed to others), or set backup.local_directory to where this host sees it", key, dir))
	}
	return checkPrivateDir(dir, key)
}

// warnLeftovers tells the operator about key files earlier failed runs kept
// in the key folder: keyescrow never deletes a key it has not archived, so
// they stay until someone archives (keyescrow archive) or removes them.
func (r *Runner) warnLeftovers(ctx context.Context, dir, current string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var left, items []string
	for _, e := range entries {
		n := e.Name()
		switch {
		case n == current || !e.Type().IsRegular():
		case strings.Contains(n, "-servicemasterkey-") && strings.HasSuffix(n, ".key"):
			left = append(left, n)
		case isItemExport(n) && !strings.Contains(n, "-"+r.RunID[:8]+"."):
			items = append(items, n)
		}
	}
	if len(left) > 0 {
		r.Log.WarnContext(ctx, "key files kept by earlier failed runs are still in the key folder: archive them with keyescrow archive, then remove them", "folder", dir, "count", len(left), "files", strings.Join(left, ","))
	}
	if len(items) > 0 {
		r.Log.WarnContext(ctx, "database master key and certificate exports kept by earlier failed runs are still in the key folder: remove them once a run has archived those keys (the receipt's items say so)", "folder", dir, "count", len(items), "files", strings.Join(items, ","))
	}
}

// isItemExport reports whether a file name is one backup gives a hierarchy
// item's export: a master key's .key, a certificate's .cer, .pvk or .pfx,
// each with the time and the run id.
func isItemExport(name string) bool {
	m := runIDRE.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	switch m[2] {
	case ".cer", ".pvk", ".pfx":
		return true
	case ".key":
		return strings.Contains(name, "-masterkey-")
	}
	return false
}

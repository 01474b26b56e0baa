//go:build unix

package filestore

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// osInvalidChars are refused in keys beyond / \ and NUL.
const osInvalidChars = ""

// linkNoReplace hard-links tmp to final; it fails with EEXIST when final
// exists, so nothing is ever replaced.
func linkNoReplace(tmp, final string) error { return os.Link(tmp, final) }

// linkUnsupported reports whether the file system cannot hard-link (FAT,
// exFAT, some SMB shares, another device), so Put must create the file
// directly with O_EXCL.
func linkUnsupported(err error) bool {
	for _, e := range []error{unix.EPERM, unix.ENOTSUP, unix.EOPNOTSUPP, unix.EXDEV, unix.ENOSYS, unix.EMLINK, unix.EINVAL} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// syncDir fsyncs a folder so new entries in it survive a power cut. File
// systems that cannot sync a folder (EINVAL, ENOTSUP) are accepted.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTSUP) {
		return err
	}
	return nil
}

// probeWritable asks access(2) whether this user may create files in dir,
// without writing.
func probeWritable(dir string) error { return unix.Access(dir, unix.W_OK|unix.X_OK) }

// writable turns the probe's answer into the Writable property.
func writable(dir string, err error) storage.Property {
	switch {
	case err == nil:
		return storage.Property{State: storage.Proven, Detail: "access(2) grants this user write and search permission on " + dir}
	case errors.Is(err, unix.EROFS):
		return storage.Property{State: storage.Absent, Detail: fmt.Sprintf("the file system holding %s is read-only: remount it read-write or switch off the medium's write protection", dir)}
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return storage.Property{State: storage.Absent, Detail: fmt.Sprintf("this user may not create files in %s: grant it write permission on the folder or run keyescrow as the folder's owner", dir)}
	default:
		return storage.Property{State: storage.Unknown, Detail: fmt.Sprintf("cannot tell whether %s is writable: %v", dir, err)}
	}
}

// isNotDir: a path segment is a file, so the path cannot exist.
func isNotDir(err error) bool { return errors.Is(err, unix.ENOTDIR) }

// mediumProblem explains errors that mean the medium is full, read-only or
// failing; "" for others.
func mediumProblem(err error) string {
	switch {
	case errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT):
		return "the medium is full (or the quota is used up)"
	case errors.Is(err, unix.EROFS):
		return "the file system is read-only"
	case errors.Is(err, unix.EIO):
		return "I/O error: the medium was removed or is failing"
	}
	return ""
}

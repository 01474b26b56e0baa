//go:build windows

package filestore

import (
	"errors"
	"fmt"

	"golang.org/x/sys/windows"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// osInvalidChars are refused in keys beyond / \ and NUL (":" would name an
// NTFS alternate data stream).
const osInvalidChars = `<>:"|?*`

// linkNoReplace moves tmp to final without MOVEFILE_REPLACE_EXISTING, so it
// fails when final exists (os.Rename would replace it).
func linkNoReplace(tmp, final string) error {
	from, err := windows.UTF16PtrFromString(tmp)
	if err != nil {
		return err
	}
	to, err := windows.UTF16PtrFromString(final)
	if err != nil {
		return err
	}
	if err := windows.MoveFileEx(from, to, windows.MOVEFILE_WRITE_THROUGH); err != nil {
		return &linkError{tmp, final, err}
	}
	return nil
}

type linkError struct {
	tmp, final string
	err        error
}

func (e *linkError) Error() string { return "move " + e.tmp + " " + e.final + ": " + e.err.Error() }
func (e *linkError) Unwrap() error { return e.err }

// linkUnsupported reports whether the move is not supported, so Put must
// create the file directly with O_EXCL.
func linkUnsupported(err error) bool {
	return errors.Is(err, windows.ERROR_NOT_SUPPORTED) || errors.Is(err, windows.ERROR_INVALID_FUNCTION)
}

// syncDir is a no-op: Windows cannot fsync a folder; MOVEFILE_WRITE_THROUGH
// makes the move durable.
func syncDir(string) error { return nil }

var (
	errReadOnlyVolume = errors.New("the volume is read-only")
	errReadOnlyAttr   = errors.New("the folder has the read-only attribute")
	errCannotTell     = errors.New("the folder's Windows ACLs are not evaluated without writing")
)

// probeWritable checks, without writing, whether the volume is read-only
// or the folder carries the read-only attribute.
func probeWritable(dir string) error {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return err
	}
	attrs, err := windows.GetFileAttributes(p)
	if err != nil {
		return err
	}
	if attrs&windows.FILE_ATTRIBUTE_READONLY != 0 {
		return errReadOnlyAttr
	}
	root := make([]uint16, windows.MAX_PATH+1)
	if err := windows.GetVolumePathName(p, &root[0], uint32(len(root))); err == nil {
		var flags uint32
		if windows.GetVolumeInformation(&root[0], nil, 0, nil, nil, &flags, nil, 0) == nil && flags&windows.FILE_READ_ONLY_VOLUME != 0 {
			return errReadOnlyVolume
		}
	}
	return errCannotTell
}

// writable turns the probe's answer into the Writable property.
func writable(dir string, err error) storage.Property {
	switch {
	case errors.Is(err, errReadOnlyVolume):
		return storage.Property{State: storage.Absent, Detail: fmt.Sprintf("the volume holding %s is read-only: switch off the medium's write protection", dir)}
	case errors.Is(err, errReadOnlyAttr):
		return storage.Property{State: storage.Absent, Detail: fmt.Sprintf("%s has the read-only attribute: clear it (attrib -r)", dir)}
	case errors.Is(err, errCannotTell):
		return storage.Property{State: storage.Unknown, Detail: fmt.Sprintf("%s exists and is not read-only; %v, the first write will tell", dir, err)}
	case err == nil:
		return storage.Property{State: storage.Proven, Detail: dir + " is writable"}
	default:
		return storage.Property{State: storage.Unknown, Detail: fmt.Sprintf("cannot tell whether %s is writable: %v", dir, err)}
	}
}

func isNotDir(err error) bool { return errors.Is(err, windows.ERROR_DIRECTORY) }

// mediumProblem explains errors that mean the medium is full, read-only or
// failing; "" for others.
func mediumProblem(err error) string {
	switch {
	case errors.Is(err, windows.ERROR_DISK_FULL) || errors.Is(err, windows.ERROR_HANDLE_DISK_FULL):
		return "the medium is full"
	case errors.Is(err, windows.ERROR_WRITE_PROTECT):
		return "the medium is write-protected"
	case errors.Is(err, windows.ERROR_NOT_READY) || errors.Is(err, windows.ERROR_DEV_NOT_EXIST) ||
		errors.Is(err, windows.ERROR_CRC) || errors.Is(err, windows.ERROR_IO_DEVICE):
		return "I/O error: the medium was removed or is failing"
	}
	return ""
}

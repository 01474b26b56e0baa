package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Size limits of what keyescrow reads from files. Each is far above any
// real content and low enough that a wrong path (a disk image, a log,
// /dev/zero) is refused at once instead of filling memory.
const (
	// MaxConfigBytes bounds the configuration file.
	MaxConfigBytes = 1 << 20
	// MaxSecretBytes bounds a secret file, a DSN file and a secret read
	// from standard input.
	MaxSecretBytes = 64 << 10
)

// errTooLarge is returned by readRegular for a file over its limit.
var errTooLarge = errors.New("too large")

// notRegularError says what a path is when it is not a regular file.
type notRegularError struct{ kind string }

func (e *notRegularError) Error() string { return "it is " + e.kind + ", not a regular file" }

// fileKind names a file type for messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeIrregular != 0:
		return "a special file"
	}
	return "not a regular file"
}

// readRegular reads the regular file at path, at most max bytes. Anything
// else (a FIFO, a device, a socket, a folder) is refused before it is read,
// and opened, if at all, without blocking: a FIFO nobody writes to never
// hangs the run. The file's size is checked before and while reading, so a
// file over max costs at most max+1 bytes of memory.
func readRegular(path string, max int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &notRegularError{fileKind(fi.Mode())}
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %s", errTooLarge, fi.Size(), sizeText(max))
	}
	f, err := openNonBlocking(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The path may have been swapped between Stat and Open: judge what was
	// opened.
	ofi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !ofi.Mode().IsRegular() {
		return nil, &notRegularError{fileKind(ofi.Mode())}
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: over %s", errTooLarge, sizeText(max))
	}
	return data, nil
}

// sizeText renders a limit as KiB or MiB.
func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

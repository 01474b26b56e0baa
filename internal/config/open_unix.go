//go:build unix

package config

import (
	"os"
	"syscall"
)

// openNonBlocking opens path for reading with O_NONBLOCK, so opening a FIFO
// that has no writer returns at once (the caller then refuses it).
func openNonBlocking(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

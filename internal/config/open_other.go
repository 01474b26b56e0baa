//go:build !unix

package config

import "os"

// openNonBlocking opens path for reading. Windows has no FIFOs in the file
// system; named pipes live under \\.\pipe\ and are refused by the Stat
// before the open.
func openNonBlocking(path string) (*os.File, error) { return os.Open(path) }

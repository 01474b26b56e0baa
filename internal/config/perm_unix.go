//go:build !windows

package config

import "io/fs"

// tooOpen reports whether group or others may access the file.
func tooOpen(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o077 != 0 }

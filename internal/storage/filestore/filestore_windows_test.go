//go:build windows

package filestore

import "golang.org/x/sys/windows"

var errUnsupportedLink = windows.ERROR_NOT_SUPPORTED

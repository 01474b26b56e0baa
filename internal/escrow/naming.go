package escrow

import (
	"crypto/rand"
	"encoding/hex"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// stampLayout is the UTC time in file and object names: sortable, no colons
// (Windows forbids them in file names).
const stampLayout = "20060102T150405Z"

// NewRunID returns a random run id (16 hex digits).
func NewRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// safeName keeps letters, digits and . _ - $ of s and turns every other
// character into _, so a host or instance name is safe in a file name and an
// object key on every platform and service.
func safeName(s string) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '$':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := b.String()
	if strings.Trim(out, ".") == "" {
		return "_"
	}
	return out
}

// backupFileName is the new, never reused name of one service master key
// export, in the style of dbatools (<instance>-servicemasterkey, with the
// instance's "\" as "$") plus the UTC time and the run id.
func backupFileName(serverName string, now time.Time, runID string) string {
	server := safeName(strings.ReplaceAll(serverName, `\`, "$"))
	return server + "-servicemasterkey-" + now.UTC().Format(stampLayout) + "-" + runID[:8] + ".key"
}

// archiveFileName names an archived copy of a given file: its own base name
// plus the UTC time and the run id, keeping its extension.
func archiveFileName(file string, now time.Time, runID string) string {
	base := filepath.Base(file)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	if ext == "" {
		ext = ".key"
	}
	return safeName(stem) + "-" + now.UTC().Format(stampLayout) + "-" + runID[:8] + safeName(ext)
}

// objectKey is where a file is archived under a destination's prefix:
// <prefix><host>/<instance>/<kind>/<name>. Names start with a fixed part and
// the UTC time, so keys sort by time within a host and instance.
func objectKey(prefix, host, instance, kind, name string) string {
	return prefix + path.Join(safeName(host), safeName(instance), kind, name)
}

// receiptKey is the key of the receipt stored beside an archived key file.
func receiptKey(key string) string { return key + ".receipt.json" }

// serverJoin joins a folder and a file name in the folder's own style, so a
// Windows server's folder (C:\keys, \\share\keys) gets a backslash whatever
// the platform keyescrow runs on, and a POSIX folder a slash.
func serverJoin(dir, name string) string {
	sep := "/"
	switch {
	case strings.HasPrefix(dir, "/"):
	case strings.Contains(dir, `\`):
		sep = `\`
	case len(dir) >= 2 && dir[1] == ':' && !strings.Contains(dir, "/"):
		sep = `\`
	}
	return strings.TrimRight(dir, sep) + sep + name
}

// isWindowsPath reports whether dir is a drive or UNC path (C:\keys,
// \\server\share).
func isWindowsPath(dir string) bool {
	return strings.HasPrefix(dir, `\\`) || (len(dir) >= 3 && dir[1] == ':' && (dir[2] == '\\' || dir[2] == '/'))
}

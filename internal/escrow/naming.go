package escrow

import (
	"crypto/rand"
	"encoding/hex"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keyescrow/keyescrow/internal/receipt"
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

// safeName turns a host or instance name into one folder of an object key,
// safe on every platform and service, and injective: two different names
// never share a folder. Letters, digits and . _ - $ stay as they are (so
// the folders of ordinary names, and archives made before, are unchanged);
// every other byte is percent-encoded (%2F, %5C, %20, %25 for % itself).
// Three names that cannot be folders get a fixed form: the empty name is
// "_" (as before), the name "_" itself is "%5F", and a name of dots only
// ("." or "..") has each dot encoded ("%2E"). unSafeName reverses it.
func safeName(s string) string {
	switch {
	case s == "":
		return "_"
	case s == "_":
		return "%5F"
	case strings.Trim(s, ".") == "":
		return strings.Repeat("%2E", len(s))
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if portableByte(c) {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// unSafeName is the name safeName made folder f from; ok is false when f
// is not a folder safeName makes.
func unSafeName(f string) (name string, ok bool) {
	if f == "_" {
		return "", true
	}
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case portableByte(c):
			b.WriteByte(c)
		case c == '%' && i+2 < len(f) && isUpperHex(f[i+1]) && isUpperHex(f[i+2]):
			v, _ := strconv.ParseUint(f[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", false
		}
	}
	name = b.String()
	return name, safeName(name) == f
}

func portableByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == '$'
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

// portableName keeps letters, digits and . _ - $ of s and turns every other
// character into _: for the names of key files, which carry the time and
// the run id and so are unique without being reversible.
func portableName(s string) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 && portableByte(byte(r)) {
			b.WriteRune(r)
		} else {
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
	server := portableName(strings.ReplaceAll(serverName, `\`, "$"))
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
	return portableName(stem) + "-" + now.UTC().Format(stampLayout) + "-" + runID[:8] + portableName(ext)
}

// objectKey is where a file is archived under a destination's prefix:
// <prefix><host>/<instance>/<kind>/<name>. Names start with a fixed part and
// the UTC time, so keys sort by time within a host and instance.
func objectKey(prefix, host, instance, kind, name string) string {
	return prefix + path.Join(safeName(host), safeName(instance), kind, name)
}

// kindDepth is how many folders below <kind>/ name an item of that kind:
// a database master key's database, a certificate's database and name.
// The service master key (and any kind this version does not know) has
// none.
func kindDepth(kind string) int {
	switch kind {
	case receipt.KindDatabaseMasterKey:
		return 1
	case receipt.KindCertificate:
		return 2
	}
	return 0
}

// itemObjectKey is where a copy of a hierarchy item is archived:
// <prefix><host>/<instance>/database-master-key/<database>/<name> and
// <prefix><host>/<instance>/certificate/<database>/<certificate>/<name>,
// each folder made by safeName, so every item has its own folder and its
// copies sort by time inside it.
func itemObjectKey(prefix, host, instance string, it receipt.Item, name string) string {
	parts := []string{safeName(host), safeName(instance), it.Kind, safeName(it.Database)}
	if it.Kind == receipt.KindCertificate {
		parts = append(parts, safeName(it.Name))
	}
	return prefix + path.Join(append(parts, name)...)
}

// itemFileName is the new, never reused name of one export of a hierarchy
// item: <database>-masterkey-<time>-<run>.key for a master key,
// <certificate>-<time>-<run>.cer (with its .pvk) or .pfx for a
// certificate.
func itemFileName(it receipt.Item, now time.Time, runID string) string {
	stamp := "-" + now.UTC().Format(stampLayout) + "-" + runID[:8]
	if it.Kind == receipt.KindDatabaseMasterKey {
		return portableName(it.Database) + "-masterkey" + stamp + ".key"
	}
	ext := ".cer"
	if it.Format == "pfx" {
		ext = ".pfx"
	}
	return portableName(it.Name) + stamp + ext
}

// privateKeySuffix ends the key of a certificate copy's private key file.
const privateKeySuffix = ".pvk"

// privateKeyKey is the key (or file name) of the .pvk that travels with a
// certificate's .cer: the same name with .pvk for .cer.
func privateKeyKey(cerKey string) string {
	return strings.TrimSuffix(cerKey, ".cer") + privateKeySuffix
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

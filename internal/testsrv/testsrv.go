// Package testsrv holds what the test-server starters (s3srv, azurite)
// share. The servers take a port on their command line, so the starters
// ask for a free one and retry when another process took it meanwhile.
package testsrv

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// FreePort returns a port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CorruptStored flips one byte of every stored occurrence of content in
// the files under dir (a server's data folder), behind the server's back:
// bit rot or tampering, while the checksums the server keeps stay as they
// were. It returns how many files it changed. content should be random, so
// it occurs nowhere else.
func CorruptStored(dir string, content []byte) (int, error) {
	if len(content) == 0 {
		return 0, errors.New("CorruptStored: empty content")
	}
	changed := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		i := bytes.Index(b, content)
		if i < 0 {
			return nil
		}
		for ; i >= 0; i = indexFrom(b, content, i+len(content)) {
			b[i+len(content)/2] ^= 0xff
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm()
		if err := os.Chmod(path, mode|0o200); err != nil {
			return err
		}
		if err := os.WriteFile(path, b, mode|0o200); err != nil {
			return err
		}
		changed++
		return os.Chmod(path, mode)
	})
	return changed, err
}

func indexFrom(b, sub []byte, from int) int {
	if from >= len(b) {
		return -1
	}
	i := bytes.Index(b[from:], sub)
	if i < 0 {
		return -1
	}
	return from + i
}

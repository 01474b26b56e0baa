package sign

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// pemType is the PEM block of a private key file (PKCS #8, which OpenSSL
// reads: openssl pkey -in FILE -pubout).
const pemType = "PRIVATE KEY"

// ParsePrivateKey reads an Ed25519 private key in PKCS #8 PEM. The error
// never quotes the input.
func ParsePrivateKey(text []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(text)
	if block == nil || block.Type != pemType {
		return nil, errors.New("it is not a PEM \"PRIVATE KEY\" block (keyescrow init-key writes one)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("its PKCS #8 content cannot be parsed")
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("it is not an Ed25519 key")
	}
	return priv, nil
}

// Public returns the pinned form of a private key's public half.
func Public(priv ed25519.PrivateKey) PublicKey {
	return NewPublicKey(priv.Public().(ed25519.PublicKey))
}

// CreateKey makes a new signing key and writes its private half to path:
// create-only (never over an existing file), owner-only (0600), in a
// folder other users cannot write to. It returns the public half.
func CreateKey(path string) (PublicKey, error) {
	if err := checkKeyFolder(filepath.Dir(path)); err != nil {
		return PublicKey{}, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return PublicKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return PublicKey{}, err
	}
	text := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return PublicKey{}, fmt.Errorf("%s exists already: init-key never overwrites a key (a lost signing key cannot be recovered); choose a new name", path)
		}
		return PublicKey{}, fmt.Errorf("cannot create %s: %w", path, err)
	}
	_, err = f.Write(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return PublicKey{}, fmt.Errorf("writing %s: %w", path, err)
	}
	return NewPublicKey(pub), nil
}

// checkKeyFolder refuses a folder that is missing or that group or others
// may write to (they could replace the key file after it is written).
func checkKeyFolder(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("the folder %s cannot be used: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a folder", dir)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("the folder %s can be written by other users (mode %04o): they could replace the key; keep the signing key in a folder only its owner writes to (e.g. chmod go-w %s, or /etc/keyescrow)", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// CheckKeyFileMode refuses a private key file group or others can read or
// write (unix; Windows relies on the file's ACL).
func CheckKeyFileMode(path string, fi os.FileInfo) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("the signing key %s can be used by other users (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("the signing key %s is not a regular file", path)
	}
	return nil
}

// Describe renders a public key for messages: its id and text form.
func Describe(p PublicKey) string { return fmt.Sprintf("%s (key id %s)", p, p.ID) }

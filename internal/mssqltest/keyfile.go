package mssqltest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"errors"
)

// Errors of OpenKeyFile.
var (
	ErrWrongPassword  = errors.New("mssqltest: wrong key file password")
	ErrCorruptKeyFile = errors.New("mssqltest: corrupt or foreign key file")
)

// Key file layout (the stand-in's own format; SQL Server's is undocumented):
//
//	magic "MSTSMK" | version 1 | iterations uint32 BE | salt 16 |
//	verifier 32 | nonce 12 | AES-256-GCM(SMK) 48 | SHA-256 of all before 32
const (
	keyMagic      = "MSTSMK"
	keyVersion    = 1
	keyIterations = 1000
	keySaltLen    = 16
	keyNonceLen   = 12
	smkLen        = 32
	keyHeaderLen  = len(keyMagic) + 1 + 4
	keyFileLen    = keyHeaderLen + keySaltLen + 32 + keyNonceLen + smkLen + 16 + sha256.Size
	maxIterations = 1 << 20
)

func deriveKeys(password string, salt []byte, iter int) (aesKey, verifier []byte, err error) {
	dk, err := pbkdf2.Key(sha256.New, password, salt, iter, 64)
	if err != nil {
		return nil, nil, err
	}
	m := hmac.New(sha256.New, dk[32:])
	m.Write([]byte("mssqltest password verifier"))
	return dk[:32], m.Sum(nil), nil
}

// sealKeyFile encrypts smk with password; every call gives different bytes.
// It is the sealed format of sealed.go under the SMK file's own magic.
func sealKeyFile(smk []byte, password string) ([]byte, error) {
	return seal(keyMagic, smk, password)
}

// OpenKeyFile decrypts a file written by BACKUP SERVICE MASTER KEY on the
// stand-in. ErrCorruptKeyFile: damaged or not a key file; ErrWrongPassword:
// intact but the password does not match.
func OpenKeyFile(data []byte, password string) (smk []byte, err error) {
	if len(data) != keyFileLen {
		return nil, ErrCorruptKeyFile
	}
	return unseal(keyMagic, data, password)
}

// newGCM is AES-256-GCM under key.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

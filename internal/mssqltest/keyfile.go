package mssqltest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
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
func sealKeyFile(smk []byte, password string) ([]byte, error) {
	salt := make([]byte, keySaltLen)
	nonce := make([]byte, keyNonceLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	key, verifier, err := deriveKeys(password, salt, keyIterations)
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	out := append([]byte(keyMagic), keyVersion)
	out = binary.BigEndian.AppendUint32(out, keyIterations)
	out = append(out, salt...)
	out = append(out, verifier...)
	out = append(out, nonce...)
	out = gcm.Seal(out, nonce, smk, out[:keyHeaderLen])
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), nil
}

// OpenKeyFile decrypts a file written by BACKUP SERVICE MASTER KEY on the
// stand-in. ErrCorruptKeyFile: damaged or not a key file; ErrWrongPassword:
// intact but the password does not match.
func OpenKeyFile(data []byte, password string) (smk []byte, err error) {
	if len(data) != keyFileLen || !bytes.HasPrefix(data, []byte(keyMagic)) || data[len(keyMagic)] != keyVersion {
		return nil, ErrCorruptKeyFile
	}
	body, trailer := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	sum := sha256.Sum256(body)
	if subtle.ConstantTimeCompare(sum[:], trailer) != 1 {
		return nil, ErrCorruptKeyFile
	}
	iter := int(binary.BigEndian.Uint32(data[len(keyMagic)+1:]))
	if iter < 1 || iter > maxIterations {
		return nil, ErrCorruptKeyFile
	}
	rest := body[keyHeaderLen:]
	salt, rest := rest[:keySaltLen], rest[keySaltLen:]
	verifier, rest := rest[:32], rest[32:]
	nonce, sealed := rest[:keyNonceLen], rest[keyNonceLen:]
	key, want, err := deriveKeys(password, salt, iter)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(want, verifier) != 1 {
		return nil, ErrWrongPassword
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	smk, err = gcm.Open(nil, nonce, sealed, body[:keyHeaderLen])
	if err != nil {
		return nil, ErrCorruptKeyFile
	}
	return smk, nil
}

// newGCM is AES-256-GCM under key.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

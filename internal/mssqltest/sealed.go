package mssqltest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
)

// The stand-in's database master key, private key (.pvk) and PFX backup
// files. SQL Server's own formats are undocumented (the master key file) or
// need RC4 (PVK), so the stand-in writes its own, like the service master
// key file (keyfile.go): a magic naming the kind, PBKDF2 from the
// password, a verifier that tells a wrong password from damage, AES-256-GCM,
// and a SHA-256 trailer. Only the right password opens a file, and a file
// of one kind is never taken for another.
//
//	magic 6 | version 1 | iterations uint32 BE | salt 16 | verifier 32 |
//	nonce 12 | AES-256-GCM(payload) | SHA-256 of all before 32
//
// The certificate file (.cer) is the real thing: the DER X.509
// certificate, whose SHA-1 is the thumbprint sys.certificates shows.
const (
	magicMasterKey  = "MSTDMK"
	magicPrivateKey = "MSTPVK"
	magicPFX        = "MSTPFX"
	sealedMinLen    = keyHeaderLen + keySaltLen + 32 + keyNonceLen + 16 + sha256.Size
	sealedMaxLen    = 1 << 20
)

func seal(magic string, payload []byte, password string) ([]byte, error) {
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
	out := append([]byte(magic), keyVersion)
	out = binary.BigEndian.AppendUint32(out, keyIterations)
	out = append(out, salt...)
	out = append(out, verifier...)
	out = append(out, nonce...)
	out = gcm.Seal(out, nonce, payload, out[:keyHeaderLen])
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), nil
}

func unseal(magic string, data []byte, password string) ([]byte, error) {
	if len(data) < sealedMinLen || len(data) > sealedMaxLen || !bytes.HasPrefix(data, []byte(magic)) || data[len(magic)] != keyVersion {
		return nil, ErrCorruptKeyFile
	}
	body, trailer := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	sum := sha256.Sum256(body)
	if subtle.ConstantTimeCompare(sum[:], trailer) != 1 {
		return nil, ErrCorruptKeyFile
	}
	iter := int(binary.BigEndian.Uint32(data[len(magic)+1:]))
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
	out, err := gcm.Open(nil, nonce, sealed, body[:keyHeaderLen])
	if err != nil {
		return nil, ErrCorruptKeyFile
	}
	return out, nil
}

// OpenMasterKeyFile decrypts a file written by BACKUP MASTER KEY on the
// stand-in: the key's GUID (key_guid, RFC 4122 byte order) and its 32
// bytes. Errors: ErrCorruptKeyFile, ErrWrongPassword.
func OpenMasterKeyFile(data []byte, password string) (guid [16]byte, key []byte, err error) {
	p, err := unseal(magicMasterKey, data, password)
	if err != nil {
		return guid, nil, err
	}
	if len(p) != 16+smkLen {
		return guid, nil, ErrCorruptKeyFile
	}
	copy(guid[:], p)
	return guid, p[16:], nil
}

// OpenPrivateKeyFile decrypts a private key file written by BACKUP
// CERTIFICATE … WITH PRIVATE KEY on the stand-in (PKCS #8 inside).
func OpenPrivateKeyFile(data []byte, password string) (any, error) {
	p, err := unseal(magicPrivateKey, data, password)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(p)
	if err != nil {
		return nil, ErrCorruptKeyFile
	}
	return k, nil
}

// OpenPFXFile decrypts a file written by BACKUP CERTIFICATE … WITH FORMAT =
// 'PFX' on the stand-in: the certificate and its private key.
func OpenPFXFile(data []byte, password string) (*x509.Certificate, any, error) {
	p, err := unseal(magicPFX, data, password)
	if err != nil {
		return nil, nil, err
	}
	if len(p) < 4 {
		return nil, nil, ErrCorruptKeyFile
	}
	n := int(binary.BigEndian.Uint32(p))
	if n > len(p)-4 {
		return nil, nil, ErrCorruptKeyFile
	}
	cert, err := x509.ParseCertificate(p[4 : 4+n])
	if err != nil {
		return nil, nil, ErrCorruptKeyFile
	}
	k, err := x509.ParsePKCS8PrivateKey(p[4+n:])
	if err != nil {
		return nil, nil, ErrCorruptKeyFile
	}
	return cert, k, nil
}

func sealPFX(der, pkcs8 []byte, password string) ([]byte, error) {
	p := binary.BigEndian.AppendUint32(nil, uint32(len(der)))
	p = append(p, der...)
	p = append(p, pkcs8...)
	return seal(magicPFX, p, password)
}

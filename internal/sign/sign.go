// Package sign owns keyescrow's receipt signatures: Ed25519 signing keys
// (created by `keyescrow init-key`), the pinned public keys receipts are
// checked against, and the exact byte format of a signed stored receipt.
//
// A signed receipt is the receipt's JSON object P (the exact bytes that are
// signed) with one member appended before its closing brace:
//
//	stored = P[:len(P)-1] + `,"signature":{"alg":"ed25519","key_id":"<id>","value":"<base64>"}` + "}\n"
//
// so the stored object is still one JSON object with the receipt's fields at
// the top level, and anyone can recover P: cut the stored bytes at the last
// `,"signature":` and append "}". The signature is Ed25519 (RFC 8032, pure)
// over P; key_id is the first 8 bytes of SHA-256 of the 32-byte public key,
// in hex. Only the standard library's crypto is used.
package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Alg is the only signature algorithm.
const Alg = "ed25519"

// publicPrefix starts the text form of a public key.
const publicPrefix = "ed25519:"

// marker separates the signed payload from the signature member.
var marker = []byte(`,"signature":`)

// Errors a stored receipt's signature can fail with.
var (
	// ErrUnsigned: the receipt carries no signature.
	ErrUnsigned = errors.New("the receipt is not signed")
	// ErrMalformed: the signature member is not in the exact format.
	ErrMalformed = errors.New("the receipt's signature is malformed")
	// ErrUnknownKey: the signature names a key that is not pinned.
	ErrUnknownKey = errors.New("the receipt is signed by a key that is not in trust.public_keys")
	// ErrBadSignature: the signature does not verify with the pinned key
	// it names: the receipt was altered or forged.
	ErrBadSignature = errors.New("the receipt's signature does not verify")
)

// PublicKey is one pinned public key.
type PublicKey struct {
	Key ed25519.PublicKey
	ID  string
}

// KeyID is the short id of a public key: hex of the first 8 bytes of its
// SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// NewPublicKey wraps a raw public key with its id.
func NewPublicKey(pub ed25519.PublicKey) PublicKey { return PublicKey{Key: pub, ID: KeyID(pub)} }

// String is the text form pinned in trust.public_keys: ed25519:<base64>.
func (p PublicKey) String() string {
	return publicPrefix + base64.StdEncoding.EncodeToString(p.Key)
}

// ParsePublicKey reads the text form ed25519:<base64 of 32 bytes>.
func ParsePublicKey(s string) (PublicKey, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), publicPrefix)
	if !ok {
		return PublicKey{}, fmt.Errorf("%q is not a public key: it must start with %q (keyescrow init-key prints it)", abbrev(s), publicPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("%q is not a public key: after %q must come the base64 of %d bytes", abbrev(s), publicPrefix, ed25519.PublicKeySize)
	}
	return NewPublicKey(ed25519.PublicKey(raw)), nil
}

func abbrev(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// Signature is the signature member of a stored receipt.
type Signature struct {
	Alg   string
	KeyID string
	Value []byte
}

// Seal signs payload (a JSON object, no trailing newline) and returns the
// stored bytes.
func Seal(priv ed25519.PrivateKey, payload []byte) ([]byte, error) {
	payload = bytes.TrimRight(payload, "\n")
	if len(payload) < 2 || payload[0] != '{' || payload[len(payload)-1] != '}' {
		return nil, errors.New("sign: the payload is not a JSON object")
	}
	if bytes.Contains(payload, marker) {
		return nil, errors.New("sign: the payload already holds a signature member")
	}
	pub := priv.Public().(ed25519.PublicKey)
	sig := ed25519.Sign(priv, payload)
	var b bytes.Buffer
	b.Write(payload[:len(payload)-1])
	fmt.Fprintf(&b, `,"signature":{"alg":%q,"key_id":%q,"value":%q}`, Alg, KeyID(pub), base64.StdEncoding.EncodeToString(sig))
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// tailRE is the exact signature member and the object's end.
var tailRE = regexp.MustCompile(`^\{"alg":"ed25519","key_id":"([0-9a-f]{16})","value":"([A-Za-z0-9+/]{86}==)"\}\}\n?$`)

// Split separates stored bytes into the signed payload and its signature.
// An unsigned receipt returns its bytes and ErrUnsigned; a signature member
// that is not in the exact format returns ErrMalformed.
func Split(stored []byte) (payload []byte, sig *Signature, err error) {
	i := bytes.LastIndex(stored, marker)
	if i < 0 {
		return stored, nil, ErrUnsigned
	}
	m := tailRE.FindSubmatch(stored[i+len(marker):])
	if m == nil {
		return nil, nil, ErrMalformed
	}
	value, err := base64.StdEncoding.DecodeString(string(m[2]))
	if err != nil || len(value) != ed25519.SignatureSize {
		return nil, nil, ErrMalformed
	}
	payload = append(bytes.Clone(stored[:i]), '}')
	return payload, &Signature{Alg: Alg, KeyID: string(m[1]), Value: value}, nil
}

// Trust is the set of pinned public keys.
type Trust []PublicKey

// ParseTrust reads every text form; the error names the first bad one.
func ParseTrust(keys []string) (Trust, error) {
	var t Trust
	for i, k := range keys {
		p, err := ParsePublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("trust.public_keys[%d]: %w", i, err)
		}
		t = append(t, p)
	}
	return t, nil
}

// Find returns the pinned key with id.
func (t Trust) Find(id string) (PublicKey, bool) {
	for _, p := range t {
		if p.ID == id {
			return p, true
		}
	}
	return PublicKey{}, false
}

// Open checks the stored bytes' signature against the pinned keys and
// returns the signed payload and the key that signed it.
func (t Trust) Open(stored []byte) ([]byte, PublicKey, error) {
	payload, sig, err := Split(stored)
	if err != nil {
		return nil, PublicKey{}, err
	}
	p, ok := t.Find(sig.KeyID)
	if !ok {
		return nil, PublicKey{}, fmt.Errorf("%w (key id %s)", ErrUnknownKey, sig.KeyID)
	}
	if !ed25519.Verify(p.Key, payload, sig.Value) {
		return nil, PublicKey{}, fmt.Errorf("%w with pinned key %s: it was altered or forged", ErrBadSignature, p.ID)
	}
	return payload, p, nil
}

// Package sealed owns per-run backup passwords that nobody keeps on the host:
// a fresh random password for each export, sealed to one or more offline age
// recipients (X25519 public keys, e.g. a security team's offline keys) and
// stored beside the copy it opens.
//
// A sealed file is an age file whose plaintext is a small JSON envelope: the
// password and the copy it belongs to (file name, size, SHA-256), so that a
// sealed file put beside another copy is refused rather than tried. Anyone
// holding one of the recipients' identities opens it; the host that wrote it
// never can, because it holds only public keys.
package sealed

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"filippo.io/age"

	"github.com/keyescrow/keyescrow/internal/secret"
)

// Format names the envelope inside a sealed file.
const Format = "keyescrow-sealed-password/1"

// MaxSize bounds a sealed file read back from storage: an envelope is a few
// hundred bytes, plus about 200 bytes of age header per recipient.
const MaxSize = 64 << 10

// Sentinel errors; callers map them to exit codes with errors.Is.
var (
	// ErrNoIdentity: none of the given identities is a recipient of the
	// sealed file (a configuration problem: the wrong identity file).
	ErrNoIdentity = errors.New("none of the given identities can open the sealed password")
	// ErrCorrupt: the sealed file is not an intact age file or its envelope
	// is malformed (the stored bytes were altered or are not a sealed file).
	ErrCorrupt = errors.New("the sealed password file is damaged")
	// ErrMismatch: the envelope belongs to another copy than the one it was
	// found beside.
	ErrMismatch = errors.New("the sealed password belongs to another copy")
)

// Copy identifies the key copy a sealed password opens.
type Copy struct {
	// Name is the key file's name (as in the receipt's file.name).
	Name string `json:"name"`
	// Bytes is the key file's size.
	Bytes int64 `json:"bytes"`
	// SHA256 is the key file's SHA-256, lower-case hex.
	SHA256 string `json:"sha256"`
}

// envelope is the plaintext of a sealed file.
type envelope struct {
	Format   string `json:"format"`
	Copy     Copy   `json:"copy"`
	Password string `json:"password"`
}

// Seal encrypts password for every recipient, bound to c. Any one of the
// recipients' identities opens the result.
func Seal(password secret.Value, c Copy, recipients []age.Recipient) ([]byte, error) {
	if len(recipients) == 0 {
		return nil, errors.New("sealing the backup password: no recipient configured")
	}
	if password.Empty() {
		return nil, errors.New("sealing the backup password: the password is empty")
	}
	plain, err := json.Marshal(envelope{Format: Format, Copy: c, Password: password.Reveal()})
	if err != nil {
		return nil, fmt.Errorf("sealing the backup password: %w", err)
	}
	defer clear(plain)
	var out bytes.Buffer
	w, err := age.Encrypt(&out, recipients...)
	if err != nil {
		return nil, fmt.Errorf("sealing the backup password: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("sealing the backup password: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("sealing the backup password: %w", err)
	}
	return out.Bytes(), nil
}

// Open decrypts a sealed file with identities and checks that it belongs to
// want (every non-zero field of want must match). The error wraps
// ErrNoIdentity, ErrCorrupt or ErrMismatch and never contains the password.
func Open(data []byte, want Copy, identities []age.Identity) (secret.Value, Copy, error) {
	if len(identities) == 0 {
		return secret.Value{}, Copy{}, fmt.Errorf("%w: no identity given", ErrNoIdentity)
	}
	if len(data) > MaxSize {
		return secret.Value{}, Copy{}, fmt.Errorf("%w: %d bytes, more than a sealed password can be", ErrCorrupt, len(data))
	}
	r, err := age.Decrypt(bytes.NewReader(data), identities...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return secret.Value{}, Copy{}, fmt.Errorf("%w: it was sealed to other recipients", ErrNoIdentity)
		}
		return secret.Value{}, Copy{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	defer clear(plain)
	if err != nil {
		// age authenticates every chunk: altered ciphertext fails here.
		return secret.Value{}, Copy{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || env.Format != Format {
		return secret.Value{}, Copy{}, fmt.Errorf("%w: not a %s envelope", ErrCorrupt, Format)
	}
	if env.Password == "" {
		return secret.Value{}, Copy{}, fmt.Errorf("%w: the envelope holds no password", ErrCorrupt)
	}
	if err := matches(env.Copy, want); err != nil {
		return secret.Value{}, env.Copy, err
	}
	return secret.New(env.Password), env.Copy, nil
}

func matches(got, want Copy) error {
	switch {
	case want.Name != "" && got.Name != want.Name:
		return fmt.Errorf("%w: it was sealed for %s, not %s", ErrMismatch, got.Name, want.Name)
	case want.Bytes != 0 && got.Bytes != want.Bytes:
		return fmt.Errorf("%w: it was sealed for a file of %d bytes, not %d", ErrMismatch, got.Bytes, want.Bytes)
	case want.SHA256 != "" && !strings.EqualFold(got.SHA256, want.SHA256):
		return fmt.Errorf("%w: it was sealed for SHA-256 %s, not %s", ErrMismatch, got.SHA256, want.SHA256)
	}
	return nil
}

// ParseRecipients parses age X25519 recipients ("age1…"), one per entry.
// Blank entries and "#" comments are ignored; a bad entry is named by its
// position (recipients are public, so quoting them is harmless).
func ParseRecipients(lines []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		r, err := age.ParseX25519Recipient(l)
		if err != nil {
			return nil, fmt.Errorf("recipient %d (%q) is not an age X25519 public key (age1…): %w", i+1, l, err)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("no age recipient given: list at least one age1… public key")
	}
	return out, nil
}

// ParseIdentities reads age identities (AGE-SECRET-KEY-1…) as written by
// age-keygen or `keyescrow seal-keygen`. The error never quotes a line.
func ParseIdentities(r io.Reader) ([]age.Identity, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, err
	}
	defer clear(data)
	if len(data) > MaxSize {
		return nil, fmt.Errorf("more than %d bytes: not an age identity file", MaxSize)
	}
	if !utf8.Valid(data) {
		return nil, errors.New("not UTF-8 text: not an age identity file")
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		// age's parser can echo the offending line, which may be a secret.
		return nil, errors.New("not an age identity file: expected lines AGE-SECRET-KEY-1… (comments start with #)")
	}
	return ids, nil
}

// NewIdentity makes a new X25519 identity: the secret line to keep offline
// and the public recipient line to configure.
func NewIdentity() (secretKey secret.Value, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return secret.Value{}, "", err
	}
	return secret.New(id.String()), id.Recipient().String(), nil
}

// Password alphabets: every class SQL Server's policy counts, without
// characters that are easy to mistype or that shells and T-SQL treat
// specially (quotes, backslash, space), although the statement quoting would
// carry them.
const (
	upper  = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	lower  = "abcdefghijkmnopqrstuvwxyz"
	digits = "23456789"
	symbol = "!#%+,-.:=?@^_~"
)

// PasswordLength is the length of a generated password: 40 characters from
// a 71-character alphabet, about 245 bits.
const PasswordLength = 40

// NewPassword returns a random password that meets SQL Server's policy: all
// four character classes, PasswordLength characters, from crypto/rand.
func NewPassword() (secret.Value, error) {
	return newPassword(rand.Reader)
}

func newPassword(rnd io.Reader) (secret.Value, error) {
	all := upper + lower + digits + symbol
	buf := make([]byte, PasswordLength)
	defer clear(buf)
	for {
		for i := range buf {
			c, err := pick(rnd, all)
			if err != nil {
				return secret.Value{}, fmt.Errorf("generating the backup password: %w", err)
			}
			buf[i] = c
		}
		// Rejection sampling keeps the distribution uniform over the
		// passwords that hold every class; at 40 characters a retry is rare.
		if hasAll(buf) {
			return secret.New(string(buf)), nil
		}
	}
}

// pick returns a uniformly random byte of set, by rejection sampling.
func pick(rnd io.Reader, set string) (byte, error) {
	n := len(set)
	limit := 256 - 256%n
	var b [1]byte
	for {
		if _, err := io.ReadFull(rnd, b[:]); err != nil {
			return 0, err
		}
		if int(b[0]) < limit {
			return set[int(b[0])%n], nil
		}
	}
}

func hasAll(b []byte) bool {
	var u, l, d, s bool
	for _, c := range b {
		switch {
		case strings.IndexByte(upper, c) >= 0:
			u = true
		case strings.IndexByte(lower, c) >= 0:
			l = true
		case strings.IndexByte(digits, c) >= 0:
			d = true
		default:
			s = true
		}
	}
	return u && l && d && s
}

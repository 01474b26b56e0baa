package sealed

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
)

func identity(t *testing.T) (*age.X25519Identity, age.Recipient) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id, id.Recipient()
}

var copyA = Copy{Name: "SQL1-servicemasterkey-20261203T000000Z-abcd1234.key", Bytes: 180, SHA256: strings.Repeat("ab", 32)}

func TestSealedPasswordOpensWithAnyRecipientsIdentity(t *testing.T) {
	idA, rA := identity(t)
	idB, rB := identity(t)
	pw := secret.New("Str0ng!Passw0rd-" + t.Name())
	data, err := Seal(pw, copyA, []age.Recipient{rA, rB})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(pw.Reveal())) {
		t.Fatal("the sealed file carries the password in clear")
	}
	for name, id := range map[string]age.Identity{"first": idA, "second": idB} {
		got, c, err := Open(data, copyA, []age.Identity{id})
		if err != nil {
			t.Fatalf("%s recipient: %v", name, err)
		}
		if got.Reveal() != pw.Reveal() || c != copyA {
			t.Fatalf("%s recipient: got another password or copy %+v", name, c)
		}
	}
}

func TestOpeningFailsWithTheRightSentinel(t *testing.T) {
	id, r := identity(t)
	other, _ := identity(t)
	pw := secret.New("Str0ng!Passw0rd")
	data, err := Seal(pw, copyA, []age.Recipient{r})
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)-5] ^= 0x01
	truncated := data[:len(data)-20]
	cases := []struct {
		name string
		data []byte
		want Copy
		ids  []age.Identity
		err  error
	}{
		{name: "another identity cannot open it", data: data, want: copyA, ids: []age.Identity{other}, err: ErrNoIdentity},
		{name: "no identity at all is refused", data: data, want: copyA, ids: nil, err: ErrNoIdentity},
		{name: "a flipped byte of the payload is damage", data: flipped, want: copyA, ids: []age.Identity{id}, err: ErrCorrupt},
		{name: "a truncated file is damage", data: truncated, want: copyA, ids: []age.Identity{id}, err: ErrCorrupt},
		{name: "random bytes are damage", data: []byte("not an age file at all"), want: copyA, ids: []age.Identity{id}, err: ErrCorrupt},
		{name: "an envelope for another file name is a mismatch", data: data, want: Copy{Name: "other.key"}, ids: []age.Identity{id}, err: ErrMismatch},
		{name: "an envelope for another checksum is a mismatch", data: data, want: Copy{SHA256: strings.Repeat("cd", 32)}, ids: []age.Identity{id}, err: ErrMismatch},
		{name: "an envelope for another size is a mismatch", data: data, want: Copy{Bytes: 181}, ids: []age.Identity{id}, err: ErrMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := Open(tc.data, tc.want, tc.ids)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if !got.Empty() {
				t.Fatal("a failed open returned a password")
			}
			if strings.Contains(err.Error(), pw.Reveal()) {
				t.Fatal("the error carries the password")
			}
		})
	}
}

func TestAForeignAgeFileIsNotAnEnvelope(t *testing.T) {
	id, r := identity(t)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, `{"format":"something-else","password":"x"}`)
	w.Close()
	if _, _, err := Open(buf.Bytes(), Copy{}, []age.Identity{id}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

func TestGeneratedPasswordsMeetSQLServersPolicy(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		pw, err := NewPassword()
		if err != nil {
			t.Fatal(err)
		}
		if err := sqlserver.CheckPassword(pw); err != nil {
			t.Fatalf("generated password refused: %v", err)
		}
		if len(pw.Reveal()) != PasswordLength {
			t.Fatalf("length %d", len(pw.Reveal()))
		}
		if strings.ContainsAny(pw.Reveal(), "'\"\\ ") {
			t.Fatal("a generated password holds a quote, backslash or space")
		}
		if seen[pw.Reveal()] {
			t.Fatal("the same password twice")
		}
		seen[pw.Reveal()] = true
	}
}

func TestPasswordGenerationFailsWhenRandomnessFails(t *testing.T) {
	if _, err := newPassword(strings.NewReader("short")); err == nil {
		t.Fatal("a failing random source gave a password")
	}
}

func TestPickIsUniform(t *testing.T) {
	// Every byte value 0..255 once: rejection sampling must give each
	// character of a 71-letter alphabet exactly 3 times (256-256%71 = 213).
	all := upper + lower + digits + symbol
	src := make([]byte, 256)
	for i := range src {
		src[i] = byte(i)
	}
	counts := map[byte]int{}
	r := bytes.NewReader(src)
	for range 213 {
		c, err := pick(r, all)
		if err != nil {
			t.Fatal(err)
		}
		counts[c]++
	}
	for i := 0; i < len(all); i++ {
		if counts[all[i]] != 3 {
			t.Fatalf("%q drawn %d times, want 3", all[i], counts[all[i]])
		}
	}
}

func TestRecipientsAndIdentitiesParse(t *testing.T) {
	sk, rcpt, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ParseRecipients([]string{"# security team", "", rcpt})
	if err != nil || len(rs) != 1 {
		t.Fatalf("ParseRecipients: %v %d", err, len(rs))
	}
	if _, err := ParseRecipients([]string{"age1notakey"}); err == nil || !strings.Contains(err.Error(), "recipient 1") {
		t.Fatalf("a bad recipient: %v", err)
	}
	if _, err := ParseRecipients(nil); err == nil {
		t.Fatal("no recipient accepted")
	}
	ids, err := ParseIdentities(strings.NewReader("# created by a test\n" + sk.Reveal() + "\n"))
	if err != nil || len(ids) != 1 {
		t.Fatalf("ParseIdentities: %v", err)
	}
	secretLine := "AGE-SECRET-KEY-1NOTVALIDBUTSECRETLOOKING"
	_, err = ParseIdentities(strings.NewReader(secretLine + "\n"))
	if err == nil || strings.Contains(err.Error(), secretLine) {
		t.Fatalf("a bad identity file: %v (must fail without quoting the line)", err)
	}
	data, err := Seal(secret.New("Str0ng!Passw0rd"), copyA, rs)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(data, copyA, ids); err != nil {
		t.Fatal(err)
	}
}

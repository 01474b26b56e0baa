package sign

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/testutil"
)

func newKey(t *testing.T) (string, PublicKey) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signing.key")
	pub, err := CreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, pub
}

func loadKey(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const payload = "{\n  \"status\": \"proven\",\n  \"run_id\": \"0123456789abcdef\",\n  \"note\": \"a \\\",\\\"signature\\\": inside a string\"\n}"

func TestASealedReceiptIsOneJSONObjectWhosePayloadAndSignatureSplitBack(t *testing.T) {
	path, pub := newKey(t)
	priv, err := ParsePrivateKey(loadKey(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if Public(priv).String() != pub.String() {
		t.Fatalf("the key file's public half %s differs from the one returned %s", Public(priv), pub)
	}
	stored, err := Seal(priv, []byte(payload+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(stored, &doc); err != nil {
		t.Fatalf("the stored receipt is not JSON: %v\n%s", err, stored)
	}
	if doc["status"] != "proven" || doc["signature"].(map[string]any)["key_id"] != pub.ID {
		t.Fatalf("stored members: %v", doc)
	}
	got, p, err := Trust{pub}.Open(stored)
	if err != nil || string(got) != payload || p.ID != pub.ID {
		t.Fatalf("Open: %v, key %s\n%s", err, p.ID, got)
	}
}

func TestEveryAlterationOfASignedReceiptIsCaught(t *testing.T) {
	path, pub := newKey(t)
	priv, _ := ParsePrivateKey(loadKey(t, path))
	stored, _ := Seal(priv, []byte(payload))
	_, other := newKey(t)
	cases := []struct {
		name  string
		bytes []byte
		trust Trust
		want  error
	}{
		{"a changed byte in the payload", bytes.Replace(stored, []byte("0123"), []byte("0124"), 1), Trust{pub}, ErrBadSignature},
		{"a member appended after the signature", bytes.Replace(stored, []byte("}}\n"), []byte(`},"status":"ok"}`), 1), Trust{pub}, ErrMalformed},
		{"a key that is not pinned", stored, Trust{other}, ErrUnknownKey},
		{"no signature at all", []byte(payload), Trust{pub}, ErrUnsigned},
		{"a truncated signature", bytes.Replace(stored, []byte("==\"}}"), []byte("\"}}"), 1), Trust{pub}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := c.trust.Open(c.bytes); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if _, _, err := (Trust{other, pub}).Open(stored); err != nil {
		t.Fatalf("with two pinned keys (rotation) the right one is found: %v", err)
	}
}

func TestCreateKeyIsCreateOnlyOwnerOnlyAndRefusesASharedFolder(t *testing.T) {
	path, _ := newKey(t)
	before := loadKey(t, path)
	if _, err := CreateKey(path); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("a second CreateKey over the file: %v", err)
	}
	if !bytes.Equal(before, loadKey(t, path)) {
		t.Fatal("the key file changed")
	}
	if runtime.GOOS == "windows" {
		return
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(shared, 0o777)
	if _, err := CreateKey(filepath.Join(shared, "k")); err == nil || !strings.Contains(err.Error(), "written by other users") {
		t.Fatalf("CreateKey in a 0777 folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(shared, "k")); !os.IsNotExist(err) {
		t.Fatal("a key was written into the shared folder")
	}
}

func TestParsePublicKeyNamesWhatIsWrong(t *testing.T) {
	_, pub := newKey(t)
	if p, err := ParsePublicKey(" " + pub.String() + "\n"); err != nil || p.ID != pub.ID {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{"", "ssh-ed25519 AAAA", "ed25519:" + base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParsePrivateKey([]byte("-----BEGIN PRIVATE KEY-----\nMC4=\n-----END PRIVATE KEY-----\n")); err == nil {
		t.Error("a bad private key accepted")
	}
}

// TestAThirdPartyVerifiesWithOpenSSL follows docs/security.md by hand:
// split with Python, verify with openssl pkeyutl.
func TestAThirdPartyVerifiesWithOpenSSL(t *testing.T) {
	for _, tool := range []string{"openssl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Skip(t, "%s is not installed", tool)
		}
	}
	dir := t.TempDir()
	path, pub := newKey(t)
	priv, _ := ParsePrivateKey(loadKey(t, path))
	stored, _ := Seal(priv, []byte(payload))
	rec := filepath.Join(dir, "x.receipt.json")
	if err := os.WriteFile(rec, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `set -e
cd "$1"
python3 - x.receipt.json <<'PY'
import base64, json, sys
data = open(sys.argv[1], "rb").read()
i = data.rindex(b',"signature":')
open("payload.bin", "wb").write(data[:i] + b"}")
sig = json.loads(data[i + len(b',"signature":'):].rstrip(b"\n")[:-1])
open("sig.bin", "wb").write(base64.b64decode(sig["value"]))
PY
{ printf '\060\052\060\005\006\003\053\145\160\003\041\000'; printf '%s' "${2#ed25519:}" | base64 -d; } > pub.der
openssl pkey -pubin -inform DER -in pub.der -out pub.pem
openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in payload.bin -sigfile sig.bin
`
	out, err := exec.Command("bash", "-c", script, "bash", dir, pub.String()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	// And the same steps reject an altered receipt.
	if err := os.WriteFile(rec, bytes.Replace(stored, []byte("proven"), []byte("proveN"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-c", script, "bash", dir, pub.String()).CombinedOutput(); err == nil {
		t.Fatalf("openssl verified an altered receipt:\n%s", out)
	}
}

package escrow

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/sign"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// These tests play someone who holds the agent's own write credentials
// (PutObject and nothing more) against an archive whose receipts are signed.

// signWith makes the runner sign with a new key and pin it; it returns the
// key.
func (a *archive) signWith() ed25519.PrivateKey {
	a.t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		a.t.Fatal(err)
	}
	a.runner.Signer = priv
	a.runner.Trust = sign.Trust{sign.Public(priv)}
	return priv
}

// forge stores content under name as host SQLA's copy at time at, with a
// receipt made to look like keyescrow's, signed by signer when not nil.
// It returns the forged copy's version id.
func (a *archive) forge(b storage.Backend, dest, name string, at time.Time, content string, signer ed25519.PrivateKey) string {
	a.t.Helper()
	a.now = at
	prefix := memPrefix
	if dest == fileName {
		prefix = ""
	}
	key := objectKey(prefix, "SQLA", "MSSQLSERVER", receipt.KindServiceMasterKey, name)
	opts := storage.PutOptions{SHA256: sha(a.t, content)}
	if b.Capabilities().Retention {
		opts.Retention = &storage.Retention{Mode: "COMPLIANCE", Until: at.Add(30 * 24 * time.Hour)}
	}
	obj, err := b.Put(testContext(a.t), key, []byte(content), opts)
	if err != nil {
		a.t.Fatal(err)
	}
	a.forgeReceipt(b, dest, key, obj.VersionID, content, signer)
	return obj.VersionID
}

func (a *archive) forgeReceipt(b storage.Backend, dest, key, versionID, content string, signer ed25519.PrivateKey) {
	a.t.Helper()
	rec := &receipt.Receipt{Tool: "keyescrow", Version: "test", RunID: "f0f0f0f0f0f0f0f0", Host: "SQLA", Instance: "MSSQLSERVER",
		Kind: receipt.KindServiceMasterKey, StartedAt: a.now, File: &receipt.File{Name: filepath.Base(key), Bytes: int64(len(content)), SHA256: sum(content)},
		Destinations: []receipt.Destination{{Name: dest, Location: b.Location(key), VersionID: versionID, Status: receipt.DestVerified}}}
	doc, err := rec.Stored(a.now).JSON()
	if err != nil {
		a.t.Fatal(err)
	}
	if signer != nil {
		if doc, err = sign.Seal(signer, doc); err != nil {
			a.t.Fatal(err)
		}
	}
	if _, err := b.Put(testContext(a.t), key+receiptSuffix, doc, storage.PutOptions{SHA256: sha(a.t, string(doc))}); err != nil {
		a.t.Fatal(err)
	}
}

func (a *archive) restore(opts RestoreOptions) (*receipt.Receipt, []byte, error) {
	a.t.Helper()
	opts.Out = filepath.Join(a.t.TempDir(), "restored.key")
	opts.Filter = Filter{Host: "SQLA"}
	rec, err := a.runner.Restore(testContext(a.t), opts)
	got, _ := os.ReadFile(opts.Out)
	return rec, got, err
}

func skippedReasons(ss []receipt.Skipped) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Reason)
	}
	return strings.Join(out, ",")
}

func TestASignedArchiveVerifiesAndAuthenticatesEveryCopy(t *testing.T) {
	a := newArchive(t, 30)
	priv := a.signWith()
	a.put("SQLA", "MSSQLSERVER", testNow, "one")
	a.put("SQLA", "MSSQLSERVER", testNow.Add(time.Hour), "two")
	a.now = testNow.Add(2 * time.Hour)

	// The stored receipt is signed: a third party splits and verifies it.
	var key string
	for _, c := range a.list(ListOptions{Destination: memName}) {
		if !c.Authenticated || c.KeyID != sign.Public(priv).ID || c.SHA256 == "" || c.Note != "" {
			t.Errorf("listed %+v, want authenticated by %s", c, sign.Public(priv).ID)
		}
		key = c.Key
	}
	doc := a.memRead(key + receiptSuffix)
	for _, form := range []string{base64.StdEncoding.EncodeToString(priv.Seed()), base64.StdEncoding.EncodeToString(priv), hex.EncodeToString(priv.Seed())} {
		if strings.Contains(string(doc), form) || strings.Contains(a.logs.String(), form) {
			t.Fatal("the private key appears in the stored receipt or the log")
		}
	}
	payload, pk, err := a.runner.Trust.Open(doc)
	if err != nil || pk.ID != sign.Public(priv).ID || !strings.Contains(string(payload), `"status": "proven"`) {
		t.Fatalf("the stored receipt does not verify: %v\n%s", err, doc)
	}

	aud, err := a.verify(VerifyOptions{Filter: Filter{Host: "SQLA"}})
	if err != nil || !aud.ReceiptsAuthenticated {
		t.Fatalf("verify: %v, authenticated %v", err, aud.ReceiptsAuthenticated)
	}
	for _, d := range aud.Destinations {
		for _, c := range d.Groups[0].Checked {
			if !c.Authenticated || c.Status != receipt.DestVerified {
				t.Errorf("%s: %+v", d.Name, c)
			}
		}
	}

	// Another pinned key only (the signing key was rotated away): nothing
	// counts (the host is unproven: exit 8, the largest), and a signature
	// by an unknown key is evidence (exit 6, named).
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	a.runner.Trust = sign.Trust{sign.Public(other)}
	if _, err := a.verify(VerifyOptions{Filter: Filter{Host: "SQLA"}}); exitcode.Code(err) != exitcode.Stale || !strings.Contains(err.Error(), "not in trust.public_keys") {
		t.Errorf("verify with a wrong pinned key: %v, want exit 8 naming the unknown key", err)
	}
	// Both pinned (a rotation): good again.
	a.runner.Trust = sign.Trust{sign.Public(other), sign.Public(priv)}
	if _, err := a.verify(VerifyOptions{Filter: Filter{Host: "SQLA"}}); err != nil {
		t.Errorf("verify with both keys pinned: %v", err)
	}
}

func TestAForgedNewerCopyIsNotCountedAndRestoreFallsBackToTheGenuineOne(t *testing.T) {
	for _, dest := range []string{memName, fileName} {
		t.Run(dest, func(t *testing.T) {
			a := newArchive(t, 30)
			a.signWith()
			a.put("SQLA", "MSSQLSERVER", testNow, "genuine")
			b := a.mem
			var backend storage.Backend = b
			if dest == fileName {
				backend = a.file
			}
			_ = b
			// A newer key with an unsigned receipt, and one signed by the
			// forger's own key.
			a.forge(backend, dest, "SQLA-servicemasterkey-20261128T050000Z-0badc0de.key", testNow.Add(time.Hour), "forged-unsigned", nil)
			_, forgerKey, _ := ed25519.GenerateKey(rand.Reader)
			a.forge(backend, dest, "SQLA-servicemasterkey-20261128T060000Z-0badf00d.key", testNow.Add(2*time.Hour), "forged-signed", forgerKey)
			a.now = testNow.Add(3 * time.Hour)

			aud, err := a.verify(VerifyOptions{Destination: dest, Filter: Filter{Host: "SQLA"}})
			if exitcode.Code(err) != exitcode.Verify || !strings.Contains(err.Error(), "0badc0de") || !strings.Contains(err.Error(), "0badf00d") {
				t.Fatalf("verify: %v, want exit 6 naming both forged copies", err)
			}
			g := aud.Destinations[0].Groups[0]
			if len(g.Checked) != 1 || g.Checked[0].Status != receipt.DestVerified || skippedReasons(g.Skipped) != "forged,unauthenticated" {
				t.Errorf("checked %+v skipped %+v", g.Checked, g.Skipped)
			}

			rec, got, err := a.restore(RestoreOptions{Destination: dest})
			if err != nil || string(got) != "genuine" {
				t.Fatalf("restore: %v, wrote %q, want the genuine bytes", err, got)
			}
			if !rec.Restore.Authenticated || skippedReasons(rec.Restore.Skipped) != "forged,unauthenticated" {
				t.Errorf("restore receipt %+v", rec.Restore)
			}
			if !strings.Contains(a.logs.String(), "fell back past 2 newer copies") {
				t.Errorf("restore does not say it fell back:\n%s", a.logs.String())
			}

			// Named explicitly, the unsigned copy is used, loudly.
			list := a.list(ListOptions{Destination: dest})
			if dest == memName {
				_, got, err = a.restore(RestoreOptions{Destination: dest, VersionID: list[1].VersionID})
				if err != nil || string(got) != "forged-unsigned" || !strings.Contains(a.logs.String(), "names a copy whose receipt is not authenticated") {
					t.Errorf("restore --version-id of the unsigned copy: %v, %q", err, got)
				}
			}
		})
	}
}

func TestAForgedVersionOfAKeyAndOfItsReceiptIsCaught(t *testing.T) {
	a := newArchive(t, 30)
	a.signWith()
	a.put("SQLA", "MSSQLSERVER", testNow, "genuine")
	c := a.list(ListOptions{Destination: memName})[0]
	a.now = testNow.Add(time.Hour)
	// Someone who can write a new version under the same names: a delete
	// marker first, as the in-memory store is create-only, then the forgery.
	for _, k := range []string{c.Key, c.Key + receiptSuffix} {
		if err := a.mem.Delete(testContext(t), k, "", false); err != nil {
			t.Fatal(err)
		}
	}
	obj, err := a.mem.Put(testContext(t), c.Key, []byte("forged"), storage.PutOptions{SHA256: sha(t, "forged")})
	if err != nil {
		t.Fatal(err)
	}
	a.forgeReceipt(a.mem, memName, c.Key, obj.VersionID, "forged", nil)
	var forgedReceipt string
	if err := a.mem.List(testContext(t), c.Key+receiptSuffix, func(o storage.Object) error {
		if o.IsLatest && !o.DeleteMarker {
			forgedReceipt = o.VersionID
		}
		return nil
	}); err != nil || forgedReceipt == "" {
		t.Fatal(err)
	}

	_, got, err := a.restore(RestoreOptions{Destination: memName})
	if err != nil || string(got) != "genuine" {
		t.Fatalf("restore: %v, wrote %q, want the genuine bytes", err, got)
	}
	aud, err := a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: "SQLA"}})
	if exitcode.Code(err) != exitcode.Verify || !strings.Contains(err.Error(), forgedReceipt) || !strings.Contains(err.Error(), obj.VersionID) {
		t.Fatalf("verify: %v, want exit 6 naming the forged receipt version %s and key version %s", err, forgedReceipt, obj.VersionID)
	}
	if g := aud.Destinations[0].Groups[0]; len(g.Checked) != 1 || g.Checked[0].VersionID != c.VersionID || g.Checked[0].Status != receipt.DestVerified {
		t.Errorf("the genuine version is what is checked: %+v", g.Checked)
	}
}

func TestUnfinishedCopiesAreWarningsUnlessTheyAreAllThereIs(t *testing.T) {
	a := newArchive(t, 30)
	a.signWith()
	a.put("SQLA", "MSSQLSERVER", testNow, "genuine")
	a.now = testNow.Add(time.Hour)
	key := objectKey(memPrefix, "SQLA", "MSSQLSERVER", receipt.KindServiceMasterKey, "SQLA-servicemasterkey-20261128T050000Z-5eed5eed.key")
	if _, err := a.mem.Put(testContext(t), key, []byte("died"), storage.PutOptions{SHA256: sha(t, "died")}); err != nil {
		t.Fatal(err)
	}
	aud, err := a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: "SQLA"}})
	if err != nil {
		t.Fatalf("verify: %v, want 0: a genuine copy is fresh and the other only unfinished", err)
	}
	g := aud.Destinations[0].Groups[0]
	if skippedReasons(g.Skipped) != "unfinished" || g.Skipped[0].RunID != "5eed5eed" || !strings.Contains(strings.Join(g.Warnings, " "), "5eed5eed") {
		t.Errorf("skipped %+v warnings %v", g.Skipped, g.Warnings)
	}
	// A delete marker over the genuine key is reported, and the copy still
	// counts (it is read by version id).
	c := a.list(ListOptions{Destination: memName})[1]
	if err := a.mem.Delete(testContext(t), c.Key, "", false); err != nil {
		t.Fatal(err)
	}
	aud, err = a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: "SQLA"}})
	g = aud.Destinations[0].Groups[0]
	if err != nil || !strings.Contains(strings.Join(g.Warnings, " "), "a delete marker hides") {
		t.Errorf("verify after a delete marker: %v, warnings %v", err, g.Warnings)
	}
	// And one over its receipt: reported, the receipt still read by version.
	if err := a.mem.Delete(testContext(t), c.Key+receiptSuffix, "", false); err != nil {
		t.Fatal(err)
	}
	aud, err = a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: "SQLA"}})
	g = aud.Destinations[0].Groups[0]
	if err != nil || !strings.Contains(strings.Join(g.Warnings, " "), "a delete marker hides the receipt") || len(g.Checked) != 1 || g.Checked[0].Status != receipt.DestVerified {
		t.Errorf("verify after a delete marker over the receipt: %v, warnings %v, checked %+v", err, g.Warnings, g.Checked)
	}
	if _, got, err := a.restore(RestoreOptions{Destination: memName}); err != nil || string(got) != "genuine" {
		t.Errorf("restore under delete markers: %v, %q", err, got)
	}

	// Only an unfinished copy: the host is unproven (stale), not corrupt;
	// restore has nothing genuine to write.
	b := newArchive(t, 30)
	b.signWith()
	if _, err := b.mem.Put(testContext(t), key, []byte("died"), storage.PutOptions{SHA256: sha(t, "died")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: "SQLA"}}); exitcode.Code(err) != exitcode.Stale {
		t.Errorf("verify with only an unfinished copy: %v, want exit 8", err)
	}
	rec, got, err := b.restore(RestoreOptions{Destination: memName})
	if exitcode.Code(err) != exitcode.Verify || got != nil || !strings.Contains(err.Error(), "none of the 1 copies") || skippedReasons(rec.Restore.Skipped) != "unfinished" {
		t.Errorf("restore with only an unfinished copy: %v, wrote %q, skipped %+v", err, got, rec.Restore.Skipped)
	}
}

func TestWithoutPinnedKeysReceiptsAreTakenOnTrustAndSaySo(t *testing.T) {
	a := newArchive(t, 30)
	a.put("SQLA", "MSSQLSERVER", testNow, "genuine")
	a.forge(a.mem, memName, "SQLA-servicemasterkey-20261128T050000Z-0badc0de.key", testNow.Add(time.Hour), "forged", nil)
	a.now = testNow.Add(2 * time.Hour)
	aud, err := a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: "SQLA"}})
	if err != nil || aud.ReceiptsAuthenticated {
		t.Fatalf("verify: %v, authenticated %v", err, aud.ReceiptsAuthenticated)
	}
	rec, got, err := a.restore(RestoreOptions{Destination: memName})
	if err != nil || string(got) != "forged" || rec.Restore.Authenticated {
		t.Fatalf("restore: %v %q: without pinned keys a well-made forgery is what it looks like", err, got)
	}
	if !strings.Contains(a.logs.String(), "receipts are not authenticated") {
		t.Errorf("no warning that receipts are not authenticated:\n%s", a.logs.String())
	}
}

func TestTheStoredReceiptNeverReadsAsASuccessfulRunThatFailed(t *testing.T) {
	e := newEnv(t)
	// The key copy at the memory destination is proven; storing its receipt
	// then fails. The folder's receipt is stored meanwhile.
	puts := 0
	e.mem.Hook("put", func() {
		if puts++; puts == 1 {
			e.mem.Inject("put", storage.ErrUnavailable, 1)
		}
	})
	rec, err := e.backup()
	if exitcode.Code(err) != exitcode.Transfer || rec.Status != receipt.StatusFailed {
		t.Fatalf("backup: %v, status %s; want exit 5", err, rec.Status)
	}
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("the sentinel is lost: %v", err)
	}
	doc := mustReadFile(t, e.fileDir, receiptKey(e.fileKey()))
	assertStoredClaimsNoMore(t, doc, "")
	if strings.Contains(string(doc), `"ok"`) {
		t.Errorf("the stored receipt says ok somewhere:\n%s", doc)
	}
}

func (a *archive) memRead(key string) []byte {
	a.t.Helper()
	rc, err := a.mem.Open(testContext(a.t), key, "")
	if err != nil {
		a.t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		a.t.Fatal(err)
	}
	return b
}

func TestDestinationsHoldingOneRunsCopyMustAgree(t *testing.T) {
	a := newArchive(t, 30)
	a.put("SQLA", "MSSQLSERVER", testNow, "genuine")
	a.now = testNow.Add(time.Hour)
	// At the folder (which keeps no versions) someone replaces the copy
	// and its receipt consistently: on its own, the folder's copy verifies.
	c := a.list(ListOptions{Destination: fileName})[0]
	path := filepath.Join(a.dir, "usb", filepath.FromSlash(c.Key))
	var doc map[string]any
	raw, err := os.ReadFile(path + receiptSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc["file"].(map[string]any)["sha256"] = sum("replaced")
	doc["file"].(map[string]any)["bytes"] = len("replaced")
	out, _ := json.MarshalIndent(doc, "", "  ")
	for p, data := range map[string][]byte{path: []byte("replaced"), path + receiptSuffix: out} {
		_ = os.Chmod(p, 0o600)
		if err := os.WriteFile(p, data, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.verify(VerifyOptions{Destination: fileName, Filter: Filter{Host: "SQLA"}}); err != nil {
		t.Fatalf("the folder alone: %v", err)
	}
	aud, err := a.verify(VerifyOptions{Filter: Filter{Host: "SQLA"}})
	if exitcode.Code(err) != exitcode.Verify || !strings.Contains(err.Error(), "disagree") || aud.Error == nil {
		t.Fatalf("verify of both destinations: %v, want exit 6: the copies of one run disagree", err)
	}
}

func TestCopiesFromBeforeSigningAreWarningsNotEvidence(t *testing.T) {
	a := newArchive(t, 30)
	a.put("SQLA", "MSSQLSERVER", testNow, "before signing")
	a.signWith()
	a.put("SQLA", "MSSQLSERVER", testNow.Add(time.Hour), "signed")
	a.now = testNow.Add(2 * time.Hour)
	aud, err := a.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: "SQLA"}, Copies: 3})
	g := aud.Destinations[0].Groups[0]
	if err != nil || skippedReasons(g.Skipped) != "unauthenticated" || g.Skipped[0].Evidence || len(g.Checked) != 1 {
		t.Fatalf("verify: %v, skipped %+v", err, g.Skipped)
	}
	// Before the first signed copy exists, the unsigned one leaves the
	// host unproven (stale), not forged.
	b := newArchive(t, 30)
	b.put("SQLA", "MSSQLSERVER", testNow, "before signing")
	b.signWith()
	if _, err := b.verify(VerifyOptions{Destination: memName, Filter: Filter{Host: "SQLA"}}); exitcode.Code(err) != exitcode.Stale {
		t.Errorf("verify with only unsigned copies: %v, want exit 8", err)
	}
}

package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/storage/azstore"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// These tests attack the archive the way someone holding the agent's own
// write credentials could (PutObject / Put Blob, nothing more), with
// receipts signed and the public key pinned.

// initKey runs keyescrow init-key into a new owner-only folder and returns
// the public key line and the key file. The private key never appears in
// any output, this run's or a later one's.
func (e *env) initKey(name string) (pub, keyFile string) {
	e.t.Helper()
	dir := filepath.Join(e.root, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	keyFile = filepath.Join(dir, "signing.key")
	r := e.run("init-key", "--out", keyFile)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "ed25519:") {
		e.t.Fatalf("init-key: exit %d, want one public key line on stdout\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	body, err := os.ReadFile(keyFile)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			e.secrets = append(e.secrets, l)
		}
	}
	e.assertNoSecrets(r)
	return lines[0], keyFile
}

// pin adds signing and trust to the config file.
func (e *env) pin(keyFile string, pubs ...string) {
	e.t.Helper()
	f, err := os.OpenFile(e.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	q := make([]string, len(pubs))
	for i, p := range pubs {
		q[i] = fmt.Sprintf("%q", p)
	}
	if keyFile != "" {
		fmt.Fprintf(f, "signing:\n  key_file: %q\n", keyFile)
	}
	fmt.Fprintf(f, "trust:\n  public_keys: [%s]\n", strings.Join(q, ", "))
}

func TestInitKeyCreatesAPinnableKeyAndAWrongPinFails(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	pub, keyFile := e.initKey("etc")
	if fi, _ := os.Stat(keyFile); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(keyFile)
	if r := e.run("init-key", "--out", keyFile); r.code != 2 || !strings.Contains(r.stderr, "exists already") {
		t.Errorf("init-key over an existing key: exit %d\n%s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(keyFile); !bytes.Equal(before, after) {
		t.Fatal("init-key changed an existing key")
	}
	shared := filepath.Join(e.root, "shared")
	_ = os.Mkdir(shared, 0o777)
	_ = os.Chmod(shared, 0o777)
	if r := e.run("init-key", "--out", filepath.Join(shared, "k")); r.code != 2 || !strings.Contains(r.stderr, "written by other users") {
		t.Errorf("init-key into a 0777 folder: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(shared, "k")); !os.IsNotExist(err) {
		t.Error("a key was written into a folder others can write")
	}
	if r := e.run("init-key"); r.code != 2 || !strings.Contains(r.stderr, "--out") {
		t.Errorf("init-key without --out: exit %d\n%s", r.code, r.stderr)
	}

	// The line round-trips into trust.public_keys: check proves it,
	// archive signs, verify authenticates.
	e.pin(keyFile, pub)
	r := e.run("check", "--config", e.cfgPath, "--json")
	var rep struct {
		Signing struct {
			Status    string `json:"status"`
			KeyID     string `json:"key_id"`
			PublicKey string `json:"public_key"`
		} `json:"signing"`
	}
	_ = json.Unmarshal([]byte(r.stdout), &rep)
	if r.code != 0 || rep.Signing.Status != "ok" || rep.Signing.PublicKey != pub {
		t.Fatalf("check: exit %d, signing %+v\n%s\n%s", r.code, rep.Signing, r.stdout, r.stderr)
	}
	in := filepath.Join(e.root, "smk.key")
	if err := os.WriteFile(in, []byte("opaque key bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.run("archive", "--config", e.cfgPath, "--json", "--host", "SQLHOST07", in)
	if r.code != 0 {
		t.Fatalf("archive: exit %d\n%s", r.code, r.stderr)
	}
	rec := parseReceipt(t, r.stdout)
	doc, _ := os.ReadFile(rec.Destinations[0].Location + ".receipt.json")
	if st := parseStored(t, string(doc)); st.Signature == nil || st.Signature.KeyID != rep.Signing.KeyID {
		t.Fatalf("the stored receipt is not signed by the key: %s", doc)
	}
	r = e.run("verify", "--config", e.cfgPath, "--json", "--host", "SQLHOST07")
	var a auditDoc
	decodeStrict(t, r.stdout, &a)
	if r.code != 0 || !a.ReceiptsAuthenticated || !a.Destinations[0].Groups[0].Checked[0].Authenticated {
		t.Fatalf("verify: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// A key file others can read is refused.
	if runtime.GOOS != "windows" {
		_ = os.Chmod(keyFile, 0o644)
		if r := e.run("archive", "--config", e.cfgPath, "--host", "SQLHOST07", in); r.code != 2 || !strings.Contains(r.stderr, "chmod 600") {
			t.Errorf("archive with a 0644 key: exit %d\n%s", r.code, r.stderr)
		}
		_ = os.Chmod(keyFile, 0o600)
	}

	// The key from a variable (CI): the same signature, nothing printed.
	pem, _ := os.ReadFile(keyFile)
	e.vars["KEYESCROW_TEST_SIGNING_PEM"] = string(pem)
	e.writeConfig(fmt.Sprintf("signing:\n  key_env: KEYESCROW_TEST_SIGNING_PEM\ntrust:\n  public_keys: [%q]\n", pub))
	r = e.run("archive", "--config", e.cfgPath, "--json", "--host", "SQLHOST07", "--log-level", "debug", in)
	if r.code != 0 {
		t.Fatalf("archive with signing.key_env: exit %d\n%s", r.code, r.stderr)
	}
	doc, _ = os.ReadFile(parseReceipt(t, r.stdout).Destinations[0].Location + ".receipt.json")
	if st := parseStored(t, string(doc)); st.Signature == nil || st.Signature.KeyID != rep.Signing.KeyID {
		t.Fatalf("the stored receipt is not signed by the key from the variable: %s", doc)
	}

	// A wrong pinned key: check refuses the signing key, verify counts
	// nothing and names the unknown key.
	other, _ := e.initKey("etc2")
	e.writeConfig("")
	e.pin(keyFile, other)
	if r := e.run("check", "--config", e.cfgPath); r.code != 2 || !strings.Contains(r.stderr, "not in trust.public_keys") {
		t.Errorf("check with a wrong pin: exit %d\n%s", r.code, r.stderr)
	}
	if r := e.run("archive", "--config", e.cfgPath, "--host", "SQLHOST07", in); r.code != 2 || !strings.Contains(r.stderr, "would not count") {
		t.Errorf("archive signing with a key that is not pinned: exit %d, want 2 before writing\n%s", r.code, r.stderr)
	}
	r = e.run("verify", "--config", e.cfgPath, "--json", "--host", "SQLHOST07")
	if r.code == 0 || !strings.Contains(r.stdout, "not in trust.public_keys") {
		t.Errorf("verify with a wrong pin: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// forger writes with the agent's own credentials.
type forger interface {
	// put stores data under key (a new version where the service keeps
	// versions) and returns its version id.
	put(t *testing.T, key string, data []byte) string
	get(t *testing.T, key string) []byte
	// key returns the object key of a location.
	key(location string) string
}

type s3Forger struct {
	c      *s3.Client
	bucket string
}

func (f s3Forger) put(t *testing.T, key string, data []byte) string {
	t.Helper()
	out, err := f.c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(key),
		Body: bytes.NewReader(data), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		t.Fatalf("forging %s: %v", key, err)
	}
	return aws.ToString(out.VersionId)
}

func (f s3Forger) get(t *testing.T, key string) []byte {
	t.Helper()
	out, err := f.c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	return b
}

func (f s3Forger) key(location string) string {
	return strings.TrimPrefix(location, "s3://"+f.bucket+"/")
}

type azForger struct {
	c    *container.Client
	name string
}

func (f azForger) put(t *testing.T, key string, data []byte) string {
	t.Helper()
	out, err := f.c.NewBlockBlobClient(key).UploadBuffer(context.Background(), data, nil)
	if err != nil {
		t.Fatalf("forging %s: %v", key, err)
	}
	return aws.ToString(out.VersionID)
}

func (f azForger) get(t *testing.T, key string) []byte { t.Helper(); return download(t, f.c, key) }

func (f azForger) key(location string) string {
	_, k, _ := strings.Cut(location, "/"+f.name+"/")
	return k
}

// forgeReceipt turns a genuine stored receipt into one for another copy,
// as a forger can: the signature dropped (it cannot make a valid one).
func forgeReceipt(t *testing.T, genuine []byte, location, versionID string, content []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(genuine, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "signature")
	sum := sha256.Sum256(content)
	m["file"] = map[string]any{"name": path.Base(location), "bytes": len(content), "sha256": fmt.Sprintf("%x", sum)}
	d := m["destinations"].([]any)[0].(map[string]any)
	d["location"], d["version_id"] = location, versionID
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func reasons(ss []skipped) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Reason)
	}
	return out
}

// forgeryScenario: a genuine signed copy, then (c) a copy whose run died
// after the write, (a) a newer forged key with a forged receipt under a new
// name and, where the service keeps versions, (b) a forged new version of
// the genuine key and of its receipt.
func forgeryScenario(t *testing.T, e *env, f forger, versioned bool) {
	pub, keyFile := e.initKey("etc")
	e.pin(keyFile, pub)
	const host = "SQLHOST07"
	promFile := filepath.Join(e.root, "keyescrow.prom")
	e.vars["KEYESCROW_METRICS_FILE"] = promFile
	metric := func(name string) string {
		t.Helper()
		prom, _ := os.ReadFile(promFile)
		for _, l := range strings.Split(string(prom), "\n") {
			if strings.HasPrefix(l, name+"{") {
				return l[strings.LastIndex(l, " ")+1:]
			}
		}
		return "absent"
	}
	genuine := make([]byte, 150)
	_, _ = rand.Read(genuine)
	in := filepath.Join(e.root, "smk.key")
	if err := os.WriteFile(in, genuine, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run("archive", "--config", e.cfgPath, "--json", "--host", host, "--instance", "MSSQLSERVER", in)
	if r.code != 0 {
		t.Fatalf("archive: exit %d\n%s", r.code, r.stderr)
	}
	rec := parseReceipt(t, r.stdout)
	loc := rec.Destinations[0].Location
	gkey := f.key(loc)
	storedDoc := f.get(t, gkey+".receipt.json")
	if st := parseStored(t, string(storedDoc)); st.Signature == nil {
		t.Fatalf("the stored receipt is not signed:\n%s", storedDoc)
	}
	verify := func() (result, auditDoc) {
		t.Helper()
		r := e.run("verify", "--config", e.cfgPath, "--json", "--host", host)
		var a auditDoc
		decodeStrict(t, r.stdout, &a)
		return r, a
	}
	restore := func(name string) (result, []byte) {
		t.Helper()
		out := filepath.Join(e.root, name)
		r := e.run("restore", "--config", e.cfgPath, "--json", "--host", host, "--out", out)
		got, _ := os.ReadFile(out)
		return r, got
	}

	// (c) A copy whose run died after the write (no receipt): a warning
	// naming its run, not corruption.
	time.Sleep(1100 * time.Millisecond)
	f.put(t, path.Dir(gkey)+"/smk-20991231T000000Z-5eed5eed.key", []byte("the run died after this write"))
	r, a := verify()
	g := a.Destinations[0].Groups[0]
	if r.code != 0 || !slices.Equal(reasons(g.Skipped), []string{"unfinished"}) || g.Skipped[0].RunID != "5eed5eed" || !strings.Contains(r.stderr, "5eed5eed") {
		t.Fatalf("verify with an unfinished copy: exit %d, want 0 with a warning naming run 5eed5eed\n%s\n%s\nskipped %+v", r.code, r.stdout, r.stderr, g.Skipped)
	}
	if metric("keyescrow_copies_skipped") != "1" || metric("keyescrow_copies_forged") != "0" {
		t.Errorf("metrics: skipped %s forged %s, want 1 and 0", metric("keyescrow_copies_skipped"), metric("keyescrow_copies_forged"))
	}

	// (a) A newer forged key and receipt under a new name.
	time.Sleep(1100 * time.Millisecond)
	forged := []byte("forged bytes under a new name")
	fkey := path.Dir(gkey) + "/smk-20991231T000001Z-0badc0de.key"
	fv := f.put(t, fkey, forged)
	f.put(t, fkey+".receipt.json", forgeReceipt(t, storedDoc, strings.Replace(loc, path.Base(gkey), path.Base(fkey), 1), fv, forged))
	r, a = verify()
	if r.code != 6 || !strings.Contains(r.stdout, "0badc0de") {
		t.Fatalf("verify with a forged newer copy: exit %d, want 6 naming it\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if metric("keyescrow_copies_forged") != "1" {
		t.Errorf("metrics: forged %s, want 1", metric("keyescrow_copies_forged"))
	}
	r, got := restore("restored-a.key")
	if r.code != 0 || !bytes.Equal(got, genuine) || !strings.Contains(r.stderr, "fell back") {
		t.Fatalf("restore past a forged copy: exit %d, wrote %d bytes, want the genuine ones\n%s", r.code, len(got), r.stderr)
	}
	if rr := parseReceipt(t, r.stdout); !rr.Restore.Authenticated || !slices.Equal(reasons(rr.Restore.Skipped), []string{"unauthenticated", "unfinished"}) {
		t.Errorf("restore receipt: %+v", rr.Restore)
	}
	if !versioned {
		return
	}

	// (b) A forged new version of the genuine key and of its receipt.
	time.Sleep(1100 * time.Millisecond)
	forgedB := []byte("forged bytes as a new version of the genuine name")
	vb := f.put(t, gkey, forgedB)
	vr := f.put(t, gkey+".receipt.json", forgeReceipt(t, storedDoc, loc, vb, forgedB))
	r, got = restore("restored-b.key")
	if r.code != 0 || !bytes.Equal(got, genuine) {
		t.Fatalf("restore past a forged version: exit %d, wrote %q\n%s", r.code, got, r.stderr)
	}
	r, _ = verify()
	if r.code != 6 || !strings.Contains(r.stdout, vr) {
		t.Fatalf("verify with a forged receipt version: exit %d, want 6 naming version %s\n%s\n%s", r.code, vr, r.stdout, r.stderr)
	}
}

func TestForgeriesWithTheAgentsOwnS3Credentials(t *testing.T) {
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3srv.Start(t, kind, s3Region)
			e := newS3Env(t, srv, lockBucket())
			forgeryScenario(t, e.env, s3Forger{c: srv.Admin(""), bucket: e.bucket}, true)
		})
	}
}

// On the recorded Azure layer (versions and locks as Azure keeps them) the
// forger writes with the agent's own Entra ID application. A new version
// over the locked genuine key is refused there, as Azure refuses it under
// version-level immutability, so the new-name attacks are what remains.
func TestForgeriesWithTheAgentsOwnAzureIdentity(t *testing.T) {
	a, srv := newRecordedAzEnv(t)
	hc, err := azstore.NewHTTPClient(srv.TLS.CA)
	if err != nil {
		t.Fatal(err)
	}
	co := azcore.ClientOptions{Transport: hc}
	blobOpts := co
	co.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: a.vars["AZURE_AUTHORITY_HOST"]}
	cred, err := azidentity.NewClientSecretCredential(azTenant, azClient, a.vars["KEYESCROW_TEST_AZ_CLIENT_SECRET"],
		&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClient(srv.AccountURL+"/sqlkeys", cred, &container.ClientOptions{ClientOptions: blobOpts})
	if err != nil {
		t.Fatal(err)
	}
	forgeryScenario(t, a.env, azForger{c: c, name: "sqlkeys"}, false)
}

func TestForgeriesWithTheAgentsOwnAzuriteKey(t *testing.T) {
	a := newAzEnv(t, false)
	name, c := a.container()
	a.writeAzConfig(map[string]string{"account_url": a.srv.AccountURL, "container": name, "auth": "shared-key",
		"account_key_env": "KEYESCROW_TEST_AZ_ACCOUNT_KEY"}, "region", "versioning", "immutability")
	forgeryScenario(t, a.env, azForger{c: c, name: name}, false)
}

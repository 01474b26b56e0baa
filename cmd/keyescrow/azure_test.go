package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/storage/azstore/recorded"
	"github.com/keyescrow/keyescrow/internal/testsrv/azurite"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

// azEnv is a black-box world with an Azurite (and, over HTTPS, a fake
// Entra ID) beside the TDS stand-in.
type azEnv struct {
	*env
	srv *azurite.Server
	tok *azurite.TokenServer
}

const (
	azTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	azClient = "5b3c6f5e-2c2a-4b7e-9d3a-0f6c1e0b9a11"
)

func newAzEnv(t *testing.T, https bool) *azEnv {
	t.Helper()
	srv := azurite.Start(t, azurite.Options{HTTPS: https})
	a := &azEnv{env: newEnv(t, mssqltest.Config{}), srv: srv}
	a.secrets = []string{azurite.AccountKey}
	if https {
		secret := "cs~" + testutil.RandHex(12) + "~Zq"
		a.tok = azurite.StartTokenServer(t, srv.TLS, azTenant, azClient, secret)
		a.vars["AZURE_AUTHORITY_HOST"] = a.tok.AuthorityHost
		a.vars["KEYESCROW_TEST_AZ_CLIENT_SECRET"] = secret
		a.secrets = append(a.secrets, secret)
	}
	a.vars["KEYESCROW_TEST_AZ_ACCOUNT_KEY"] = azurite.AccountKey
	return a
}

// container creates a fresh container with the development key.
func (a *azEnv) container() (string, *container.Client) {
	a.t.Helper()
	name := "c" + testutil.RandHex(8)
	c := a.srv.Container(a.t, name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Create(ctx, nil); err != nil {
		a.t.Fatal(err)
	}
	return name, c
}

// writeAzConfig writes a config with one azureblob destination.
func (a *azEnv) writeAzConfig(dest map[string]string, waive ...string) {
	a.t.Helper()
	var d strings.Builder
	keys := make([]string, 0, len(dest))
	for k := range dest {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&d, "    %s: %q\n", k, dest[k])
	}
	w := "[]"
	if len(waive) > 0 {
		w = "[" + strings.Join(waive, ", ") + "]"
	}
	cfg := fmt.Sprintf(`sqlserver:
  dsn_env: KEYESCROW_SQLSERVER_DSN
backup:
  server_directory: %q
  password_env: KEYESCROW_BACKUP_PASSWORD
home_region: westeurope
destinations:
  - name: offsite-azure
    type: azureblob
%s    retention: {mode: locked, days: 30}
waive: %s
lock_file: %q
`, a.keyDir, d.String(), w, a.lockF)
	if err := os.WriteFile(a.cfgPath, []byte(cfg), 0o600); err != nil {
		a.t.Fatal(err)
	}
}

func (a *azEnv) oauthDest(containerName string) map[string]string {
	return map[string]string{"account_url": a.srv.AccountURL, "container": containerName, "auth": "client-secret",
		"tenant_id": azTenant, "client_id": azClient, "client_secret_env": "KEYESCROW_TEST_AZ_CLIENT_SECRET", "ca_file": a.srv.CAFile}
}

// receipt is the part of the receipt these tests read.

// download reads a blob with the development key.
func download(t *testing.T, c *container.Client, name string) []byte {
	t.Helper()
	r, err := c.NewBlobClient(name).DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatalf("downloading %s: %v", name, err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// blobName is the blob name inside a receipt location.
func blobName(t *testing.T, location, containerName string) string {
	t.Helper()
	_, after, ok := strings.Cut(location, "/"+containerName+"/")
	if !ok {
		t.Fatalf("location %q is not inside container %s", location, containerName)
	}
	return after
}

// TestAzureBackupToAzuriteOverHTTPSWithOAuth is the "done when":
// Azurite cannot prove versioning, immutability or region, so the agent
// refuses with exit 4 naming what is not proven and the waiver; waived,
// it exits 0 with a verified checksum and read-back, and the receipt
// stored beside the key lists the waivers.
func TestAzureBackupToAzuriteOverHTTPSWithOAuth(t *testing.T) {
	a := newAzEnv(t, true)
	name, admin := a.container()

	a.writeAzConfig(a.oauthDest(name))
	r := a.run("backup", "--config", a.cfgPath, "--json")
	if r.code != 4 {
		t.Fatalf("unwaived backup to Azurite: exit %d, want 4\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"not immutable", `list "immutability" under waive`, `list "versioning" under waive`, "resource_id"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	t.Logf("the refused run says:\n%s", r.stderr)
	rec := parseReceipt(t, r.stdout)
	if rec.Status != "failed" || rec.Destinations[0].Status != "refused" {
		t.Fatalf("receipt: %+v", rec)
	}
	if n := countBlobs(t, admin); n != 0 {
		t.Fatalf("a refused destination holds %d blobs", n)
	}
	if a.tok.Issued() == 0 {
		t.Fatal("the run did not authenticate through the fake Entra ID")
	}

	// Waiving versioning and immutability alone is not enough: the region
	// is not provable either without resource_id.
	a.writeAzConfig(a.oauthDest(name), "versioning", "immutability")
	if r := a.run("check", "--config", a.cfgPath, "--json"); r.code != 4 || !strings.Contains(r.stdout, "region") {
		t.Fatalf("check with region unproven: exit %d\n%s", r.code, r.stdout)
	}
	if n := countBlobs(t, admin); n != 0 {
		t.Fatalf("check wrote %d blobs", n)
	}

	a.writeAzConfig(a.oauthDest(name), "region", "versioning", "immutability")
	start := time.Now()
	r = a.run("backup", "--config", a.cfgPath, "--json")
	took := time.Since(start)
	if r.code != 0 {
		t.Fatalf("waived backup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("a waived backup to Azurite over HTTPS with OAuth took %v (binary start to exit)", took)
	rec = parseReceipt(t, r.stdout)
	d := rec.Destinations[0]
	if rec.Status != "ok" || d.Status != "verified" || !d.ReadBack || !d.Checksum.Match || d.Checksum.Remote != rec.File.SHA256 {
		t.Fatalf("receipt: %+v", rec)
	}
	if !slices.Equal(rec.Waived, []string{"immutability", "region", "versioning"}) {
		t.Errorf("waived = %q", rec.Waived)
	}
	if d.Retention != nil || d.VersionID != "" {
		t.Errorf("a waived Azurite run claims retention %+v / version %q", d.Retention, d.VersionID)
	}
	key := blobName(t, d.Location, name)
	stored := download(t, admin, key)
	if s := sha256.Sum256(stored); hex.EncodeToString(s[:]) != rec.File.SHA256 {
		t.Fatal("the stored copy does not hash to the receipt's sha256")
	}
	stRec := parseStored(t, string(download(t, admin, key+".receipt.json")))
	if !slices.Equal(stRec.Waived, rec.Waived) {
		t.Fatalf("stored receipt: %+v", stRec)
	}
	waivedChecks := 0
	for _, c := range stRec.Destinations[0].Checks {
		if c.Result == "waived" {
			waivedChecks++
		}
	}
	if waivedChecks < 3 {
		t.Errorf("the stored receipt shows %d waived checks, want region, versioning, immutability (and retention)", waivedChecks)
	}
}

func countBlobs(t *testing.T, c *container.Client) int {
	t.Helper()
	n := 0
	p := c.NewListBlobsFlatPager(nil)
	for p.More() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Segment.BlobItems)
	}
	return n
}

func TestAzureBackupWithSharedKeyAndSAS(t *testing.T) {
	a := newAzEnv(t, false)
	waive := []string{"region", "versioning", "immutability"}

	t.Run("shared key", func(t *testing.T) {
		a.t = t
		name, admin := a.container()
		a.writeAzConfig(map[string]string{"account_url": a.srv.AccountURL, "container": name, "auth": "shared-key", "account_key_env": "KEYESCROW_TEST_AZ_ACCOUNT_KEY"}, waive...)
		r := a.run("backup", "--config", a.cfgPath, "--json", "--log-level", "debug")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		rec := parseReceipt(t, r.stdout)
		if d := rec.Destinations[0]; !d.Checksum.Match || !d.ReadBack {
			t.Fatalf("receipt: %+v", rec)
		}
		if n := countBlobs(t, admin); n != 2 {
			t.Fatalf("container holds %d blobs, want the key and its receipt", n)
		}
	})
	t.Run("SAS from a file", func(t *testing.T) {
		a.t = t
		name, admin := a.container()
		tok := serviceSAS(t, name)
		q, _ := url.ParseQuery(tok)
		a.secrets = append(a.secrets, q.Get("sig"))
		f := filepath.Join(a.root, "sas-"+name)
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		a.writeAzConfig(map[string]string{"account_url": a.srv.AccountURL, "container": name, "auth": "sas", "sas_file": f}, waive...)
		r := a.run("backup", "--config", a.cfgPath, "--json")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if n := countBlobs(t, admin); n != 2 {
			t.Fatalf("container holds %d blobs", n)
		}
	})
	t.Run("a wrong account key is exit 5 and never printed", func(t *testing.T) {
		a.t = t
		name, _ := a.container()
		wrong := "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleQ=="
		a.vars["KEYESCROW_TEST_AZ_WRONG_KEY"] = wrong
		a.secrets = append(a.secrets, wrong)
		a.writeAzConfig(map[string]string{"account_url": a.srv.AccountURL, "container": name, "auth": "shared-key", "account_key_env": "KEYESCROW_TEST_AZ_WRONG_KEY"}, waive...)
		r := a.run("backup", "--config", a.cfgPath, "--json")
		if r.code != 5 || !strings.Contains(r.stderr, "AuthorizationFailure") && !strings.Contains(r.stderr, "AuthenticationFailed") {
			t.Fatalf("exit %d, want 5 naming the refused credentials\n%s", r.code, r.stderr)
		}
	})
	t.Run("a missing container is exit 4 naming it", func(t *testing.T) {
		a.t = t
		a.writeAzConfig(map[string]string{"account_url": a.srv.AccountURL, "container": "nosuchcontainer", "auth": "shared-key", "account_key_env": "KEYESCROW_TEST_AZ_ACCOUNT_KEY"}, waive...)
		r := a.run("backup", "--config", a.cfgPath, "--json")
		if r.code != 4 || !strings.Contains(r.stderr, "ContainerNotFound") || !strings.Contains(r.stderr, "nosuchcontainer") {
			t.Fatalf("exit %d, want 4\n%s", r.code, r.stderr)
		}
	})
	t.Run("an endpoint where nothing listens is exit 5 naming the refused connection", func(t *testing.T) {
		a.t = t
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := "http://" + l.Addr().String() + "/" + azurite.AccountName
		l.Close()
		a.writeAzConfig(map[string]string{"account_url": dead, "container": "c", "auth": "shared-key", "account_key_env": "KEYESCROW_TEST_AZ_ACCOUNT_KEY"}, waive...)
		start := time.Now()
		r := a.run("backup", "--config", a.cfgPath, "--json")
		if r.code != 5 || !strings.Contains(r.stderr, "connection refused") {
			t.Fatalf("exit %d, want 5 naming the refused connection\n%s", r.code, r.stderr)
		}
		t.Logf("an unreachable endpoint failed after %v (bounded retries)", time.Since(start))
	})
	t.Run("a missing account key variable is exit 2 naming it", func(t *testing.T) {
		a.t = t
		a.writeAzConfig(map[string]string{"account_url": a.srv.AccountURL, "container": "c", "auth": "shared-key", "account_key_env": "KEYESCROW_TEST_AZ_UNSET"}, waive...)
		r := a.run("backup", "--config", a.cfgPath, "--json")
		if r.code != 2 || !strings.Contains(r.stderr, "KEYESCROW_TEST_AZ_UNSET") {
			t.Fatalf("exit %d, want 2\n%s", r.code, r.stderr)
		}
	})
}

func serviceSAS(t *testing.T, name string) string {
	t.Helper()
	key, err := container.NewSharedKeyCredential(azurite.AccountName, azurite.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(), ContainerName: name,
		Permissions: (&sas.ContainerPermissions{Read: true, Create: true, List: true}).String()}.SignWithSharedKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

// TestAzureBackupAgainstRecordedAzureIsLockedAndVerified replays recorded
// Azure behaviour (internal/storage/azstore/recorded: versions and
// version-level immutability, which Azurite ignores) under the built
// binary: the backup exits 0 with a version id, the locked retention read
// back, a matching checksum and a read-back, and the receipt is stored
// beside the key, locked the same way. The region is waived: it is proven
// only through Azure Resource Manager, which a 127.0.0.1 account has not.
// newRecordedAzEnv is a world whose one destination is the recorded Azure
// layer (container sqlkeys), reached with a client secret through the fake
// Entra ID; the region is waived (a 127.0.0.1 account has no ARM id).
func newRecordedAzEnv(t *testing.T) (*azEnv, *recorded.Server) {
	t.Helper()
	srv := recorded.Start(t, recorded.Options{Container: "sqlkeys"})
	a := &azEnv{env: newEnv(t, mssqltest.Config{})}
	secret := "cs~" + testutil.RandHex(12)
	a.secrets = []string{secret}
	tok := azurite.StartTokenServer(t, srv.TLS, azTenant, azClient, secret)
	a.vars["AZURE_AUTHORITY_HOST"] = tok.AuthorityHost
	a.vars["KEYESCROW_TEST_AZ_CLIENT_SECRET"] = secret
	a.writeAzConfig(map[string]string{"account_url": srv.AccountURL, "container": "sqlkeys", "auth": "client-secret",
		"tenant_id": azTenant, "client_id": azClient, "client_secret_env": "KEYESCROW_TEST_AZ_CLIENT_SECRET", "ca_file": srv.TLS.CA}, "region")
	return a, srv
}

func TestAzureBackupAgainstRecordedAzureIsLockedAndVerified(t *testing.T) {
	a, srv := newRecordedAzEnv(t)

	r := a.run("check", "--config", a.cfgPath, "--json")
	if r.code != 0 {
		t.Fatalf("check: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	before := srv.Requests()
	start := time.Now()
	r = a.run("backup", "--config", a.cfgPath, "--json")
	if r.code != 0 {
		t.Fatalf("backup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	n := srv.Requests() - before
	t.Logf("backup against the recorded layer: %v, %d requests to the storage service", time.Since(start), n)
	if n != 6 {
		t.Errorf("the backup sent %d requests, want 6: preflight 2 (container, account information), write and proof 3, receipt 1", n)
	}
	rec := parseReceipt(t, r.stdout)
	d := rec.Destinations[0]
	if rec.Status != "ok" || d.Status != "verified" || d.VersionID == "" || !d.ReadBack || !d.Checksum.Match || d.Checksum.Remote != rec.File.SHA256 {
		t.Fatalf("receipt: %+v", rec)
	}
	want := time.Now().Add(30 * 24 * time.Hour)
	if d.Retention == nil || d.Retention.Mode != "locked" || d.Retention.Until.Before(want.Add(-time.Minute)) || d.Retention.Until.After(want.Add(time.Minute)) {
		t.Fatalf("retention = %+v, want locked until about %s", d.Retention, want)
	}
	key := blobName(t, d.Location, "sqlkeys")
	cur, ok := srv.Current("sqlkeys", key)
	if !ok || cur.VersionID != d.VersionID || cur.Mode != "locked" || sha(cur.Data) != rec.File.SHA256 {
		t.Fatalf("stored copy: %+v", cur)
	}
	rc, ok := srv.Current("sqlkeys", key+".receipt.json")
	if !ok || rc.Mode != "locked" || !rc.Until.Equal(d.Retention.Until) {
		t.Fatalf("the receipt beside the key is not locked like it: %+v", rc)
	}
	if got := parseStored(t, string(rc.Data)); got.Destinations[0].VersionID != d.VersionID {
		t.Fatalf("stored receipt: %+v", got)
	}

	// A second run writes a new name; the locked copy stays.
	if r := a.run("backup", "--config", a.cfgPath, "--json"); r.code != 0 {
		t.Fatalf("second backup: exit %d\n%s", r.code, r.stderr)
	}
	if again, _ := srv.Current("sqlkeys", key); again.VersionID != d.VersionID {
		t.Fatal("the first copy changed")
	}
}

// TestAzureBackupToARealAccount runs the backup body against a real
// account when KEYESCROW_TEST_AZURE_ACCOUNT_URL and _CONTAINER are set
// (auth default: the binary gets the machine's AZURE_* variables; copies
// unlocked for one day; the region proven through
// KEYESCROW_TEST_AZURE_RESOURCE_ID when set, else waived).
func TestAzureBackupToARealAccount(t *testing.T) {
	accountURL, name := os.Getenv("KEYESCROW_TEST_AZURE_ACCOUNT_URL"), os.Getenv("KEYESCROW_TEST_AZURE_CONTAINER")
	if accountURL == "" {
		t.Log("KEYESCROW_TEST_AZURE_ACCOUNT_URL is unset: Azurite and the recorded Azure layer only")
		return
	}
	a := &azEnv{env: newEnv(t, mssqltest.Config{})}
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AZURE_") || strings.HasPrefix(k, "IDENTITY_") || strings.HasPrefix(k, "MSI_") {
			a.vars[k] = v
			if strings.Contains(k, "SECRET") {
				a.secrets = append(a.secrets, v)
			}
		}
	}
	dest := map[string]string{"account_url": accountURL, "container": name, "auth": "default", "prefix": "keyescrow-test/"}
	var waive []string
	if rid := os.Getenv("KEYESCROW_TEST_AZURE_RESOURCE_ID"); rid != "" {
		dest["resource_id"] = rid
	} else {
		waive = append(waive, "region")
	}
	a.writeAzConfig(dest, waive...)
	cfg, _ := os.ReadFile(a.cfgPath)
	cfg = []byte(strings.Replace(string(cfg), "{mode: locked, days: 30}", "{mode: unlocked, days: 1}", 1))
	if hr := os.Getenv("KEYESCROW_TEST_AZURE_HOME_REGION"); hr != "" {
		cfg = []byte(strings.Replace(string(cfg), "home_region: westeurope", "home_region: "+hr, 1))
	}
	_ = os.WriteFile(a.cfgPath, cfg, 0o600)
	r := a.run("backup", "--config", a.cfgPath, "--json")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	d := parseReceipt(t, r.stdout).Destinations[0]
	if d.VersionID == "" || d.Retention == nil || d.Retention.Mode != "unlocked" || !d.ReadBack || !d.Checksum.Match {
		t.Fatalf("destination: %+v", d)
	}
}

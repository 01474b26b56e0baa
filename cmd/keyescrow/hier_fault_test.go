package main_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/keyescrow/keyescrow/internal/testsrv/azurite"
)

// A copy without a version id (Azure Blob with versioning waived, as on
// Azurite) can be written over under its own name by anyone holding the
// account key, and Azure's stated SHA-256 is the writer's metadata. Change
// detection used to trust it: a TDE certificate whose only copy had been
// replaced by other bytes, with metadata claiming the genuine SHA-256,
// stayed "unchanged" and was not archived again until hierarchy.refresh
// (found by the fault campaign's forged-item attack). It now reads such a
// copy back and hashes it.
func TestChangeDetectionReadsBackACopyWithoutVersions(t *testing.T) {
	srv := azurite.Start(t, azurite.Options{})
	a := &azEnv{env: newEnv(t, hierCampaignConfig("azurite")), srv: srv}
	a.secrets = []string{azurite.AccountKey, masterDMKPassword}
	a.vars["KEYESCROW_TEST_AZ_ACCOUNT_KEY"] = azurite.AccountKey
	name, admin := a.container()
	a.writeAzConfig(map[string]string{"account_url": srv.AccountURL, "container": name, "auth": "shared-key",
		"account_key_env": "KEYESCROW_TEST_AZ_ACCOUNT_KEY"}, "region", "versioning", "immutability")

	tdeCert := func(r result) hierItemResult {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("backup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		var rec struct {
			Items []hierItemResult `json:"items"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
			t.Fatal(err)
		}
		for _, it := range rec.Items {
			if it.Kind == "certificate" && it.Name == "TDECert" {
				return it
			}
		}
		t.Fatalf("no TDECert in the receipt\n%s", r.stdout)
		return hierItemResult{}
	}
	backup := func() hierItemResult {
		return tdeCert(a.run("backup", "--config", a.cfgPath, "--json"))
	}
	first := backup()
	if first.Action != "archived" || first.File == nil || len(first.Destinations) != 1 {
		t.Fatalf("first backup: TDECert %s (%s)", first.Action, first.Reason)
	}
	if second := backup(); second.Action != "unchanged" {
		t.Fatalf("second backup: TDECert %s (%s), want unchanged", second.Action, second.Reason)
	}

	// Other bytes of the same length over the copy, with metadata that
	// claims the genuine SHA-256.
	_, blob, ok := strings.Cut(first.Destinations[0].Location, "/"+azurite.AccountName+"/"+name+"/")
	if !ok {
		t.Fatalf("location %q", first.Destinations[0].Location)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	forged := []byte(strings.Repeat("O", int(first.File.Bytes)))
	claim := first.File.SHA256
	if _, err := admin.NewBlockBlobClient(blob).UploadBuffer(ctx, forged, &blockblob.UploadBufferOptions{Metadata: map[string]*string{"sha256": &claim}}); err != nil {
		t.Fatal(err)
	}

	third := backup()
	if third.Action != "archived" || !strings.Contains(third.Reason, "was replaced") {
		t.Fatalf("after the copy was replaced: TDECert %s (%s), want archived because it was replaced", third.Action, third.Reason)
	}
	if fourth := backup(); fourth.Action != "unchanged" || fourth.Newest == nil || fourth.Newest.Destinations[0].Location == first.Destinations[0].Location {
		t.Fatalf("the next backup: TDECert %s (%s), want unchanged on the new copy", fourth.Action, fourth.Reason)
	}
}

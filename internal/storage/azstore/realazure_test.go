package azstore

import (
	"os"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/storagetest"
)

// TestRealAzure runs the same bodies as the Azurite and recorded tests
// against a real account when KEYESCROW_TEST_AZURE_ACCOUNT_URL and
// _CONTAINER are set (a container with version-level immutability;
// optional _RESOURCE_ID to prove the region; _AUTH, default "default",
// authenticates as azidentity reads AZURE_* from the environment). Copies
// are written unlocked for an hour under keyescrow-test/ and storagetest/.
func TestRealAzure(t *testing.T) {
	accountURL, name := os.Getenv("KEYESCROW_TEST_AZURE_ACCOUNT_URL"), os.Getenv("KEYESCROW_TEST_AZURE_CONTAINER")
	if accountURL == "" {
		t.Log("KEYESCROW_TEST_AZURE_ACCOUNT_URL is unset: Azurite and the recorded Azure layer only")
		return
	}
	if name == "" {
		t.Fatal("with KEYESCROW_TEST_AZURE_ACCOUNT_URL set, set KEYESCROW_TEST_AZURE_CONTAINER too")
	}
	for k, v := range realAzureEnv {
		t.Setenv(k, v)
	}
	mode := os.Getenv("KEYESCROW_TEST_AZURE_AUTH")
	a := Auth{Mode: mode, TenantID: os.Getenv("AZURE_TENANT_ID"), ClientID: os.Getenv("AZURE_CLIENT_ID"), AuthorityHost: os.Getenv("AZURE_AUTHORITY_HOST")}
	switch mode {
	case AuthClientSecret:
		a.ClientSecret = secret.New(os.Getenv("AZURE_CLIENT_SECRET"))
	case AuthSharedKey:
		a.AccountKey = secret.New(os.Getenv("KEYESCROW_TEST_AZURE_ACCOUNT_KEY"))
	case AuthSAS:
		a.SAS = secret.New(os.Getenv("KEYESCROW_TEST_AZURE_SAS"))
	}
	open := func(t *testing.T) (*Store, *counter) {
		hc, cnt := countingClient(t, "")
		cred, err := NewCredential(a, hc)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Options{AccountURL: accountURL, Container: name, Credential: cred, HTTPClient: hc, ResourceID: os.Getenv("KEYESCROW_TEST_AZURE_RESOURCE_ID")})
		if err != nil {
			t.Fatal(err)
		}
		return s, cnt
	}
	t.Run("preflight proves version-level immutability", func(t *testing.T) {
		s, _ := open(t)
		p, err := s.Preflight(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("real account: %+v", p)
		if p.Immutability.State != storage.Proven || p.Versioning.State != storage.Proven {
			t.Fatalf("the test container must have version-level immutability: %+v", p)
		}
	})
	t.Run("conformance", func(t *testing.T) {
		storagetest.Run(t, storagetest.Harness{
			New: func(t *testing.T) storage.Backend {
				s, _ := open(t)
				if _, err := s.Preflight(ctxT(t)); err != nil {
					t.Fatal(err)
				}
				return proven{s}
			},
			Retention: &storage.Retention{Mode: ModeUnlocked},
		})
	})
	t.Run("an unlocked write is proven and holds", func(t *testing.T) {
		s, cnt := open(t)
		lockedWriteHolds(t, s, cnt, ModeUnlocked, false, time.Hour)
	})
}

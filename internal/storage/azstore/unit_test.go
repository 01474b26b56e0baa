package azstore

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/storage"
)

func TestServiceErrorCodesMapToSentinels(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
		want   error
	}{
		{409, "BlobAlreadyExists", storage.ErrExists},
		{412, "ConditionNotMet", storage.ErrExists},
		{400, "Md5Mismatch", storage.ErrChecksum},
		{404, "ContainerNotFound", storage.ErrNotFound},
		{404, "BlobNotFound", storage.ErrNotFound},
		{403, "AuthenticationFailed", storage.ErrAuth},
		{403, "AuthorizationPermissionMismatch", storage.ErrPermission},
		{403, "AuthorizationFailure", storage.ErrPermission},
		{403, "AuthorizationFailed", storage.ErrPermission}, // ARM
		{409, "BlobImmutableDueToPolicy", storage.ErrLocked},
		{409, "BlobImmutableDueToLegalHold", storage.ErrLocked},
		{500, "InternalError", storage.ErrUnavailable},
		{503, "ServerBusy", storage.ErrUnavailable},
		{429, "", storage.ErrUnavailable},
		{401, "", storage.ErrAuth},
	} {
		if got := sentinel(tc.status, tc.code); !errors.Is(got, tc.want) {
			t.Errorf("%d %s → %v, want %v", tc.status, tc.code, got, tc.want)
		}
	}
}

func TestCredentialsRefuseMissingOrMalformedSecretsWithoutEchoingThem(t *testing.T) {
	hc := &http.Client{}
	badCert := filepath.Join(t.TempDir(), "c.pem")
	if err := os.WriteFile(badCert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		a    Auth
		want string
	}{
		{"shared-key without a key", Auth{Mode: AuthSharedKey}, "needs the account key"},
		{"sas without a token", Auth{Mode: AuthSAS}, "needs the SAS token"},
		{"a sas that is not a query", Auth{Mode: AuthSAS, SAS: secret.New("sv=2020&sp=rc")}, "sig="},
		{"a certificate file that holds none", Auth{Mode: AuthClientCertificate, TenantID: "t", ClientID: "c", CertificateFile: badCert, CertificatePassword: secret.New("pfx-pass-123")}, "no usable certificate"},
		{"a missing certificate file", Auth{Mode: AuthClientCertificate, TenantID: "t", ClientID: "c", CertificateFile: badCert + ".missing"}, "client_certificate_file"},
		{"an unknown mode", Auth{Mode: "kerberos"}, "unknown auth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCredential(tc.a, hc)
			if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "pfx-pass-123") {
				t.Fatalf("NewCredential = %v, want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
	if _, err := New(Options{AccountURL: "https://a.blob.core.windows.net", Container: "c", Credential: &Credential{mode: AuthSharedKey, key: secret.New("!!notbase64")}}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("a non-base64 account key: %v", err)
	}
}

func TestInstanceDiscoveryIsOffOnlyForAPrivateAuthority(t *testing.T) {
	for host, known := range map[string]bool{
		"https://login.microsoftonline.com/": true, "https://login.microsoftonline.us/": true,
		"https://127.0.0.1:4443/": false, "https://login.example.corp/": false,
	} {
		if knownAuthority(host) != known {
			t.Errorf("knownAuthority(%s) = %v", host, !known)
		}
	}
}

func TestARMEndpointFollowsTheAccountsCloud(t *testing.T) {
	for u, want := range map[string]string{
		"https://a.blob.core.windows.net":          "https://management.azure.com",
		"https://a.blob.core.chinacloudapi.cn":     "https://management.chinacloudapi.cn",
		"https://a.blob.core.usgovcloudapi.net":    "https://management.usgovcloudapi.net",
		"https://127.0.0.1:10000/devstoreaccount1": "",
	} {
		s := &Store{opts: Options{AccountURL: u}}
		if got := strings.TrimSuffix(s.armEndpoint(), "/"); got != want {
			t.Errorf("%s → %q, want %q", u, got, want)
		}
	}
}

func TestKeysAzureWouldRenameAreRefused(t *testing.T) {
	for _, k := range []string{"", "/a", "a/", "a//b", `a\b`, "a/../b", "./a"} {
		if err := checkKey(k); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("checkKey(%q) = %v", k, err)
		}
	}
	if err := checkKey("h/i/service-master-key/x.key"); err != nil {
		t.Error(err)
	}
}

func TestAccountNameComesFromEitherURLStyle(t *testing.T) {
	cred := &Credential{mode: AuthSharedKey, key: secret.New("a2V5")}
	for u, want := range map[string]string{
		"https://corpkeys.blob.core.windows.net":  "corpkeys",
		"http://127.0.0.1:10000/devstoreaccount1": "devstoreaccount1",
	} {
		s, err := New(Options{AccountURL: u, Container: "c", Credential: cred})
		if err != nil || s.account != want {
			t.Errorf("%s → %q, %v; want %q", u, s.account, err, want)
		}
	}
}

package azurite

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/testtls"
)

// TokenServer is a fake Entra ID (login.microsoftonline.com) for one
// application: it serves the tenant's OpenID configuration and the token
// endpoint for the client-credentials grant, and issues tokens Azurite's
// --oauth basic accepts (audience https://storage.azure.com, or Resource Manager's for its scope; issuer
// https://sts.windows.net/TENANT/, nbf/iat/exp set; unsigned, as Azurite
// does not check signatures). A wrong client id or secret gets Entra's
// 401 invalid_client with AADSTS7000215.
type TokenServer struct {
	// AuthorityHost is https://127.0.0.1:PORT/, for AZURE_AUTHORITY_HOST
	// or azidentity's ClientOptions.Cloud.
	AuthorityHost string
	TenantID      string
	ClientID      string
	Secret        string
	issued        atomic.Int64
	refused       atomic.Int64
}

// Issued counts tokens issued; Refused counts refused requests.
func (s *TokenServer) Issued() int64  { return s.issued.Load() }
func (s *TokenServer) Refused() int64 { return s.refused.Load() }

// StartTokenServer serves HTTPS with the certificate in files (trust
// files.CA) on a free 127.0.0.1 port until the test ends.
func StartTokenServer(t testing.TB, files testtls.Files, tenantID, clientID, secret string) *TokenServer {
	t.Helper()
	s := &TokenServer{TenantID: tenantID, ClientID: clientID, Secret: secret}
	srv := testtls.Serve(t, files, http.HandlerFunc(s.serve))
	s.AuthorityHost = srv.URL + "/"
	return s
}

func (s *TokenServer) serve(w http.ResponseWriter, r *http.Request) {
	base := "https://" + r.Host
	tenant, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if tenant != s.TenantID {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant '" + tenant + "' not found."})
		return
	}
	switch {
	case r.Method == http.MethodGet && rest == "v2.0/.well-known/openid-configuration":
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint":         base + "/" + tenant + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/" + tenant + "/oauth2/v2.0/authorize",
			"issuer":                 base + "/" + tenant + "/v2.0",
		})
	case r.Method == http.MethodPost && rest == "oauth2/v2.0/token":
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
			s.refused.Add(1)
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type"})
			return
		}
		if r.PostForm.Get("client_id") != s.ClientID || r.PostForm.Get("client_secret") != s.Secret {
			s.refused.Add(1)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client",
				"error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
				"error_codes":       []int{7000215}})
			return
		}
		sc := " " + r.PostForm.Get("scope") + " "
		aud := ""
		switch {
		case strings.Contains(sc, " https://storage.azure.com/.default "):
			aud = "https://storage.azure.com"
		case strings.Contains(sc, " https://management.core.windows.net//.default "), strings.Contains(sc, " https://management.azure.com//.default "):
			aud = "https://management.core.windows.net/"
		}
		if aud == "" {
			s.refused.Add(1)
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_scope", "error_description": "AADSTS70011: scope" + sc + "is not valid here."})
			return
		}
		s.issued.Add(1)
		writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": s.jwt(aud)})
	default:
		http.NotFound(w, r)
	}
}

func (s *TokenServer) jwt(aud string) string {
	now := time.Now().Unix()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"typ": "JWT", "alg": "RS256"}) + "." + enc(map[string]any{
		"aud": aud, "iss": fmt.Sprintf("https://sts.windows.net/%s/", s.TenantID),
		"iat": now - 60, "nbf": now - 60, "exp": now + 3600, "appid": s.ClientID, "tid": s.TenantID, "ver": "1.0",
	}) + "." + base64.RawURLEncoding.EncodeToString([]byte("unsigned-test-token"))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

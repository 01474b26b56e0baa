package azurite

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// AdminContainer is a client for container name of a local Azurite with the
// well-known development account's shared key, for setting up and
// inspecting what the code under test does. It trusts caFile (when set),
// not the system roots. It sends nothing.
func AdminContainer(accountURL, caFile, name string) (*container.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	key, err := container.NewSharedKeyCredential(AccountName, AccountKey)
	if err != nil {
		return nil, err
	}
	return container.NewClientWithSharedKeyCredential(accountURL+"/"+name, key,
		&container.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: tr}}})
}

// Container is AdminContainer for this server; an error fails t.
func (s *Server) Container(t testing.TB, name string) *container.Client {
	t.Helper()
	c, err := AdminContainer(s.AccountURL, s.CAFile, name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

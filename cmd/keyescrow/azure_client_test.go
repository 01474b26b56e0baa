package main_test

import (
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/keyescrow/keyescrow/internal/deadline"
	"github.com/keyescrow/keyescrow/internal/storage/azstore"
)

// azstoreClient returns client options trusting caFile, for the tests' own
// admin requests.
func azstoreClient(caFile string) (azcore.ClientOptions, error) {
	hc, err := azstore.NewHTTPClient(caFile, deadline.Limits{})
	if err != nil {
		return azcore.ClientOptions{}, err
	}
	return azcore.ClientOptions{Transport: hc}, nil
}

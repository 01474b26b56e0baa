package cli

import (
	"fmt"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// openAzureBlob opens an azureblob destination's backend.
func (inv *invocation) openAzureBlob(d config.Destination) (storage.Backend, error) {
	return nil, fmt.Errorf("destination type %q is not available in this version of keyescrow (%s): use type file, or upgrade", d.Type, inv.app.Build.Version)
}

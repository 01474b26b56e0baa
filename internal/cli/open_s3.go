package cli

import (
	"fmt"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// openS3 opens an s3 destination's backend.
func (inv *invocation) openS3(d config.Destination) (storage.Backend, error) {
	return nil, fmt.Errorf("destination type %q is not available in this version of keyescrow (%s): use type file, or upgrade", d.Type, inv.app.Build.Version)
}

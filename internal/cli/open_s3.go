package cli

import (
	"context"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/s3store"
)

// openS3 opens an s3 destination's backend with the default AWS credential
// chain (or the destination's profile). Nothing is sent until preflight.
func (inv *invocation) openS3(d config.Destination) (storage.Backend, error) {
	return s3store.New(context.Background(), s3store.Options{
		Bucket:    d.Bucket,
		Region:    d.Region,
		Endpoint:  d.Endpoint,
		PathStyle: d.PathStyle,
		Profile:   d.Profile,
		CAFile:    d.CAFile,
		Limits:    inv.limits,
		Log:       inv.log.With("destination", d.Name),
	})
}

package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// notWORM explains the properties a folder does not have.
const notWORM = "a folder keeps every copy under a unique name, never overwritten, read-only; it is not WORM storage"

// Preflight checks, without writing, that the folder exists and that this
// user may create files in it. Region, versioning and immutability do not
// apply to a folder.
func (s *Store) Preflight(ctx context.Context) (storage.Properties, error) {
	if err := ctx.Err(); err != nil {
		return storage.Properties{}, translateError("preflight", s.path, err)
	}
	if err := s.checkRoot(); err != nil {
		return storage.Properties{}, err
	}
	na := storage.Property{State: storage.NotApplicable, Detail: notWORM}
	return storage.Properties{
		Region:       na,
		Versioning:   na,
		Immutability: na,
		Writable:     writable(s.path, s.probe(s.path)),
	}, nil
}

// checkRoot fails unless Path is an existing folder. Put calls it too, so a
// copy never lands on the host's own disk in place of an unmounted medium.
func (s *Store) checkRoot() error {
	fi, err := os.Stat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist) || isNotDir(err):
		return fmt.Errorf("file destination: folder %s does not exist: mount the medium or create the folder: %w: %w",
			s.path, storage.ErrNotFound, err)
	case err != nil:
		return translateError("checking folder", s.path, err)
	case !fi.IsDir():
		return fmt.Errorf("file destination: %s is a file, not a folder: mount the medium or correct the path: %w",
			s.path, storage.ErrNotFound)
	}
	return nil
}

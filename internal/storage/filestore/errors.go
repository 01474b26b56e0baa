package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// translateError wraps err from op on path with the storage sentinel it
// means; the OS error stays wrapped too, for errors.Is.
func translateError(op, path string, err error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	msg := ""
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("file %s %s: %w", op, path, err)
	case errors.Is(err, fs.ErrExist):
		sentinel = storage.ErrExists
	case errors.Is(err, fs.ErrNotExist) || isNotDir(err):
		sentinel = storage.ErrNotFound
	case errors.Is(err, fs.ErrPermission):
		sentinel = storage.ErrPermission
	default:
		sentinel, msg = storage.ErrUnavailable, mediumProblem(err)
	}
	if msg != "" {
		return fmt.Errorf("file %s %s: %s: %w: %w", op, path, msg, sentinel, err)
	}
	return fmt.Errorf("file %s %s: %w: %w", op, path, sentinel, err)
}

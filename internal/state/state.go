// Package state owns keyescrow's private state folder: where the run lock
// lives and where backup records the host identity it used, so that list,
// verify and restore on the same host find the same copies without asking
// SQL Server.
//
// The folder belongs to the account keyescrow runs as and to nobody else:
// it is created owner-only (0700), and an existing one is refused when it
// is a symbolic link, is owned by another account, or can be written by
// group or others. Files in it are opened without following symbolic
// links and refused when they are not regular files owned by this account,
// so no other local user can block a run, redirect a write or plant a
// record.
package state

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Name is the folder's name under the per-OS parent (/var/lib/keyescrow,
// ~/.local/state/keyescrow, %ProgramData%\keyescrow).
const Name = "keyescrow"

// ErrUnsafe is matched (errors.Is) by every *UnsafeError.
var ErrUnsafe = errors.New("unsafe state folder or file")

// UnsafeError says why a folder or file was refused and how to fix it.
type UnsafeError struct {
	Path    string
	Problem string
	Fix     string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("%s %s: %s", e.Path, e.Problem, e.Fix)
}

// Is makes every *UnsafeError match ErrUnsafe.
func (e *UnsafeError) Is(target error) bool { return target == ErrUnsafe }

// Default returns the state folder for the account keyescrow runs as, read
// from getenv (the process environment in production):
//
//   - $STATE_DIRECTORY when systemd sets it (StateDirectory=keyescrow);
//   - as root, /var/lib/keyescrow;
//   - as another account, /var/lib/keyescrow when it exists and belongs to
//     that account (the agent's own system account, as install.sh makes
//     it), else $XDG_STATE_HOME/keyescrow, else ~/.local/state/keyescrow;
//   - on Windows, %ProgramData%\keyescrow.
//
// The error says what to set when there is no usable default (no HOME).
func Default(getenv func(string) string) (string, error) {
	if sd := getenv("STATE_DIRECTORY"); sd != "" {
		first, _, _ := strings.Cut(sd, ":")
		if filepath.IsAbs(first) {
			return filepath.Clean(first), nil
		}
	}
	return osDefault(getenv)
}

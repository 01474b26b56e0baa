//go:build !windows

package escrow

import (
	"os"
	"syscall"
)

// shareWithServer lets SQL Server read a staged key file. It stays closed
// to other users: run as root, the file is given to the folder's owner (the
// SQL Server service account, see docs/operations.md); otherwise it is
// opened to the folder's group (setgid keeps it the folder's), whose
// default ACL already lets the service account in.
func shareWithServer(path, dir string) {
	fi, err := os.Stat(dir)
	if err != nil {
		return
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	if os.Geteuid() == 0 {
		_ = os.Chown(path, int(st.Uid), int(st.Gid))
		return
	}
	if int(st.Uid) != os.Geteuid() {
		_ = os.Chmod(path, 0o640)
	}
}

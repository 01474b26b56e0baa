package escrow

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
)

// backupRemote is the backup step of backup.remote: keyescrow runs on
// another host (a CI runner), so nothing touches this host's disk. SQL
// Server writes the key file to server_directory on its own disk, the agent
// reads it back over the same connection (OPENROWSET(BULK …), bounded like
// readKeyFile), archives and proves it like a local file, and only then,
// unless keep_local, asks the server to remove it. Whenever the file stays
// on the server, the log says where and how to remove it.
func (r *Runner) backupRemote(ctx context.Context, rec *receipt.Receipt, db SQL, info sqlserver.Info, targets []target, refused error) (runErr, destErr error) {
	b := r.Config.Backup
	if err := MayReadBack(info); err != nil {
		// Refused before BACKUP, so no key file is left behind unread.
		return fmt.Errorf("nothing was exported: %w", err), refused
	}
	name := backupFileName(info.ServerName, r.Clock(), r.RunID)
	serverPath := serverJoin(b.ServerDirectory, name)
	rec.File = &receipt.File{Name: name}

	r.Log.InfoContext(ctx, "exporting the service master key", "server_path", serverPath, "remote", true)
	pw, err := r.backupPassword(rec)
	if err != nil {
		return err, refused
	}
	if err := db.BackupServiceMasterKey(ctx, serverPath, pw); err != nil {
		return err, refused
	}
	// Set only after the copies' own receipts are stored: they are written
	// before the removal and would not know its outcome.
	sf := &receipt.ServerFile{Path: serverPath, Remove: removeHow(serverPath)}
	data, err := db.ReadServerFile(ctx, serverPath, maxKeyFileSize)
	if err == nil && len(data) == 0 {
		err = exitcode.Wrap(exitcode.SQLServer, fmt.Errorf("the key file SQL Server wrote is empty"))
	}
	if err != nil {
		rec.ServerFile = sf
		r.Log.WarnContext(ctx, "the key file could not be read back; it stays on the server", "server_path", serverPath)
		return fmt.Errorf("%w (the key file stays on the server at %s and is not archived: archive it there with keyescrow archive, then %s)", err, serverPath, removeHow(serverPath)), refused
	}
	kf := newKeyFile(serverPath, data)
	if err := r.seal(kf, name, pw); err != nil {
		rec.ServerFile = sf
		return err, refused
	}
	key := func(prefix string) string { return objectKey(prefix, rec.Host, rec.Instance, rec.Kind, name) }
	err = r.quorum(ctx, rec, errors.Join(r.archive(ctx, rec, kf, targets, key), refused))
	rec.ServerFile = sf
	if err != nil {
		r.Log.WarnContext(ctx, "not every destination is verified; the key file is kept on the server", "server_path", serverPath)
		return nil, err
	}
	if b.KeepLocal {
		r.Log.InfoContext(ctx, "keep_local: the key file stays on the server", "server_path", serverPath)
		return nil, nil
	}
	if err := db.RemoveServerFile(ctx, serverPath); err != nil {
		r.Log.WarnContext(ctx, "every destination is verified, but the key file remains on the server: remove it there", "server_path", serverPath, "how", removeHow(serverPath), "err", err.Error())
		return nil, nil
	}
	sf.Removed, sf.Remove = true, ""
	r.Log.InfoContext(ctx, "removed the key file from the server: every destination is verified", "server_path", serverPath)
	return nil, nil
}

// removeHow says how to remove a key file keyescrow left on the server.
func removeHow(serverPath string) string {
	return "remove it with " + sqlserver.RemoveServerFileStatement(serverPath) +
		" as a member of sysadmin (SQL Server 2019 or 2017 CU18 and later), or delete it on the server's disk"
}

package escrow

import (
	"errors"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
)

// The rights of the SQL login, judged from what the server says it holds
// (sqlserver.Info), before anything is exported. `check` and the backup
// share these, so they say the same thing.

// MayBackUp is nil when the login holds CONTROL SERVER, which BACKUP
// SERVICE MASTER KEY needs; else exit 3 with the GRANT to run.
func MayBackUp(info sqlserver.Info) error {
	if info.ControlServer {
		return nil
	}
	return exitcode.Wrap(exitcode.SQLServer, errors.New("the login cannot back up the service master key: it lacks CONTROL SERVER; GRANT CONTROL SERVER TO [login]; (or use a member of sysadmin)"))
}

// MayReadBack is nil when the login holds ADMINISTER BULK OPERATIONS, which
// backup.remote needs to read the key file back over the SQL connection;
// else exit 3 with the GRANT to run.
func MayReadBack(info sqlserver.Info) error {
	if info.BulkOperations {
		return nil
	}
	return exitcode.Wrap(exitcode.SQLServer, errors.New("backup.remote reads the key file back through SQL Server, which needs ADMINISTER BULK OPERATIONS, and the login lacks it: GRANT ADMINISTER BULK OPERATIONS TO [login]; or add the login to bulkadmin"))
}

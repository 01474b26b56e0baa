package escrow

import (
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
)

func TestTheLoginsRightsAreJudgedInOnePlace(t *testing.T) {
	full := sqlserver.Info{ControlServer: true, BulkOperations: true}
	if MayBackUp(full) != nil || MayReadBack(full) != nil {
		t.Fatal("a login with both rights is refused")
	}
	for name, err := range map[string]error{
		"GRANT CONTROL SERVER TO [login]":             MayBackUp(sqlserver.Info{BulkOperations: true}),
		"GRANT ADMINISTER BULK OPERATIONS TO [login]": MayReadBack(sqlserver.Info{ControlServer: true}),
	} {
		if err == nil || exitcode.Code(err) != exitcode.SQLServer || !strings.Contains(err.Error(), name) {
			t.Errorf("want exit 3 saying %q, got %v", name, err)
		}
	}
}

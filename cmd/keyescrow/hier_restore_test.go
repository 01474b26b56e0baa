package main_test

import (
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
)

// This file holds the black-box tests of restore and drill per item of the
// hierarchy: --kind, --database and --name.

func TestRestoreAndDrillRefuseAKindWithoutItsItem(t *testing.T) {
	e := newEnv(t, mssqltest.Config{})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"restore", "--kind", "asymmetric-key", "--out", "x"}, `--kind "asymmetric-key" is not a kind of key`},
		{[]string{"restore", "--database", "HR", "--out", "x"}, "add --kind database-master-key"},
		{[]string{"restore", "--kind", "database-master-key", "--out", "x"}, "--kind database-master-key needs --database NAME"},
		{[]string{"restore", "--kind", "database-master-key", "--database", "HR", "--name", "x", "--out", "x"}, "drop --name"},
		{[]string{"restore", "--kind", "certificate", "--database", "master", "--out", "x"}, "--kind certificate needs --database NAME and --name CERTIFICATE"},
		{[]string{"restore", "--kind", "certificate", "--database", "master", "--name", "TDECert", "--apply", "--force", "--confirm-force", "SQLHOST01"}, "a certificate has none"},
		{[]string{"drill", "--kind", "certificate", "--name", "TDECert"}, "--kind certificate needs --database NAME"},
		{[]string{"drill", "--name", "TDECert"}, "add --kind"},
	} {
		r := e.run(append(append([]string{}, tc.args[0], "--config", e.cfgPath, "--host", "SQLHOST01"), tc.args[1:]...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if got := e.srv.Statements(); len(got) != 0 {
		t.Errorf("refused invocations reached SQL Server: %v", got)
	}
}

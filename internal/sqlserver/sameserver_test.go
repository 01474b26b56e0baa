package sqlserver

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/secret"
)

func TestSameServerComparesHostPortAndInstanceAcrossDSNForms(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Fatalf("os.Hostname: %q %v", host, err)
	}
	const pw = "S3cret-Pw"
	for _, tc := range []struct {
		name string
		a, b string
		same bool
	}{
		{"a URL and an ADO string for one host on the default port", "sqlserver://u:" + pw + "@db1:1433?database=master", "server=DB1;user id=u;password=" + pw, true},
		{"an ADO host,port and a URL host:port", "server=db1,14330;user id=u", "sqlserver://u@db1:14330", true},
		{"an ODBC string and a URL", "odbc:server=db1,1433;uid=u;pwd={" + pw + "}", "sqlserver://u@Db1", true},
		{"different ports on one host", "sqlserver://u@db1", "sqlserver://u@db1:14330", false},
		{"port= in ADO differs from the default", "server=db1;port=14331", "server=db1", false},
		{"localhost and 127.0.0.1", "sqlserver://u@localhost:1433", "server=127.0.0.1,1433", true},
		{"::1 and localhost", "sqlserver://u@[::1]:1433", "sqlserver://u@localhost", true},
		{"(local) and 127.0.0.1", "server=(local)", "sqlserver://u@127.0.0.1", true},
		{"this machine's name and 127.0.0.1", "sqlserver://u@" + strings.ToUpper(host), "server=127.0.0.1", true},
		{"the same named instance in either case", "sqlserver://u@db1/PROD", `server=db1\prod;user id=u`, true},
		{"different named instances", "sqlserver://u@db1/PROD", `server=db1\SCRATCH`, false},
		{"MSSQLSERVER is the default instance on 1433", "sqlserver://u@db1/MSSQLSERVER", "server=db1", true},
		{"an instance without port against a port cannot be told apart", "sqlserver://u@db1/PROD", "sqlserver://u@db1:50000", true},
		{"an instance with its port is the port", `server=db1\PROD,50000`, "sqlserver://u@db1:50001", false},
		{"different addresses", "sqlserver://u@10.0.0.1", "sqlserver://u@10.0.0.2", false},
		{"an unreadable DSN counts as the same", "sqlserver://u:" + pw + "@db1:notaport", "sqlserver://u@db2", true},
		{"an unreadable ADO port counts as the same", "server=db1;port=notaport;password=" + pw, "sqlserver://u@db2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, pair := range [][2]string{{tc.a, tc.b}, {tc.b, tc.a}} {
				same, why := SameServer(context.Background(), secret.New(pair[0]), secret.New(pair[1]))
				if same != tc.same {
					t.Fatalf("SameServer(%q, %q) = %v (%s), want %v", pair[0], pair[1], same, why, tc.same)
				}
				if why == "" || strings.Contains(why, pw) {
					t.Fatalf("why %q is empty or holds the password", why)
				}
				t.Log(why)
			}
		})
	}
}

func TestSameServerTellsNamesThatDoNotResolveApartByName(t *testing.T) {
	same, why := SameServer(context.Background(), secret.New("server=prod-sql.invalid"), secret.New("server=scratch-sql.invalid"))
	if same {
		t.Fatalf("two different unresolvable names counted as one server: %s", why)
	}
	same, why = SameServer(context.Background(), secret.New("server=prod-sql.invalid"), secret.New("sqlserver://u@PROD-SQL.invalid."))
	if !same {
		t.Fatalf("one name in two spellings counted as two servers: %s", why)
	}
}

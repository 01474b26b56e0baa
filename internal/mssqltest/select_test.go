package mssqltest

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"
)

func queryOne(t *testing.T, db *sql.DB, q string) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var v any
	err := db.QueryRowContext(ctx, q).Scan(&v)
	return v, err
}

func TestSelect(t *testing.T) {
	named := startServer(t, Config{ServerName: `SQLHOST01\INST1`, InstanceName: "INST1", Edition: "Standard Edition (64-bit)", ProductVersion: "15.0.2000.5"})
	deflt := startServer(t, Config{ServerName: "SQLHOST02"})
	namedAdmin := mustDB(t, named, adminUser, adminPass)
	namedPlain := mustDB(t, named, plainUser, plainPass)
	deflAdmin := mustDB(t, deflt, adminUser, adminPass)

	tests := []struct {
		name  string
		db    *sql.DB
		query string
		want  any
	}{
		{"MachineName is the server name before the backslash", namedAdmin, "SELECT SERVERPROPERTY('MachineName')", "SQLHOST01"},
		{"ServerName includes the instance", namedAdmin, "SELECT SERVERPROPERTY('ServerName')", `SQLHOST01\INST1`},
		{"InstanceName of a named instance", namedAdmin, "SELECT SERVERPROPERTY('InstanceName')", "INST1"},
		{"InstanceName of a default instance is NULL", deflAdmin, "SELECT SERVERPROPERTY('InstanceName')", nil},
		{"MachineName defaults to ServerName", deflAdmin, "SELECT SERVERPROPERTY('MachineName')", "SQLHOST02"},
		{"ProductVersion is configurable", namedAdmin, "SELECT SERVERPROPERTY('ProductVersion')", "15.0.2000.5"},
		{"ProductVersion has a default", deflAdmin, "SELECT SERVERPROPERTY('ProductVersion')", "16.0.4135.4"},
		{"Edition is configurable", namedAdmin, "SELECT SERVERPROPERTY('Edition')", "Standard Edition (64-bit)"},
		{"Edition has a default", deflAdmin, "SELECT SERVERPROPERTY('Edition')", "Developer Edition (64-bit)"},
		{"ProductLevel is RTM", deflAdmin, "SELECT SERVERPROPERTY('ProductLevel')", "RTM"},
		{"EngineEdition follows the edition", namedAdmin, "SELECT SERVERPROPERTY('EngineEdition')", int64(2)},
		{"EngineEdition of Developer is 3", deflAdmin, "SELECT SERVERPROPERTY('EngineEdition')", int64(3)},
		{"an unknown property is NULL", deflAdmin, "SELECT SERVERPROPERTY('NoSuchThing')", nil},
		{"@@SERVERNAME", namedAdmin, "SELECT @@SERVERNAME", `SQLHOST01\INST1`},
		{"keywords are case-insensitive and whitespace is free", namedAdmin, "select\n\t serverproperty (\r\n'servername' ) ;", `SQLHOST01\INST1`},
		{"HAS_PERMS_BY_NAME is 1 with CONTROL SERVER", namedAdmin, "SELECT HAS_PERMS_BY_NAME(NULL, NULL, 'CONTROL SERVER')", int64(1)},
		{"HAS_PERMS_BY_NAME is 0 without CONTROL SERVER", namedPlain, "SELECT HAS_PERMS_BY_NAME(NULL, NULL, N'CONTROL SERVER')", int64(0)},
		{"an integer literal", deflAdmin, "SELECT 42", int64(42)},
		{"a negative integer literal", deflAdmin, "SELECT -7", int64(-7)},
		{"an N string literal with a doubled quote", deflAdmin, "SELECT N'it''s ü😀'", "it's ü😀"},
		{"a plain string literal", deflAdmin, "SELECT 'abc'", "abc"},
		{"NULL", deflAdmin, "SELECT NULL", nil},
		{"CAST to nvarchar(n) truncates", deflAdmin, "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(4))", "16.0"},
		{"CAST of NULL stays NULL", deflAdmin, "SELECT CAST(SERVERPROPERTY('InstanceName') AS nvarchar(128))", nil},
		{"CAST of a string to int", deflAdmin, "SELECT CAST(N'12' AS int)", int64(12)},
		{"CAST of a property to int", deflAdmin, "SELECT CAST(SERVERPROPERTY('EngineEdition') AS INT)", int64(3)},
		{"CAST of an int to nvarchar", deflAdmin, "SELECT CAST(5 AS nvarchar(10))", "5"},
		{"the driver's ping", deflAdmin, "select 1;", int64(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := queryOne(t, tt.db, tt.query)
			if err != nil {
				t.Fatalf("%s: %v", tt.query, err)
			}
			if got != tt.want {
				t.Fatalf("%s = %#v, want %#v", tt.query, got, tt.want)
			}
		})
	}

	t.Run("@@VERSION names the product", func(t *testing.T) {
		got, err := queryOne(t, deflAdmin, "SELECT @@VERSION")
		if s, _ := got.(string); err != nil || !strings.Contains(s, "Microsoft SQL Server 2022") || !strings.Contains(s, "16.0.4135.4") {
			t.Fatalf("@@VERSION = %q, %v", got, err)
		}
	})
	t.Run("@@SPID is a session id", func(t *testing.T) {
		got, err := queryOne(t, deflAdmin, "SELECT @@SPID")
		if n, _ := got.(int64); err != nil || n < 50 {
			t.Fatalf("@@SPID = %v, %v", got, err)
		}
	})
	t.Run("several items with aliases come back as named columns", func(t *testing.T) {
		rows, err := namedAdmin.Query("SELECT SERVERPROPERTY('MachineName') AS machine, SERVERPROPERTY('InstanceName') AS [instance], 1 AS one, NULL nothing")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		if strings.Join(cols, ",") != "machine,instance,one,nothing" {
			t.Fatalf("columns %v", cols)
		}
		if !rows.Next() {
			t.Fatal("no row")
		}
		var m, i sql.NullString
		var one, nothing sql.NullInt64
		if err := rows.Scan(&m, &i, &one, &nothing); err != nil {
			t.Fatal(err)
		}
		if m.String != "SQLHOST01" || i.String != "INST1" || one.Int64 != 1 || nothing.Valid {
			t.Fatalf("row %v %v %v %v", m, i, one, nothing)
		}
	})

	errTests := []struct {
		name   string
		query  string
		number int32
	}{
		{"an unknown statement is a syntax error", "DROP DATABASE master", 102},
		{"a SELECT without items is a syntax error", "SELECT FROM x", 102},
		{"an unclosed quote is error 105", "SELECT N'abc", 105},
		{"a failed conversion is error 245", "SELECT CAST(N'abc' AS int)", 245},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := queryOne(t, deflAdmin, tt.query)
			if got := errNumber(err); got != tt.number {
				t.Fatalf("%s: %v (number %d), want %d", tt.query, err, got, tt.number)
			}
		})
	}
	t.Run("a parameterised query is refused like SQL Server refuses parameters in BACKUP", func(t *testing.T) {
		var v any
		err := deflAdmin.QueryRow("SELECT @p1", 1).Scan(&v)
		if errNumber(err) != 102 {
			t.Fatalf("err %v", err)
		}
	})
}

func TestLongMessagesSpanSeveralPackets(t *testing.T) {
	long := strings.Repeat("ab😀", 1000) // 4000 UTF-16 units: a 8000+ byte batch and reply
	for _, tt := range []struct {
		name   string
		mode   EncryptionMode
		params map[string]string
	}{
		{"with the default packet size and no TLS", EncryptNotSupported, nil},
		{"with the default packet size and login-only TLS", EncryptOff, nil},
		{"with 512-byte packets over full TLS", EncryptRequired, map[string]string{"packet size": "512"}},
		{"with 32767-byte packets over TDS 8", EncryptStrict, map[string]string{"packet size": "32767"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{Encryption: tt.mode})
			db, err := openDB(t, srv.DSN(adminUser, adminPass, tt.params))
			if err != nil {
				t.Fatal(err)
			}
			got, err := queryOne(t, db, "SELECT N'"+long+"'")
			if err != nil || got != long {
				t.Fatalf("got %d chars, %v", len(fmt.Sprint(got)), err)
			}
		})
	}
}

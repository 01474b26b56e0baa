// Command mssql-standin runs the mssqltest SQL Server stand-in for demos.
// The login password is read from MSSQL_STANDIN_PASSWORD only.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("mssql-standin: ")
	listen := flag.String("listen", "127.0.0.1:0", "listen address (only 127.0.0.1 with port 0 is supported)")
	user := flag.String("user", "", "SQL login name")
	serverName := flag.String("server-name", "", `@@SERVERNAME, e.g. SQLHOST01 or SQLHOST01\INST1`)
	instance := flag.String("instance", "", "SERVERPROPERTY('InstanceName'); empty = default instance")
	encrypt := flag.String("encrypt", "off", "off|required|not-supported|strict")
	noControl := flag.Bool("no-control-server", false, "login lacks CONTROL SERVER")
	sysadmin := flag.Bool("sysadmin", false, "login is a member of sysadmin (may run xp_delete_files)")
	denyBulk := flag.Bool("deny-bulk", false, "DENY ADMINISTER BULK OPERATIONS to the login (OPENROWSET(BULK …) fails with Msg 4834)")
	linuxBulk := flag.Bool("bulk-requires-sysadmin", false, "only sysadmin may run OPENROWSET(BULK …), as on SQL Server on Linux before 2022 CU24")
	var broken []mssqltest.Undecryptable
	flag.Func("undecryptable-credential", "a credential under the current service master key that no longer decrypts: RESTORE SERVICE MASTER KEY fails with Msg 15320 unless FORCE (repeatable)", func(name string) error {
		broken = append(broken, mssqltest.Undecryptable{Kind: mssqltest.SecretCredential, Name: name})
		return nil
	})
	flag.Func("undecryptable-linked-login", "a linked server login whose password no longer decrypts: RESTORE SERVICE MASTER KEY fails with Msg 15393 unless FORCE (repeatable)", func(name string) error {
		broken = append(broken, mssqltest.Undecryptable{Kind: mssqltest.SecretLinkedLogin, Name: name})
		return nil
	})
	smkBroken := flag.Bool("smk-undecryptable", false, "the current service master key itself no longer decrypts: RESTORE SERVICE MASTER KEY fails with Msg 15329 unless FORCE")
	hierarchy := flag.String("hierarchy", "", `JSON file of databases, master keys, certificates and TDE: {"databases": [{"name": "Sales", "tde_certificate": "TDECert", "master_key": {"password": "…", "no_service_master_key": false}, "certificates": [{"name": "…", "private_key": "MK|PW|NA", "password": "…", "expiry": "2030-01-01T00:00:00Z"}]}]} (passwords live in this file, never on the command line)`)
	version := flag.String("product-version", "", "SERVERPROPERTY('ProductVersion'), e.g. 15.0.4355.3 for SQL Server 2019 (no FORMAT = 'PFX'); default 16.0.4135.4")
	ownedDBs := flag.String("owned-databases", "", "comma-separated databases the login owns (CONTROL on them) when it lacks CONTROL SERVER")
	portFile := flag.String("port-file", "", "write the port number to this file")
	verbose := flag.Bool("v", false, "debug log to stderr")
	flag.Parse()

	password := os.Getenv("MSSQL_STANDIN_PASSWORD")
	if *user == "" || password == "" {
		log.Fatal("--user and env MSSQL_STANDIN_PASSWORD are required")
	}
	if host, port, err := net.SplitHostPort(*listen); err != nil || host != "127.0.0.1" || port != "0" {
		log.Fatalf("--listen %q: only 127.0.0.1:0 is supported", *listen)
	}
	modes := map[string]mssqltest.EncryptionMode{
		"off": mssqltest.EncryptOff, "required": mssqltest.EncryptRequired,
		"not-supported": mssqltest.EncryptNotSupported, "strict": mssqltest.EncryptStrict,
	}
	mode, ok := modes[*encrypt]
	if !ok {
		log.Fatalf("--encrypt %q: want off, required, not-supported or strict", *encrypt)
	}
	if *smkBroken {
		broken = append([]mssqltest.Undecryptable{{Kind: mssqltest.SecretServiceMasterKey}}, broken...)
	}
	var dbs []mssqltest.Database
	if *hierarchy != "" {
		var err error
		if dbs, err = readHierarchy(*hierarchy); err != nil {
			log.Fatalf("--hierarchy: %v", err)
		}
	}
	var owned []string
	if *ownedDBs != "" {
		owned = strings.Split(*ownedDBs, ",")
	}
	cfg := mssqltest.Config{
		Logins:               []mssqltest.Login{{User: *user, Password: password, ControlServer: !*noControl, Sysadmin: *sysadmin, DenyBulk: *denyBulk, Databases: owned}},
		ProductVersion:       *version,
		Databases:            dbs,
		ServerName:           *serverName,
		InstanceName:         *instance,
		Encryption:           mode,
		BulkRequiresSysadmin: *linuxBulk,
		Undecryptable:        broken,
	}
	if *verbose {
		cfg.Logf = log.Printf
	}
	srv, err := mssqltest.NewServer(cfg)
	if err != nil {
		log.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(srv.Addr())
	if *portFile != "" {
		if err := os.WriteFile(*portFile, []byte(port), 0o644); err != nil {
			srv.Close()
			log.Fatal(err)
		}
	}
	fmt.Printf("listening %s ca=%s\n", srv.Addr(), srv.CAFile())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	srv.Close()
}

// readHierarchy reads the --hierarchy file: {"databases": [...]} with the
// fields of mssqltest.Database; an unknown field is an error, so a typo
// never passes silently.
func readHierarchy(path string) ([]mssqltest.Database, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f struct {
		Databases []mssqltest.Database `json:"databases"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f.Databases, nil
}

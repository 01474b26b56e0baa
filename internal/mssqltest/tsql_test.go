//go:build unix

package mssqltest

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/testutil"
)

// TestFreeTDSClientAgrees cross-checks the stand-in with an independent TDS
// implementation: FreeTDS tsql. The password is not put on tsql's argv:
// without -P, tsql reads it from the terminal, or from stdin when there is
// no controlling terminal (hence Setsid).
func TestFreeTDSClientAgrees(t *testing.T) {
	tsql, err := exec.LookPath("tsql")
	if err != nil {
		testutil.Skip(t, "FreeTDS tsql not installed (Debian package freetds-bin): %v", err)
	}
	for _, tt := range []struct {
		name string
		mode EncryptionMode
	}{
		{"tsql works with a server without TLS", EncryptNotSupported},
		{"tsql works with an OFF server (login encrypted)", EncryptOff},
		{"tsql works with a forced-encryption server", EncryptRequired},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{Encryption: tt.mode, ServerName: `SQLHOST01\INST1`, InstanceName: "INST1"})
			dir := t.TempDir()
			keyPath := filepath.Join(dir, "it's tsql.key")
			pw := "Tsql-Pa55'word"
			input := adminPass + "\n" +
				"SELECT @@SERVERNAME AS name\ngo\n" +
				backupStmt(keyPath, pw) + "\ngo\n" +
				"SELECT 'after-backup'\ngo\nexit\n"
			got := runTsql(t, tsql, srv, adminUser, input, dir)
			for _, want := range []string{`SQLHOST01\INST1`, "after-backup"} {
				if !strings.Contains(got, want) {
					t.Fatalf("tsql output lacks %q:\n%s", want, got)
				}
			}
			if strings.Contains(got, "Msg ") {
				t.Fatalf("tsql reported an error:\n%s", got)
			}
			data, err := os.ReadFile(keyPath)
			if err != nil {
				t.Fatalf("key file: %v\n%s", err, got)
			}
			if _, err := OpenKeyFile(data, pw); err != nil {
				t.Fatalf("OpenKeyFile: %v", err)
			}
		})
	}
}

// runTsql runs FreeTDS tsql against srv as user, feeding input (the
// password first) on stdin, and returns what it printed.
func runTsql(t *testing.T, tsql string, srv *Server, user, input, home string) string {
	t.Helper()
	host, port, _ := strings.Cut(srv.Addr(), ":")
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tsql, "-H", host, "-p", port, "-U", user)
	cmd.Env = append(os.Environ(), "TDSVER=7.4", "FREETDSCONF=/dev/null", "HOME="+home)
	cmd.Stdin = strings.NewReader(input)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("tsql: %v\n%s", err, out.String())
	}
	return out.String()
}

// TestFreeTDSReadsAndDeletesAServerFile cross-checks the varbinary(max)
// PLP encoding and the xp_delete_files reply (RETURNSTATUS, DONEPROC) with
// FreeTDS.
func TestFreeTDSReadsAndDeletesAServerFile(t *testing.T) {
	tsql, err := exec.LookPath("tsql")
	if err != nil {
		testutil.Skip(t, "FreeTDS tsql not installed (Debian package freetds-bin): %v", err)
	}
	srv := startServer(t, Config{Logins: []Login{{User: sysUser, Password: sysPass, Sysadmin: true}}})
	dir := t.TempDir()
	path := filepath.Join(dir, "it's a key.key")
	data := writeRandom(t, path, 3*plpChunkSize+5)
	input := sysPass + "\n" +
		"SELECT BulkColumn, DATALENGTH(BulkColumn) AS n FROM OPENROWSET(BULK " + quoted(path) + ", SINGLE_BLOB) AS k\ngo\n" +
		"EXEC master.sys.xp_delete_files " + quoted(path) + "\ngo\n" +
		"SELECT 'after-delete'\ngo\nexit\n"
	got := runTsql(t, tsql, srv, sysUser, input, dir)
	if !strings.Contains(strings.ToLower(got), hex.EncodeToString(data)) {
		t.Fatalf("tsql did not print the file's %d bytes as hex:\n%.600s", len(data), got)
	}
	for _, want := range []string{itoa(len(data)), "after-delete"} {
		if !strings.Contains(got, want) {
			t.Fatalf("tsql output lacks %q:\n%.600s", want, got)
		}
	}
	if strings.Contains(got, "Msg ") {
		t.Fatalf("tsql reported an error:\n%s", got)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("xp_delete_files through tsql left the file: %v", err)
	}
}

// TestFreeTDSReadsTheHierarchy cross-checks the catalog types (varbinary,
// uniqueidentifier, datetime, bit), USE with a delimited name, OPEN MASTER
// KEY, BACKUP MASTER KEY and an error of the hierarchy with FreeTDS.
func TestFreeTDSReadsTheHierarchy(t *testing.T) {
	tsql, err := exec.LookPath("tsql")
	if err != nil {
		testutil.Skip(t, "FreeTDS tsql not installed (Debian package freetds-bin): %v", err)
	}
	srv := startServer(t, hierarchyConfig())
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "it's hr.key")
	salesPath := filepath.Join(dir, "sales.key")
	mk, _ := srv.MasterKeyOf("H]R")
	input := adminPass + "\n" +
		"SELECT name, thumbprint, pvt_key_encryption_type, expiry_date FROM master.sys.certificates WHERE name = N'TDECert'\ngo\n" +
		"SELECT database_id, encryptor_thumbprint FROM sys.dm_database_encryption_keys WHERE database_id = 5\ngo\n" +
		"SELECT name, is_master_key_encrypted_by_server FROM sys.databases WHERE name = N'H]R'\ngo\n" +
		"USE [H]]R]\ngo\n" +
		"OPEN MASTER KEY DECRYPTION BY PASSWORD = N'Wrong-Pa55word'\ngo\n" +
		"OPEN MASTER KEY DECRYPTION BY PASSWORD = " + quote(hrDMKPass) + "\ngo\n" +
		"BACKUP MASTER KEY TO FILE = " + quote(keyPath) + " ENCRYPTION BY PASSWORD = " + quote(newKeyPass) + "\ngo\n" +
		"SELECT key_guid FROM sys.symmetric_keys\ngo\n" +
		"USE Sales\ngo\n" +
		"BACKUP MASTER KEY TO FILE = " + quote(salesPath) + " ENCRYPTION BY PASSWORD = " + quote(newKeyPass) + "\ngo\n" +
		"USE [H]]R]\ngo\nCLOSE MASTER KEY\ngo\n" +
		restoreMK(salesPath, newKeyPass, newKeyPass) + " FORCE\ngo\n" +
		"SELECT 'after-hierarchy'\ngo\nexit\n"
	got := runTsql(t, tsql, srv, adminUser, input, dir)
	tde, _ := srv.CertificateOf("master", "TDECert")
	// The FORCE restore over a closed key reports its loss as an
	// informational message (15585).
	for _, want := range []string{hex.EncodeToString(tde.Thumbprint), strings.ToLower(mk.GUID), "after-hierarchy", "msg 15313", "h]r",
		"the error was ignored because the force option was specified"} {
		if !strings.Contains(strings.ToLower(got), want) {
			t.Fatalf("tsql output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "severity 16"); n != 1 {
		t.Fatalf("%d errors, want only the 15313:\n%s", n, got)
	}
	data, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatalf("key file: %v\n%s", err, got)
	}
	if _, key, err := OpenMasterKeyFile(data, newKeyPass); err != nil || !bytes.Equal(key, mk.Key) {
		t.Fatalf("OpenMasterKeyFile: %v", err)
	}
}

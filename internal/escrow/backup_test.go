package escrow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/receipt"
)

func TestBackupArchivesTheKeyToEveryDestinationAndProvesEachCopy(t *testing.T) {
	e := newEnv(t)
	rec, err := e.backup()
	if err != nil {
		t.Fatalf("Backup: %v\nlogs:\n%s", err, e.logs)
	}
	if rec.Status != receipt.StatusOK || rec.ExitCode != 0 || exitcode.Code(err) != 0 || rec.Error != nil {
		t.Fatalf("receipt status %q exit %d error %+v, want ok, 0, none", rec.Status, rec.ExitCode, rec.Error)
	}
	if rec.Host != serverName || rec.Instance != "MSSQLSERVER" || rec.Kind != receipt.KindServiceMasterKey || rec.RunID != e.runner.RunID {
		t.Errorf("receipt identity host=%q instance=%q kind=%q run=%q", rec.Host, rec.Instance, rec.Kind, rec.RunID)
	}
	if rec.File == nil || rec.File.Name != e.keyFileName() {
		t.Fatalf("receipt file %+v, want name %s", rec.File, e.keyFileName())
	}
	if len(rec.Destinations) != 2 || rec.Destinations[0].Name != fileName || rec.Destinations[1].Name != memName {
		t.Fatalf("receipt destinations %+v, want %s then %s (configuration order)", rec.Destinations, fileName, memName)
	}

	memBytes := e.memRead(e.memKey())
	fileBytes, err := os.ReadFile(filepath.Join(e.fileDir, filepath.FromSlash(e.fileKey())))
	if err != nil {
		t.Fatalf("the file destination has no copy: %v", err)
	}
	if !bytes.Equal(memBytes, fileBytes) {
		t.Fatal("the two destinations hold different bytes")
	}
	sum := sha256.Sum256(memBytes)
	if rec.File.SHA256 != hex.EncodeToString(sum[:]) || rec.File.Bytes != int64(len(memBytes)) {
		t.Errorf("receipt file sha256 %s bytes %d, the stored copies %x and %d", rec.File.SHA256, rec.File.Bytes, sum, len(memBytes))
	}
	smk, err := mssqltest.OpenKeyFile(memBytes, backupPassword)
	if err != nil {
		t.Fatalf("the archived key file does not open with the backup password: %v", err)
	}
	if !bytes.Equal(smk, e.srv.ServiceMasterKey()) {
		t.Fatal("the archived key file holds another service master key")
	}

	for _, d := range rec.Destinations {
		if d.Status != receipt.DestVerified || d.Error != nil || !d.ReadBack || !d.Checksum.Match {
			t.Errorf("%s: status %q error %+v read_back %v match %v, want verified", d.Name, d.Status, d.Error, d.ReadBack, d.Checksum.Match)
		}
		if d.Checksum.Algorithm != receipt.ChecksumSHA256 || d.Checksum.Local != rec.File.SHA256 || d.Checksum.Remote != rec.File.SHA256 {
			t.Errorf("%s: checksum %+v, want SHA256 %s both sides", d.Name, d.Checksum, rec.File.SHA256)
		}
	}
	m := dest(t, rec, memName)
	if m.VersionID == "" || m.Region != "us-east-2" || m.Type != "memory" || m.Location != "mem://corp-sql-keys/"+e.memKey() {
		t.Errorf("memory destination %+v", m)
	}
	if m.Retention == nil || m.Retention.Mode != "COMPLIANCE" || m.Retention.Until.Before(testNow.Add(30*24*time.Hour)) {
		t.Errorf("memory destination retention %+v, want COMPLIANCE until at least %s", m.Retention, testNow.Add(30*24*time.Hour))
	}
	f := dest(t, rec, fileName)
	if f.VersionID != "" || f.Retention != nil || f.Type != "file" || f.Location != filepath.Join(e.fileDir, filepath.FromSlash(e.fileKey())) {
		t.Errorf("file destination %+v", f)
	}

	// The receipt is stored beside each copy, locked like it.
	memReceipt := parseReceipt(t, e.memRead(receiptKey(e.memKey())))
	st, err := e.mem.Stat(context.Background(), receiptKey(e.memKey()), "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Retention == nil || st.Retention.Mode != "COMPLIANCE" {
		t.Errorf("the stored receipt's retention is %+v, want COMPLIANCE like the key", st.Retention)
	}
	fileDoc, err := os.ReadFile(filepath.Join(e.fileDir, filepath.FromSlash(receiptKey(e.fileKey()))))
	if err != nil {
		t.Fatalf("no receipt beside the key at the file destination: %v", err)
	}
	fileReceipt := parseReceipt(t, fileDoc)
	for name, r := range map[string]receipt.Receipt{"memory": memReceipt, "file": fileReceipt} {
		if r.Status != receipt.StatusProven || r.RunID != rec.RunID || r.File == nil || r.File.SHA256 != rec.File.SHA256 || len(r.Destinations) != 2 {
			t.Errorf("the receipt stored at the %s destination: %+v", name, r)
		}
	}

	if _, err := os.Lstat(e.localKeyPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the local key file is still there after every copy was verified (%v)", err)
	}
	if got := e.locks.Load(); got != 1 {
		t.Errorf("the lock was taken %d times, want once", got)
	}
}

func TestBackupReadsTheKeyWhereThisHostSeesTheServersFolder(t *testing.T) {
	var (
		mu       sync.Mutex
		received []string
		local    string
	)
	e := newEnv(t, func(s *setup) {
		s.server.MapPath = func(p string) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			received = append(received, p)
			name, ok := strings.CutPrefix(p, `C:\keys\`)
			if !ok || strings.ContainsAny(name, `\/`) {
				return "", fmt.Errorf("the stand-in has no path %s", p)
			}
			return filepath.Join(local, name), nil
		}
	})
	local = e.keyDir
	e.runner.Config.Backup.ServerDirectory = `C:\keys`
	e.runner.Config.Backup.LocalDirectory = e.keyDir

	if _, err := e.backup(); err != nil {
		t.Fatalf("Backup: %v\nlogs:\n%s", err, e.logs)
	}
	mu.Lock()
	defer mu.Unlock()
	want := `C:\keys\` + e.keyFileName()
	if len(received) != 1 || received[0] != want {
		t.Errorf("the server was asked for %q, want [%q]", received, want)
	}
}

func TestEveryRunUsesANewKeyFileName(t *testing.T) {
	e := newEnv(t, func(s *setup) { s.keepLocal = true })
	first, err := e.backup()
	if err != nil {
		t.Fatal(err)
	}
	e.runner.RunID = NewRunID()
	second, err := e.backup()
	if err != nil {
		t.Fatalf("a second run at the same second failed: %v", err)
	}
	if first.File.Name == second.File.Name {
		t.Fatalf("two runs used the same file name %s", first.File.Name)
	}
	entries, _ := os.ReadDir(e.keyDir)
	if len(entries) != 2 {
		t.Errorf("the key folder holds %d files, want 2", len(entries))
	}
}

func TestBackupOfANamedInstance(t *testing.T) {
	e := newEnv(t, func(s *setup) {
		s.server.ServerName = `SQLHOST01\INST1`
		s.server.InstanceName = "INST1"
		s.keepLocal = true
	})
	rec, err := e.backup()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	name := backupFileName(`SQLHOST01\INST1`, testNow, e.runner.RunID)
	if !strings.HasPrefix(name, "SQLHOST01$INST1-servicemasterkey-") || rec.File.Name != name {
		t.Fatalf("file %s, want %s", rec.File.Name, name)
	}
	if rec.Host != "SQLHOST01" || rec.Instance != "INST1" {
		t.Errorf("host %q instance %q", rec.Host, rec.Instance)
	}
	key := objectKey(memPrefix, "SQLHOST01", "INST1", receipt.KindServiceMasterKey, name)
	if _, err := e.mem.Stat(context.Background(), key, ""); err != nil {
		t.Errorf("no copy at %s: %v", key, err)
	}
	if _, err := os.Stat(filepath.Join(e.keyDir, name)); err != nil {
		t.Errorf("no local key file %s: %v", name, err)
	}
}

package escrow

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
)

func TestArchiveArchivesAGivenFileWithoutSQLServerAndKeepsIt(t *testing.T) {
	e := newEnv(t)
	data := []byte("a service master key backup made by hand")
	file := filepath.Join(t.TempDir(), "prod-smk.key")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := e.runner.Archive(testContext(t), file, `SQLHOST01\INST1`)
	if err != nil {
		t.Fatalf("Archive: %v", err)
	}
	if rec.Status != receipt.StatusOK || rec.Host != "apphost" || rec.Instance != `SQLHOST01\INST1` {
		t.Errorf("receipt status %q host %q instance %q", rec.Status, rec.Host, rec.Instance)
	}
	if e.connects.Load() != 0 || len(e.srv.Statements()) != 0 {
		t.Errorf("archive talked to SQL Server: %d connects, statements %v", e.connects.Load(), e.srv.Statements())
	}
	wantName := archiveFileName(file, testNow, e.runner.RunID)
	if rec.File == nil || rec.File.Name != wantName || !strings.HasPrefix(wantName, "prod-smk-") || !strings.HasSuffix(wantName, ".key") {
		t.Fatalf("receipt file %+v, want %s", rec.File, wantName)
	}
	key := objectKey(memPrefix, "apphost", `SQLHOST01\INST1`, receipt.KindServiceMasterKey, wantName)
	if key != "sqlkeys/apphost/SQLHOST01_INST1/service-master-key/"+wantName {
		t.Errorf("key %s does not carry host and instance", key)
	}
	if got := e.memRead(key); !bytes.Equal(got, data) {
		t.Error("the archived bytes differ from the file")
	}
	stored := parseReceipt(t, e.memRead(receiptKey(key)))
	if stored.Status != receipt.StatusProven || stored.Instance != `SQLHOST01\INST1` {
		t.Errorf("stored receipt %+v", stored)
	}
	for _, d := range rec.Destinations {
		if d.Status != receipt.DestVerified || !d.ReadBack {
			t.Errorf("%s: %+v", d.Name, d)
		}
	}
	if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, data) {
		t.Errorf("archive touched the given file: %v", err)
	}
}

func TestArchiveKeepsTheFileAlsoWhenADestinationFails(t *testing.T) {
	e := newEnv(t, func(s *setup) { s.mem.Region = homeRegion; s.memDest.Region = "" })
	file := filepath.Join(t.TempDir(), "smk.key")
	if err := os.WriteFile(file, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := e.runner.Archive(testContext(t), file, "MSSQLSERVER")
	if code := exitcode.Code(err); code != exitcode.Policy {
		t.Fatalf("exit code %d (%v), want 4", code, err)
	}
	if d := dest(t, rec, fileName); d.Status != receipt.DestVerified {
		t.Errorf("file destination %+v", d)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the given file is gone: %v", err)
	}
}

func TestArchiveRefusesWhatIsNotAKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, file, want string
	}{
		{"a missing file", filepath.Join(dir, "missing.key"), "no such file"},
		{"an empty file", write("empty.key", nil), "is empty"},
		{"a file larger than any key backup", write("big.key", make([]byte, maxKeyFileSize+1)), "not a key backup"},
		{"a folder", dir, "not a regular file"},
	}
	cases = append(cases, specialFiles(t, dir)...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rec, err := e.runner.Archive(testContext(t), tc.file, "MSSQLSERVER")
			if code := exitcode.Code(err); code != exitcode.Usage {
				t.Fatalf("exit code %d (%v), want 2", code, err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "cannot archive") {
				t.Errorf("the error %q does not say %q", err, tc.want)
			}
			if rec.Status != receipt.StatusFailed || rec.Error == nil || rec.Error.Code != exitcode.Usage {
				t.Errorf("receipt %+v", rec)
			}
			if n := e.mem.Requests()["preflight"]; n != 0 || e.locks.Load() != 0 {
				t.Errorf("preflight ran %d times, lock taken %d times, for a file that cannot be archived", n, e.locks.Load())
			}
			e.assertNothingWritten()
		})
	}
}

func TestAKeyFileOfExactlyTheLimitIsArchived(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "edge.key")
	if err := os.WriteFile(file, bytes.Repeat([]byte{1}, maxKeyFileSize), 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := e.runner.Archive(testContext(t), file, "MSSQLSERVER")
	if err != nil {
		t.Fatalf("Archive: %v", err)
	}
	if rec.File.Bytes != maxKeyFileSize {
		t.Errorf("bytes %d", rec.File.Bytes)
	}
}

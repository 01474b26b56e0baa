//go:build unix

package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// TestTheStoredReceiptNeverSaysOkForARunThatFailed is issue 12's item 3: the
// folder destination takes the key copy but not its receipt (the process
// may write no file larger than 2 KiB: a full disk after the key, without
// root), while S3 takes both. The run fails with exit 5; the receipt
// stored in S3 must not read as a successful run.
func TestTheStoredReceiptNeverSaysOkForARunThatFailed(t *testing.T) {
	srv := s3srv.Start(t, s3srv.VersityGW, s3Region)
	e := newS3Env(t, srv, lockBucket())
	e.writeS3(s3Dest{extra: "  - name: usb\n    type: file\n    path: " + e.usbDir + "\n"})
	key := make([]byte, 150)
	_, _ = rand.Read(key)
	in := filepath.Join(e.root, "smk.key")
	if err := os.WriteFile(in, key, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", `ulimit -f 2 && exec "$0" "$@"`, binary, "archive", "--config", e.cfgPath, "--json", "--host", "SQLHOST07", in)
	cmd.Dir = e.root
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	e.assertNoSecrets(r)
	rec := parseReceipt(t, r.stdout)
	if r.code != 5 || rec.Status != "failed" || rec.ExitCode != 5 {
		t.Fatalf("exit %d, want 5 (the folder's receipt could not be stored)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var s3Loc, usbLoc string
	for _, d := range rec.Destinations {
		switch d.Name {
		case "offsite-s3":
			s3Loc = d.Location
			if d.Status != "verified" {
				t.Errorf("S3: %+v", d)
			}
		case "usb":
			usbLoc = d.Location
			if d.Status != "failed" || d.Error == nil || !strings.Contains(d.Error.Message, "receipt") {
				t.Errorf("the folder destination: %+v", d)
			}
		}
	}
	if _, err := os.Stat(usbLoc); err != nil {
		t.Fatalf("the key copy should be in the folder (only its receipt failed): %v", err)
	}
	f := s3Forger{c: srv.Admin(""), bucket: e.bucket}
	doc := f.get(t, f.key(s3Loc)+".receipt.json")
	parseStored(t, string(doc)) // status proven, no exit code, never "ok"
}

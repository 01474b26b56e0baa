//go:build unix

package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestAReadOnlyDestinationFolderIsRefusedBeforeAnythingIsWritten runs the
// binary as an unprivileged user (root ignores permission bits), archiving
// to a folder that user cannot write: exit 4, nothing written.
func TestAReadOnlyDestinationFolderIsRefusedBeforeAnythingIsWritten(t *testing.T) {
	const nobody = 65534
	root, err := os.MkdirTemp("", "keyescrow-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	mk := func(p string, mode os.FileMode, owner int) string {
		if err := os.MkdirAll(p, mode); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(p, mode)
		if os.Geteuid() == 0 {
			if err := os.Chown(p, owner, owner); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	me := os.Geteuid()
	if me == 0 {
		me = nobody
	}
	mk(root, 0o755, 0)
	home := mk(filepath.Join(root, "home"), 0o700, me)
	usb := mk(filepath.Join(root, "usb"), 0o555, 0)
	in := filepath.Join(home, "k.key")
	cfg := filepath.Join(home, "keyescrow.yaml")
	for p, body := range map[string]string{
		in:  "opaque key bytes",
		cfg: "home_region: eu-west-1\ndestinations:\n  - name: usb\n    type: file\n    path: " + usb + "\nlock_file: " + filepath.Join(home, "lock") + "\n",
	} {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			_ = os.Chown(p, me, me)
		}
	}
	cmd := exec.Command(binary, "archive", "--config", cfg, "--json", in)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	}
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); !ok && err != nil {
		t.Fatal(err)
	} else if ok {
		code = ee.ExitCode()
		if code != 4 || !strings.Contains(string(ee.Stderr), "may not create files") {
			t.Errorf("stderr: %s", ee.Stderr)
		}
	}
	if code != 4 {
		t.Fatalf("exit %d, want 4\n%s", code, out)
	}
	if rec := parseReceipt(t, string(out)); rec.Status != "failed" || rec.Destinations[0].Status != "refused" {
		t.Fatalf("receipt: %s", out)
	}
	if left := files(t, usb); len(left) != 0 {
		t.Fatalf("written to a read-only folder: %v", left)
	}
}

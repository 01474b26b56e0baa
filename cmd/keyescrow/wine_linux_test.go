package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

// wine runs the Windows build of keyescrow under Debian's Wine: a
// throw-away prefix, a persistent wineserver (stopped by the test), and
// bcryptprimitives.dll, which Wine 8 lacks and Go's runtime needs
// (ProcessPrng), built from deploy/dev/wine/bcryptprimitives.c with mingw.
type wine struct {
	t      *testing.T
	exe    string
	prefix string
	env    []string
	loader string
	drive  string // the prefix's C: drive on this host
	vars   map[string]string
}

func newWine(t *testing.T) *wine {
	t.Helper()
	loader := ""
	for _, p := range []string{"/usr/lib/wine/wine64", "wine64"} {
		if lp, err := exec.LookPath(p); err == nil {
			loader = lp
			break
		}
	}
	gcc, gccErr := exec.LookPath("x86_64-w64-mingw32-gcc")
	if loader == "" || gccErr != nil {
		testutil.Skip(t, "Wine or mingw is not installed (make test installs wine64 and gcc-mingw-w64-x86-64-win32)")
	}
	dir := t.TempDir()
	w := &wine{t: t, loader: loader, prefix: filepath.Join(dir, "prefix"), exe: filepath.Join(dir, "keyescrow.exe")}
	w.drive = filepath.Join(w.prefix, "drive_c")
	w.env = []string{"WINEPREFIX=" + w.prefix, "WINEDEBUG=-all", "HOME=" + dir, "PATH=" + os.Getenv("PATH"), "WINEDLLOVERRIDES=mscoree,mshtml="}

	build := exec.Command("go", "build", "-o", w.exe, ".")
	build.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building keyescrow.exe: %v\n%s", err, out)
	}
	server := filepath.Join(filepath.Dir(loader), "wineserver")
	if _, err := os.Stat(server); err != nil {
		server = "wineserver"
	}
	srv := exec.Command(server, "-p", "-f")
	srv.Env = w.env
	if err := srv.Start(); err != nil {
		t.Fatalf("wineserver: %v", err)
	}
	t.Cleanup(func() {
		kill := exec.Command(server, "-k")
		kill.Env = w.env
		_ = kill.Run()
		_ = srv.Process.Kill()
		_ = srv.Wait()
	})
	boot := exec.Command(loader, "wineboot", "--init")
	boot.Env = w.env
	if out, err := boot.CombinedOutput(); err != nil {
		t.Fatalf("wineboot: %v\n%s", err, out)
	}
	dll := filepath.Join(w.drive, "windows", "system32", "bcryptprimitives.dll")
	if _, err := os.Stat(dll); err != nil {
		src := filepath.Join("..", "..", "deploy", "dev", "wine", "bcryptprimitives")
		cc := exec.Command(gcc, "-O2", "-shared", "-o", dll, src+".c", src+".def", "-ladvapi32")
		if out, err := cc.CombinedOutput(); err != nil {
			t.Fatalf("building the bcryptprimitives shim: %v\n%s", err, out)
		}
	}
	w.vars = map[string]string{}
	return w
}

// winPath is the Windows path of a host path (Wine maps / to Z:).
func winPath(p string) string { return `Z:` + strings.ReplaceAll(p, "/", `\`) }

func (w *wine) run(args ...string) result {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.loader, append([]string{w.exe}, args...)...)
	cmd.Env = append([]string(nil), w.env...)
	for k, v := range w.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatal(err)
	}
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	(&env{t: w.t}).assertNoSecrets(r)
	return r
}

// TestWindowsBuildUnderWine runs keyescrow.exe as Windows would: drive
// letter paths with spaces and quotes, version, archive and backup to a
// file destination on C:, check, and bad input.
func TestWindowsBuildUnderWine(t *testing.T) {
	w := newWine(t)

	r := w.run("version")
	if r.code != 0 || !strings.Contains(r.stdout, "windows/amd64") {
		t.Fatalf("version: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	srv := newStandin(t, mssqltest.Config{
		ServerName: `WINHOST01\INST1`, InstanceName: "INST1",
		Encryption: mssqltest.EncryptNotSupported,
	})
	keys := filepath.Join(t.TempDir(), "keys it's")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	usb := filepath.Join(w.drive, "key escrow", "usb")
	if err := os.MkdirAll(usb, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(w.drive, "key escrow", "keyescrow.yaml")
	yq := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	yaml := `backup:
  server_directory: ` + yq(keys) + `
  local_directory: ` + yq(winPath(keys)) + `
destinations:
  - name: usb
    type: file
    path: 'C:\key escrow\usb'
lock_file: 'C:\key escrow\run\keyescrow.lock'
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	w.vars["KEYESCROW_CONFIG"] = `C:\key escrow\keyescrow.yaml`
	w.vars["KEYESCROW_SQLSERVER_DSN"] = srv.DSN(loginUser, loginPW, nil)
	w.vars["KEYESCROW_BACKUP_PASSWORD"] = backupPW

	t.Run("check", func(t *testing.T) {
		r := w.run("check")
		if r.code != 0 {
			t.Fatalf("check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("backup to C:", func(t *testing.T) {
		r := w.run("--json", "backup")
		if r.code != 0 {
			t.Fatalf("backup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		rec := parseWineReceipt(t, r.stdout)
		d := rec.Destinations[0]
		if d.Status != "verified" || !d.ReadBack || !strings.HasPrefix(d.Location, `C:\key escrow\usb\`) {
			t.Fatalf("destination %+v, want verified at C:\\key escrow\\usb\\…", d)
		}
		rel := strings.ReplaceAll(strings.TrimPrefix(d.Location, `C:\`), `\`, "/")
		data, err := os.ReadFile(filepath.Join(w.drive, rel))
		if err != nil || sha(data) != rec.File.SHA256 {
			t.Fatalf("the copy on C: (%v) does not hash to the receipt's %s", err, rec.File.SHA256)
		}
		if ents, _ := os.ReadDir(keys); len(ents) != 0 {
			t.Errorf("the local key file was not removed after the copy was verified: %v", ents)
		}
	})

	t.Run("archive a file named by a Windows path", func(t *testing.T) {
		src := filepath.Join(w.drive, "key escrow", "by hand.key")
		if err := os.WriteFile(src, []byte("a key file made by hand"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := w.run("--json", "archive", "--instance", "INST2", `C:\key escrow\by hand.key`)
		if r.code != 0 {
			t.Fatalf("archive: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if rec := parseWineReceipt(t, r.stdout); rec.Instance != "INST2" || rec.Destinations[0].Status != "verified" {
			t.Errorf("receipt %+v", rec)
		}
	})

	t.Run("list, verify and restore on C:", func(t *testing.T) {
		r := w.run("--json", "list", "--host", "winhost01")
		var l listDoc
		if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || r.code != 0 || len(l.Copies) != 1 || l.Copies[0].Instance != "INST1" || len(l.Copies[0].SHA256) != 64 {
			t.Fatalf("list: exit %d (%v)\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		if r := w.run("verify", "--host", "WINHOST01"); r.code != 0 || !strings.Contains(r.stdout, "ok verify") {
			t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		out := `C:\key escrow\restored it's.key`
		if r := w.run("restore", "--host", "WINHOST01", "--out", out); r.code != 0 {
			t.Fatalf("restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		data, err := os.ReadFile(filepath.Join(w.drive, "key escrow", "restored it's.key"))
		if err != nil || sha(data) != l.Copies[0].SHA256 {
			t.Fatalf("the restored file (%v) does not hash to the receipt's %s", err, l.Copies[0].SHA256)
		}
		if r := w.run("restore", "--host", "WINHOST01", "--out", out); r.code != 2 || !strings.Contains(r.stderr, "never overwrites") {
			t.Errorf("a second restore to the same file: exit %d, want 2\n%s", r.code, r.stderr)
		}
		// Into SQL Server: staged in the key folder through Z:, read by
		// the server from its own path, removed afterwards.
		before := srv.ServiceMasterKey()
		if r := w.run("restore", "--host", "WINHOST01", "--apply"); r.code != 0 || !strings.Contains(r.stdout, `restored into WINHOST01\INST1`) {
			t.Fatalf("restore --apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if !bytes.Equal(srv.ServiceMasterKey(), before) {
			t.Error("restoring the server's own key changed it")
		}
		if ents, _ := os.ReadDir(keys); len(ents) != 0 {
			t.Errorf("the staged key file was left in the key folder: %v", ents)
		}
	})

	t.Run("a missing password is exit 2", func(t *testing.T) {
		delete(w.vars, "KEYESCROW_BACKUP_PASSWORD")
		defer func() { w.vars["KEYESCROW_BACKUP_PASSWORD"] = backupPW }()
		r := w.run("backup")
		if r.code != 2 || !strings.Contains(r.stderr, "KEYESCROW_BACKUP_PASSWORD") {
			t.Errorf("exit %d, want 2 naming the variable\n%s", r.code, r.stderr)
		}
	})

	t.Run("a relative destination path is exit 2", func(t *testing.T) {
		r := w.run("--set", `destinations.0.path=key escrow\usb`, "check")
		if r.code != 2 || !strings.Contains(r.stderr, "not an absolute path") {
			t.Errorf("exit %d, want 2 saying the path is not absolute\n%s", r.code, r.stderr)
		}
	})
}

func parseWineReceipt(t *testing.T, stdout string) receipt {
	t.Helper()
	var rec receipt
	if err := json.Unmarshal([]byte(stdout), &rec); err != nil {
		t.Fatalf("stdout is not a receipt: %v\n%s", err, stdout)
	}
	if len(rec.Destinations) != 1 || rec.File == nil {
		t.Fatalf("receipt %+v, want one destination and a file", rec)
	}
	return rec
}

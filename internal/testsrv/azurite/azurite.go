// Package azurite starts and stops Azurite (the Azure Blob emulator that
// deploy/dev/azurite.sh installs into .tools/azurite) for tests: one
// process per server on a free 127.0.0.1 port, over HTTP or HTTPS (with a
// throw-away certificate and --oauth basic), stopped by its PID when the
// test ends. It also serves a fake Entra ID token endpoint for azidentity.
package azurite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/testsrv"
	"github.com/keyescrow/keyescrow/internal/testtls"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

// Azurite's well-known development account.
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Options choose how Azurite listens.
type Options struct {
	// HTTPS serves TLS with a throw-away certificate (Server.CAFile) and
	// accepts bearer tokens (--oauth basic).
	HTTPS bool
}

// Server is one running Azurite.
type Server struct {
	// AccountURL is http(s)://127.0.0.1:PORT/devstoreaccount1.
	AccountURL string
	// CAFile trusts the server's certificate (HTTPS only).
	CAFile string
	// TLS are the certificate files (HTTPS only); the fake token endpoint
	// may reuse them.
	TLS testtls.Files
	// PID of the azurite process.
	PID int
	// DataDir is Azurite's --location (tests corrupt stored bytes in it
	// behind the server's back).
	DataDir string
}

// Bin returns the azurite-blob executable under the repository's
// .tools/azurite, or an error saying how to install it.
func Bin() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	name := "azurite-blob"
	if runtime.GOOS == "windows" {
		name += ".cmd"
	}
	bin := filepath.Join(root, ".tools", "azurite", "node_modules", ".bin", name)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("azurite is not installed at %s: run `make tools-azurite` (deploy/dev/azurite.sh install)", bin)
	}
	return bin, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("azurite: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start runs Azurite for the test; it is stopped by its PID and its data
// removed when the test ends. When Azurite is not installed the test is
// skipped through testutil.Skip (a failure under
// KEYESCROW_TEST_DISALLOW_SKIP=1).
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin, err := Bin()
	if err != nil {
		testutil.Skip(t, "%v", err)
	}
	dir := t.TempDir()
	s := &Server{DataDir: filepath.Join(dir, "data")}
	args := []string{"--blobHost", "127.0.0.1", "--location", s.DataDir, "--skipApiVersionCheck", "--disableTelemetry", "--silent"}
	scheme := "http"
	if o.HTTPS {
		if s.TLS, err = testtls.Write(dir); err != nil {
			t.Fatal(err)
		}
		s.CAFile = s.TLS.CA
		args = append(args, "--cert", s.TLS.Cert, "--key", s.TLS.Key, "--oauth", "basic")
		scheme = "https"
	}
	var lastErr error
	for range 3 {
		port, err := testsrv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if pid, err := run(t, bin, append(args, "--blobPort", strconv.Itoa(port))); err != nil {
			lastErr = err
			continue
		} else {
			s.PID = pid
		}
		s.AccountURL = fmt.Sprintf("%s://127.0.0.1:%d/%s", scheme, port, AccountName)
		return s
	}
	t.Fatalf("azurite did not start: %v", lastErr)
	return nil
}

// run starts bin and waits until it says it listens; the process is
// stopped by its PID at cleanup.
func run(t testing.TB, bin string, args []string) (int, error) {
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid
	stop := func() {
		if p, err := os.FindProcess(pid); err == nil {
			if runtime.GOOS == "windows" {
				_ = p.Kill()
			} else {
				_ = p.Signal(os.Interrupt)
				done := make(chan struct{})
				go func() { _ = cmd.Wait(); close(done) }()
				select {
				case <-done:
					return
				case <-time.After(5 * time.Second):
					_ = p.Kill()
				}
			}
		}
		_ = cmd.Wait()
	}
	ready := make(chan error, 1)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if log.Len() < 4096 {
				log.WriteString(line + "\n")
			}
			if strings.Contains(line, "successfully listens") {
				ready <- nil
			}
		}
		ready <- fmt.Errorf("azurite exited before listening:\n%s", log.String())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	select {
	case err := <-ready:
		if err != nil {
			stop()
			return 0, err
		}
	case <-ctx.Done():
		stop()
		return 0, fmt.Errorf("azurite did not listen within 60s:\n%s", log.String())
	}
	t.Cleanup(stop)
	return pid, nil
}

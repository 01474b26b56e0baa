//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within runs f and fails the test when it has not returned after 20 s: a
// FIFO that blocks the reader must fail the test, not hang it.
func within[T any](t *testing.T, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(20 * time.Second):
		t.Fatal("blocked for 20 s: the reader waits on a file that never ends")
		panic("unreachable")
	}
}

func mkfifo(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadRefusesWhatIsNotASmallRegularFile(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxConfigBytes)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path string
		want       []string
	}{
		{"a FIFO is refused without blocking", mkfifo(t), []string{"named pipe (FIFO)", "not a regular file", "--config"}},
		{"/dev/zero is refused before a byte is read", "/dev/zero", []string{"/dev/zero", "character device"}},
		{"a folder is refused", t.TempDir(), []string{"a folder"}},
		{"a file over 1 MiB is refused", big, []string{"too large", "1 MiB", "right file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := within(t, func() error { _, _, err := LoadEnv(tc.path, noEnv, nil); return err })
			wantErr(t, err, tc.want...)
		})
	}
}

func TestLoadReadsAConfigOfExactlyTheLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	body := "max_age: 9d\n"
	body += "#" + strings.Repeat("x", MaxConfigBytes-len(body)-2) + "\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := LoadEnv(p, noEnv, nil)
	if err != nil || time.Duration(c.MaxAge) != 9*day {
		t.Fatalf("a config of %d bytes: %v", len(body), err)
	}
}

func TestReadSecretRefusesBadFilesAndLineBreaks(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env, _ := MapEnv(map[string]string{"PWNL": pw + "\n", "PWTAB": "Correct\tHorse 9!"})
	cases := []struct {
		name  string
		src   SecretSource
		stdin string
		want  []string
	}{
		{"a FIFO password file is refused without blocking", SecretSource{Key: "backup.password", File: mkfifo(t)}, "",
			[]string{"backup.password", "named pipe (FIFO)", `"-"`}},
		{"/dev/zero as a DSN file is refused", SecretSource{Key: "sqlserver.dsn", File: "/dev/zero"}, "",
			[]string{"sqlserver.dsn", "character device"}},
		{"a file over 64 KiB is refused", SecretSource{Key: "backup.password", File: file("big", strings.Repeat("x", MaxSecretBytes+1))}, "",
			[]string{"too large", "64 KiB"}},
		{"standard input over 64 KiB is refused", SecretSource{Key: "backup.password", File: "-"}, strings.Repeat("x", MaxSecretBytes+1),
			[]string{"standard input holds more than 64 KiB"}},
		{"two trailing newlines are refused", SecretSource{Key: "backup.password", File: file("nn", pw+"\n\n")}, "",
			[]string{"backup.password: file " + filepath.Join(dir, "nn") + " still holds a line break", "one line"}},
		{"two trailing CRLFs are refused", SecretSource{Key: "backup.password", File: file("crlf2", pw+"\r\n\r\n")}, "",
			[]string{"still holds a line break"}},
		{"a lone CR left after the newline is refused", SecretSource{Key: "backup.password", File: file("crnl", pw+"\r\r\n")}, "",
			[]string{"still holds a line break"}},
		{"two lines are refused", SecretSource{Key: "sqlserver.dsn", File: file("two", "sqlserver://a\nsqlserver://b\n")}, "",
			[]string{"sqlserver.dsn", "line break"}},
		{"a tab is refused", SecretSource{Key: "backup.password", File: file("tab", "Correct\tHorse 9!\n")}, "",
			[]string{"control character"}},
		{"an escape character from standard input is refused", SecretSource{Key: "backup.password", File: "-"}, "Correct\x1bHorse 9!\n",
			[]string{"standard input holds a control character"}},
		{"a variable ending in a newline is refused", SecretSource{Key: "backup.password", Env: "PWNL"}, "",
			[]string{"environment variable PWNL still holds a line break", "without a trailing newline"}},
		{"a variable holding a tab is refused", SecretSource{Key: "backup.password", Env: "PWTAB"}, "",
			[]string{"environment variable PWTAB holds a control character"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := within(t, func() error {
				_, _, err := ReadSecret(tc.src, env, strings.NewReader(tc.stdin))
				return err
			})
			wantErr(t, err, tc.want...)
			for _, s := range []string{pw, "Correct", "Horse"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error quotes the secret: %q", err)
				}
			}
		})
	}
}

func TestAMultiLineSecretKeepsItsLines(t *testing.T) {
	body := "# created: 2026-12-03\n# public key: age1xyz\nAGE-SECRET-KEY-1ABC\n"
	p := filepath.Join(t.TempDir(), "id.txt")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	v, _, err := ReadSecret(SecretSource{Key: "identity", File: p, Lines: true}, noEnv, nil)
	if err != nil || v.Reveal() != strings.TrimSuffix(body, "\n") {
		t.Fatalf("an identity file: %v", err)
	}
	if _, _, err := ReadSecret(SecretSource{Key: "backup.password", File: p}, noEnv, nil); err == nil {
		t.Fatal("the same file as a password was accepted")
	}
}

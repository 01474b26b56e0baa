package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const pw = "Correct Horse 9!"

func TestReadSecretReturnsTheValue(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env, _ := MapEnv(map[string]string{"PW": pw, "PWNL": pw + "\n"})
	tests := []struct {
		name  string
		src   SecretSource
		stdin string
		want  string
	}{
		{"from a variable as is", SecretSource{Key: "backup.password", Env: "PW"}, "", pw},
		{"from a file without a newline", SecretSource{Key: "backup.password", File: file("a", pw)}, "", pw},
		{"from a file with one newline stripped", SecretSource{Key: "backup.password", File: file("b", pw+"\n")}, "", pw},
		{"from a file with CRLF stripped", SecretSource{Key: "backup.password", File: file("c", pw+"\r\n")}, "", pw},
		{"from standard input with CRLF stripped", SecretSource{Key: "backup.password", File: "-"}, pw + "\r\n", pw},
		{"from a file of exactly the limit", SecretSource{Key: "backup.password", File: file("big", strings.Repeat("x", MaxSecretBytes))}, "", strings.Repeat("x", MaxSecretBytes)},
		{"from a file keeping spaces", SecretSource{Key: "backup.password", File: file("e", "  "+pw+"  \n")}, "", "  " + pw + "  "},
		{"from standard input with one newline stripped", SecretSource{Key: "backup.password", File: "-"}, pw + "\n", pw},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warns, err := ReadSecret(tt.src, env, strings.NewReader(tt.stdin))
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) != 0 {
				t.Errorf("warnings %q", warns)
			}
			if got.Reveal() != tt.want {
				t.Errorf("got %q, want %q", got.Reveal(), tt.want)
			}
		})
	}
}

func TestReadSecretRefuses(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	nl := filepath.Join(dir, "nl")
	_ = os.WriteFile(empty, nil, 0o600)
	_ = os.WriteFile(nl, []byte("\n"), 0o600)
	env, _ := MapEnv(map[string]string{"EMPTY": "", "PW": pw})
	tests := []struct {
		name  string
		src   SecretSource
		stdin string
		want  []string
	}{
		{"a missing variable names it, the key and the other source",
			SecretSource{Key: "backup.password", Env: DefaultPasswordEnv}, "",
			[]string{"backup.password: environment variable KEYESCROW_BACKUP_PASSWORD is not set; set it, or set backup.password_file"}},
		{"an empty variable", SecretSource{Key: "sqlserver.dsn", Env: "EMPTY"}, "", []string{"sqlserver.dsn", "EMPTY", "is empty"}},
		{"a missing file", SecretSource{Key: "backup.password", File: filepath.Join(dir, "nope")}, "", []string{"nope", "does not exist"}},
		{"an empty file", SecretSource{Key: "backup.password", File: empty}, "", []string{"is empty"}},
		{"a file of only a newline", SecretSource{Key: "backup.password", File: nl}, "", []string{"is empty"}},
		{"a folder", SecretSource{Key: "backup.password", File: dir}, "", []string{"is a folder"}},
		{"empty standard input", SecretSource{Key: "backup.password", File: "-"}, "\n", []string{"standard input was empty"}},
		{"both sources", SecretSource{Key: "backup.password", Env: "PW", File: empty}, "", []string{"both"}},
		{"no source", SecretSource{Key: "destinations[x].sas"}, "", []string{"sas_env or destinations[x].sas_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadSecret(tt.src, env, strings.NewReader(tt.stdin))
			wantErr(t, err, tt.want...)
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error contains the secret: %q", err)
			}
		})
	}
}

func TestReadSecretWarnsAboutAnOpenFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits do not describe access on Windows")
	}
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(pw), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	got, warns, err := ReadSecret(SecretSource{Key: "backup.password", File: p}, noEnv, nil)
	if err != nil || got.Reveal() != pw {
		t.Fatalf("err %v", err)
	}
	if len(warns) != 1 || !strings.Contains(string(warns[0]), "chmod 600") || strings.Contains(string(warns[0]), pw) {
		t.Errorf("warnings = %q", warns)
	}
}

func TestSecretSources(t *testing.T) {
	d := Destination{Name: "az", AccountKeyFile: "/k", SASEnv: "S"}
	c := &Config{Backup: Backup{PasswordFile: "-"}}
	tests := []struct {
		name string
		got  SecretSource
		want SecretSource
	}{
		{"a password file replaces the default variable", c.PasswordSource(), SecretSource{Key: "backup.password", File: "-"}},
		{"no sqlserver section means the default DSN variable", c.DSNSource(), SecretSource{Key: "sqlserver.dsn", Env: DefaultDSNEnv}},
		{"an account key names its destination", d.AccountKeySource(), SecretSource{Key: "destinations[az].account_key", File: "/k"}},
		{"a SAS names its destination", d.SASSource(), SecretSource{Key: "destinations[az].sas", Env: "S"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %+v, want %+v", tt.got, tt.want)
			}
		})
	}
}

func TestSecretValueDoesNotPrint(t *testing.T) {
	env, _ := MapEnv(map[string]string{"PW": pw})
	v, _, err := ReadSecret(SecretSource{Key: "k", Env: "PW"}, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join([]string{v.String()}, ""); strings.Contains(s, pw) {
		t.Errorf("secret printed: %q", s)
	}
}

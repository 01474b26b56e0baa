// Package ci_test checks the example CI definitions in deploy/ci: each is
// valid YAML, runs `keyescrow backup` in remote mode with a configuration
// keyescrow itself accepts, gets cloud access through OIDC / workload
// identity only, and never puts a secret on a command line.
package ci_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/keyescrow/keyescrow/internal/config"
)

// scriptKeys hold shell text in GitHub Actions and Azure Pipelines.
var scriptKeys = map[string]bool{"run": true, "script": true, "inlineScript": true, "bash": true, "pwsh": true, "powershell": true}

// secretRef is how each CI system expands a stored secret: GitHub's
// ${{ secrets.X }} and Azure Pipelines' $(X) macro for the secret variables.
var secretRef = regexp.MustCompile(`\$\{\{\s*secrets\.|\$\((KEYESCROW_SQLSERVER_DSN|KEYESCROW_BACKUP_PASSWORD)\)`)

// secretUse is a shell expansion of a secret variable, which would put its
// value on a command line.
var secretUse = regexp.MustCompile(`\$\{?(KEYESCROW_SQLSERVER_DSN|KEYESCROW_BACKUP_PASSWORD)\b`)

// storedKeys are the marks of a long-lived cloud credential.
var storedKeys = []string{"aws-access-key-id", "aws-secret-access-key", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
	"AZURE_CLIENT_SECRET", "client-secret", "client_secret", "clientSecret", "creds:", "account_key", "sas_env", "sas_file"}

type scalar struct {
	path  []string
	value string
}

// scalars lists every scalar with the mapping keys leading to it.
func scalars(n *yaml.Node, path []string, out *[]scalar) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			scalars(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			scalars(n.Content[i+1], append(append([]string(nil), path...), n.Content[i].Value), out)
		}
	case yaml.ScalarNode:
		*out = append(*out, scalar{path: path, value: n.Value})
	}
}

// heredoc is the keyescrow configuration a script writes with <<'YAML'.
var heredoc = regexp.MustCompile(`(?s)<<'YAML'\n(.*?)\n\s*YAML\n`)

func TestEveryCIExampleRunsRemoteBackupWithoutStoredKeysOrSecretsOnACommandLine(t *testing.T) {
	paths, _ := filepath.Glob("*.yaml")
	more, _ := filepath.Glob("*.yml")
	paths = append(paths, more...)
	if len(paths) < 2 {
		t.Fatalf("want the GitHub Actions and Azure Pipelines examples, found %v", paths)
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("not valid YAML: %v", err)
			}
			var all []scalar
			scalars(&doc, nil, &all)

			backups, configs := 0, 0
			for _, s := range all {
				key := s.path[len(s.path)-1]
				if secretRef.MatchString(s.value) && (len(s.path) < 2 || s.path[len(s.path)-2] != "env") {
					t.Errorf("%s: a secret is expanded outside an env: mapping: %q", strings.Join(s.path, "."), s.value)
				}
				if !scriptKeys[key] {
					continue
				}
				if m := secretUse.FindString(s.value); m != "" {
					t.Errorf("%s: the script expands %s, which would put the secret on a command line", strings.Join(s.path, "."), m)
				}
				for _, line := range strings.Split(s.value, "\n") {
					if strings.Contains(line, "keyescrow backup") {
						backups++
						if strings.Contains(line, "--set") && regexp.MustCompile(`(?i)password|dsn|secret`).MatchString(line) {
							t.Errorf("a secret-ish --set on the command line: %s", line)
						}
					}
				}
				for _, m := range heredoc.FindAllStringSubmatch(s.value, -1) {
					configs++
					checkConfig(t, m[1])
				}
			}
			if backups == 0 {
				t.Error("no step runs keyescrow backup")
			}
			if configs == 0 {
				t.Error("no step writes the keyescrow configuration")
			}
			for _, k := range storedKeys {
				if strings.Contains(string(raw), k) {
					t.Errorf("the example mentions %q, a stored cloud credential", k)
				}
			}
			if strings.Contains(p, "github") && !strings.Contains(string(raw), "id-token: write") {
				t.Error("a GitHub workflow needs permissions id-token: write for OIDC")
			}
			if strings.Contains(p, "github") && !strings.Contains(string(raw), "role-to-assume:") {
				t.Error("the GitHub workflow does not assume an AWS role through OIDC")
			}
		})
	}
}

// checkConfig proves the embedded configuration is one keyescrow accepts
// for backup, in remote mode, with its secrets from the environment.
func checkConfig(t *testing.T, text string) {
	t.Helper()
	lines := strings.Split(text, "\n")
	indent := len(lines[0]) - len(strings.TrimLeft(lines[0], " "))
	for i, l := range lines {
		if len(l) >= indent {
			lines[i] = l[indent:]
		}
	}
	path := filepath.Join(t.TempDir(), "keyescrow.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	cfg, _, err := config.LoadEnv(path, noEnv, func() []string { return nil })
	if err != nil {
		t.Fatalf("keyescrow refuses the example configuration: %v", err)
	}
	if err := cfg.ValidateFor("backup"); err != nil {
		t.Fatalf("keyescrow refuses the example configuration for backup: %v", err)
	}
	if !cfg.Backup.Remote || cfg.Backup.LocalDirectory != "" {
		t.Errorf("the example is not in remote mode: %+v", cfg.Backup)
	}
	if cfg.SQLServer == nil || cfg.SQLServer.DSNEnv != "KEYESCROW_SQLSERVER_DSN" || cfg.Backup.PasswordEnv != "KEYESCROW_BACKUP_PASSWORD" {
		t.Errorf("the secrets do not come from the environment variables the step sets: %+v %+v", cfg.SQLServer, cfg.Backup)
	}
	for _, d := range cfg.Destinations {
		if d.Type == config.TypeAzureBlob && d.Auth != "cli" && d.Auth != "workload-identity" {
			t.Errorf("%s: auth %q is not federated", d.Name, d.Auth)
		}
	}
}

package config

import (
	"strings"
	"testing"
	"time"
)

const baseFile = `home_region: file-region
backup:
  keep_local: false
destinations:
  - name: a
    type: s3
    retention: {mode: COMPLIANCE, days: 30}
waive: [versioning]
max_age: 2d
`

func TestEnvOverridesEachKind(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(*Config) bool
	}{
		{"a string overrides the file", map[string]string{"KEYESCROW_HOME_REGION": "env-region"},
			func(c *Config) bool { return c.HomeRegion == "env-region" }},
		{"a nested string is set", map[string]string{"KEYESCROW_BACKUP_SERVER_DIRECTORY": `C:\keys`},
			func(c *Config) bool { return c.Backup.ServerDirectory == `C:\keys` }},
		{"a bool overrides the file", map[string]string{"KEYESCROW_BACKUP_KEEP_LOCAL": "true"},
			func(c *Config) bool { return c.Backup.KeepLocal }},
		{"an int in a destination is set", map[string]string{"KEYESCROW_DESTINATIONS_0_RETENTION_DAYS": "3650"},
			func(c *Config) bool { return c.Destinations[0].Retention.Days == 3650 }},
		{"a duration overrides the file", map[string]string{"KEYESCROW_MAX_AGE": "2w"},
			func(c *Config) bool { return time.Duration(c.MaxAge) == 14*24*time.Hour }},
		{"a list is a comma list", map[string]string{"KEYESCROW_WAIVE": "region, immutability"},
			func(c *Config) bool { return strings.Join(c.Waive, "|") == "region|immutability" }},
		{"an empty list clears the file's", map[string]string{"KEYESCROW_WAIVE": ""},
			func(c *Config) bool { return len(c.Waive) == 0 }},
		{"lock and metrics files are set", map[string]string{"KEYESCROW_LOCK_FILE": "/run/k.lock", "KEYESCROW_METRICS_FILE": "/m.prom"},
			func(c *Config) bool { return c.LockFile == "/run/k.lock" && c.MetricsFile == "/m.prom" }},
		{"a sqlserver key creates the section", map[string]string{"KEYESCROW_SQLSERVER_DSN_FILE": "/etc/dsn"},
			func(c *Config) bool { return c.SQLServer != nil && c.SQLServer.DSNFile == "/etc/dsn" }},
		{"the default DSN variable is not the dsn_env override",
			map[string]string{"KEYESCROW_SQLSERVER_DSN": "sqlserver://u:p@h"},
			func(c *Config) bool {
				return c.SQLServer != nil && c.SQLServer.DSNEnv == "" && c.DSNSource().Env == DefaultDSNEnv
			}},
		{"the dsn_env override names another variable", map[string]string{"KEYESCROW_SQLSERVER_DSN_ENV": "MY_DSN"},
			func(c *Config) bool { return c.SQLServer.DSNEnv == "MY_DSN" && c.DSNSource().Env == "MY_DSN" }},
		{"the next destination index adds a destination",
			map[string]string{"KEYESCROW_DESTINATIONS_1_TYPE": "file", "KEYESCROW_DESTINATIONS_1_PATH": "/mnt/keys", "KEYESCROW_DESTINATIONS_2_NAME": "c"},
			func(c *Config) bool {
				return len(c.Destinations) == 3 && c.Destinations[1].Path == "/mnt/keys" && c.Destinations[2].Name == "c"
			}},
		{"the backup password variable is not an override", map[string]string{"KEYESCROW_BACKUP_PASSWORD": "x"},
			func(c *Config) bool { return c.Backup.PasswordEnv == "" && c.Backup.PasswordFile == "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, warns, err := loadString(t, baseFile, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) != 0 {
				t.Errorf("warnings: %q", warns)
			}
			if !tt.check(c) {
				t.Errorf("override not applied: %+v", c)
			}
		})
	}
}

func TestConfigFromEnvAlone(t *testing.T) {
	env, list := MapEnv(map[string]string{
		"KEYESCROW_DESTINATIONS_0_NAME": "usb",
		"KEYESCROW_DESTINATIONS_0_TYPE": "file",
		"KEYESCROW_DESTINATIONS_0_PATH": "/mnt/keys",
	})
	c, warns, err := LoadEnv("", env, list)
	if err != nil || len(warns) != 0 {
		t.Fatalf("err %v, warnings %q", err, warns)
	}
	if err := c.ValidateFor("archive"); err != nil {
		t.Fatal(err)
	}
}

func TestEnvParseErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"a bad bool", map[string]string{"KEYESCROW_BACKUP_KEEP_LOCAL": "maybe"}, []string{"KEYESCROW_BACKUP_KEEP_LOCAL", "backup.keep_local", "true or false"}},
		{"a bad int", map[string]string{"KEYESCROW_DESTINATIONS_0_RETENTION_DAYS": "ten"}, []string{"KEYESCROW_DESTINATIONS_0_RETENTION_DAYS", "whole number"}},
		{"a bad duration", map[string]string{"KEYESCROW_MAX_AGE": "-1d"}, []string{"KEYESCROW_MAX_AGE", "negative"}},
		{"an index past the end", map[string]string{"KEYESCROW_DESTINATIONS_5_PATH": "/x"}, []string{"KEYESCROW_DESTINATIONS_5_PATH", "past the end"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadString(t, baseFile, tt.env)
			wantErr(t, err, tt.want...)
		})
	}
}

func TestUnknownEnvVariables(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string // "" means no warning
	}{
		{"a misspelt key warns with a suggestion", map[string]string{"KEYESCROW_HOME_REGOIN": "x"}, `did you mean "KEYESCROW_HOME_REGION"?`},
		{"a misspelt list key keeps its index", map[string]string{"KEYESCROW_DESTINATION_0_PATH": "x"}, `did you mean "KEYESCROW_DESTINATIONS_0_PATH"?`},
		{"a misspelt secret variable warns", map[string]string{"KEYESCROW_BACKUP_PASWORD": "x"}, `did you mean "KEYESCROW_BACKUP_PASSWORD"?`},
		{"an unrelated name warns without a guess", map[string]string{"KEYESCROW_ZZZZZZZZZZZZ": "x"}, "matches no configuration key"},
		{"the config variable is known", map[string]string{"KEYESCROW_CONFIG": "/c"}, ""},
		{"test variables are ignored", map[string]string{"KEYESCROW_TEST_SQLSERVER_DSN": "x", "KEYESCROW_TEST_DISALLOW_SKIP": "1"}, ""},
		{"the default secrets are known", map[string]string{"KEYESCROW_BACKUP_PASSWORD": "x", "KEYESCROW_SQLSERVER_DSN": "y", "KEYESCROW_DRILL_DSN": "z"}, ""},
		{"a drill dsn_env names a known variable",
			map[string]string{"KEYESCROW_DRILL_DSN_ENV": "KEYESCROW_SCRATCH_DSN", "KEYESCROW_SCRATCH_DSN": "x"}, ""},
		{"a variable named by an _env key is known",
			map[string]string{"KEYESCROW_BACKUP_PASSWORD_ENV": "KEYESCROW_PROD_PW", "KEYESCROW_PROD_PW": "x"}, ""},
		{"other variables are ignored", map[string]string{"HOME": "/root"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warns, err := loadString(t, baseFile, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(warns) != 0 {
					t.Errorf("warnings: %q", warns)
				}
				return
			}
			if len(warns) != 1 || !strings.Contains(string(warns[0]), tt.want) {
				t.Errorf("warnings %q, want one containing %q", warns, tt.want)
			}
		})
	}
}

func TestPrecedenceIsFlagThenEnvThenFileThenDefault(t *testing.T) {
	env := map[string]string{"KEYESCROW_HOME_REGION": "env", "KEYESCROW_LOCK_FILE": "/env.lock"}
	c := mustLoad(t, "home_region: file\nlock_file: /file.lock\nmetrics_file: /file.prom\n", env)
	if err := c.Set("home_region", "flag"); err != nil {
		t.Fatal(err)
	}
	got := []string{c.HomeRegion, c.LockFile, c.MetricsFile, c.MaxAge.String()}
	want := []string{"flag", "/env.lock", "/file.prom", "8d"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestEnvName(t *testing.T) {
	for path, want := range map[string]string{
		"home_region":                   "KEYESCROW_HOME_REGION",
		"destinations.0.retention.days": "KEYESCROW_DESTINATIONS_0_RETENTION_DAYS",
		"destinations[1].path":          "KEYESCROW_DESTINATIONS_1_PATH",
	} {
		if got := EnvName(path); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", path, got, want)
		}
	}
}

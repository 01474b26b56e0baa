package config

import (
	"strings"
	"testing"
)

// valid returns the example of docs/configuration.md, loaded.
func valid(t *testing.T) *Config {
	t.Helper()
	return mustLoad(t, designExample, nil)
}

func TestValidateRefuses(t *testing.T) {
	s3, az, usb := 0, 1, 2
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"no destinations", func(c *Config) { c.Destinations = nil }, []string{"destinations", "no destination"}},
		{"a duplicate name", func(c *Config) { c.Destinations[usb].Name = "offsite-s3" }, []string{"destinations[2].name", "also the name of destinations[0]"}},
		{"a missing name", func(c *Config) { c.Destinations[usb].Name = "" }, []string{"destinations[2].name", "required"}},
		{"a name with a space", func(c *Config) { c.Destinations[usb].Name = "my usb" }, []string{"destinations[2].name", "not a valid name"}},
		{"a name that is too long", func(c *Config) { c.Destinations[usb].Name = strings.Repeat("a", 64) }, []string{"not a valid name"}},
		{"an unknown type with a suggestion", func(c *Config) { c.Destinations[s3].Type = "s4" }, []string{"destinations[0].type", `did you mean "s3"?`}},
		{"a missing type", func(c *Config) { c.Destinations[s3].Type = "" }, []string{"destinations[0].type", "required"}},
		{"s3 without bucket", func(c *Config) { c.Destinations[s3].Bucket = "" }, []string{"destinations[0].bucket", "required"}},
		{"s3 without region", func(c *Config) { c.Destinations[s3].Region = "" }, []string{"destinations[0].region", "required"}},
		{"s3 with a plain-http endpoint", func(c *Config) { c.Destinations[s3].Endpoint = "http://minio.corp:9000" }, []string{"destinations[0].endpoint", "https"}},
		{"azureblob without account_url", func(c *Config) { c.Destinations[az].AccountURL = "" }, []string{"destinations[1].account_url", "required"}},
		{"azureblob over plain http", func(c *Config) { c.Destinations[az].AccountURL = "http://corpkeys.blob.core.windows.net" }, []string{"destinations[1].account_url", "https"}},
		{"azureblob with a SAS in the URL", func(c *Config) { c.Destinations[az].AccountURL = "https://a.blob.core.windows.net/?sig=abc" }, []string{"must not carry a query"}},
		{"azureblob without container", func(c *Config) { c.Destinations[az].Container = "" }, []string{"destinations[1].container", "required"}},
		{"an unknown auth", func(c *Config) { c.Destinations[az].Auth = "shared-keys" }, []string{"destinations[1].auth", `did you mean "shared-key"?`}},
		{"shared-key without a key", func(c *Config) { c.Destinations[az].Auth = "shared-key" }, []string{"account_key_env or account_key_file"}},
		{"shared-key with both key sources", func(c *Config) {
			c.Destinations[az].Auth = "shared-key"
			c.Destinations[az].AccountKeyEnv, c.Destinations[az].AccountKeyFile = "K", "/k"
		}, []string{"both account_key_env and account_key_file"}},
		{"sas without a token", func(c *Config) { c.Destinations[az].Auth = "sas" }, []string{"sas_env or sas_file"}},
		{"a key source with another auth", func(c *Config) { c.Destinations[az].SASEnv = "SAS" }, []string{"destinations[1].sas_env", "only used with auth: sas"}},
		{"a pinned key that is not one", func(c *Config) { c.Trust.PublicKeys = []string{"ssh-ed25519 AAAAC3Nz"} },
			[]string{"trust.public_keys[0]", "must start with \"ed25519:\""}},
		{"the same key pinned twice", func(c *Config) {
			k := "ed25519:" + strings.Repeat("A", 43) + "="
			c.Trust.PublicKeys = []string{k, k}
		}, []string{"trust.public_keys[1]", "same key as trust.public_keys[0]"}},
		{"both signing key sources", func(c *Config) { c.Signing.KeyEnv, c.Signing.KeyFile = "SIGNING_KEY", "/etc/keyescrow/signing.key" },
			[]string{"signing.key_file", "both signing.key_env and signing.key_file"}},
		{"a relative signing key file", func(c *Config) { c.Signing.KeyFile = "signing.key" },
			[]string{"signing.key_file", "not an absolute path"}},
		{"remote mode with a local directory", func(c *Config) { c.Backup.Remote, c.Backup.LocalDirectory = true, "/mnt/keys" },
			[]string{"backup.local_directory", "not used with backup.remote: true"}},
		{"client-secret without tenant, client or secret", func(c *Config) { c.Destinations[az].Auth = "client-secret" },
			[]string{"destinations[1].tenant_id", "destinations[1].client_id", "client_secret_env or client_secret_file"}},
		{"client-certificate without its file", func(c *Config) {
			d := &c.Destinations[az]
			d.Auth, d.TenantID, d.ClientID = "client-certificate", "t", "c"
		}, []string{"destinations[1].client_certificate_file", "is required"}},
		{"a relative client certificate", func(c *Config) {
			d := &c.Destinations[az]
			d.Auth, d.TenantID, d.ClientID, d.ClientCertificateFile = "client-certificate", "t", "c", "cert.pem"
		}, []string{"destinations[1].client_certificate_file", "not an absolute path"}},
		{"a certificate with another auth", func(c *Config) { c.Destinations[az].ClientCertificateFile = "/c.pem" },
			[]string{"destinations[1].client_certificate_file", "only used with auth: client-certificate"}},
		{"a client id with shared-key", func(c *Config) {
			d := &c.Destinations[az]
			d.Auth, d.AccountKeyEnv, d.ClientID = "shared-key", "K", "c"
		}, []string{"destinations[1].client_id", "not used with auth: shared-key"}},
		{"a relative ca_file", func(c *Config) { c.Destinations[0].CAFile = "ca.pem" }, []string{"destinations[0].ca_file", "not an absolute path"}},
		{"a profile on azure", func(c *Config) { c.Destinations[az].Profile = "p" }, []string{"destinations[1].profile", "belongs to type s3"}},
		{"a legal hold on a folder", func(c *Config) { c.Destinations[2].LegalHold = true }, []string{"destinations[2].legal_hold", "not used by type file"}},
		{"a secret pasted into an _env key", func(c *Config) {
			c.Destinations[az].Auth = "shared-key"
			c.Destinations[az].AccountKeyEnv = "abc+def/ghi=="
		}, []string{"destinations[1].account_key_env", "not an environment variable name"}},
		{"a key of another type", func(c *Config) { c.Destinations[usb].Bucket = "b" }, []string{"destinations[2].bucket", "bucket is not used by type file"}},
		{"an azure key on s3", func(c *Config) { c.Destinations[s3].Container = "x" }, []string{"container is not used by type s3"}},
		{"a relative file path", func(c *Config) { c.Destinations[usb].Path = "keys" }, []string{"destinations[2].path", "absolute"}},
		{"a file destination without path", func(c *Config) { c.Destinations[usb].Path = "" }, []string{"destinations[2].path", "required"}},
		{"a file destination with retention", func(c *Config) { c.Destinations[usb].Retention = &Retention{Mode: "locked", Days: 1} },
			[]string{"a folder cannot enforce retention; remove retention or use s3/azureblob"}},
		{"s3 without retention", func(c *Config) { c.Destinations[s3].Retention = nil }, []string{"destinations[0].retention", "must say its retention"}},
		{"an s3 mode that is azure's", func(c *Config) { c.Destinations[s3].Retention.Mode = "locked" }, []string{"destinations[0].retention.mode", "COMPLIANCE, GOVERNANCE"}},
		{"an azure mode that is s3's", func(c *Config) { c.Destinations[az].Retention.Mode = "GOVERNANCE" }, []string{"destinations[1].retention.mode", "locked, unlocked"}},
		{"zero retention days", func(c *Config) { c.Destinations[s3].Retention.Days = 0 }, []string{"destinations[0].retention.days", "at least 1"}},
		{"a prefix starting with a slash", func(c *Config) { c.Destinations[s3].Prefix = "/keys" }, []string{"destinations[0].prefix", `must not start with "/"`}},
		{"a prefix climbing up", func(c *Config) { c.Destinations[s3].Prefix = "a/../b" }, []string{"destinations[0].prefix", ".."}},
		{"no home_region with a WORM destination", func(c *Config) { c.HomeRegion = "" }, []string{"home_region", "required", "waive"}},
		{"an unknown waiver", func(c *Config) { c.Waive = []string{"regoin"} }, []string{"waive[0]", `did you mean "region"?`}},
		{"both password sources", func(c *Config) { c.Backup.PasswordFile = "/pw" }, []string{"both backup.password_env and backup.password_file"}},
		{"both DSN sources", func(c *Config) { c.SQLServer.DSNFile = "/dsn" }, []string{"both sqlserver.dsn_env and sqlserver.dsn_file"}},
		{"a relative local directory", func(c *Config) { c.Backup.LocalDirectory = "out" }, []string{"backup.local_directory", "absolute"}},
		{"a relative server directory", func(c *Config) { c.Backup.ServerDirectory = "keys" }, []string{"backup.server_directory", "absolute"}},
		{"a zero max_age", func(c *Config) { c.MaxAge = 0 }, []string{"max_age", "positive"}},
		{"a relative lock file", func(c *Config) { c.LockFile = "k.lock" }, []string{"lock_file", "absolute"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid(t)
			tt.mutate(c)
			wantErr(t, c.Validate(), tt.want...)
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		check  func(c *Config) bool
	}{
		{"a Windows server directory", func(c *Config) { c.Backup.ServerDirectory = `C:\Program Files\keys` }, nil},
		{"a UNC server directory", func(c *Config) { c.Backup.ServerDirectory = `\\sql01\share\keys` }, nil},
		{"no home_region when region is waived", func(c *Config) { c.HomeRegion = ""; c.Waive = []string{"region"} }, nil},
		{"no home_region with only a folder", func(c *Config) { c.HomeRegion = ""; c.Destinations = c.Destinations[2:] }, nil},
		{"azurite over http on localhost", func(c *Config) { c.Destinations[1].AccountURL = "http://127.0.0.1:10000/devstoreaccount1" }, nil},
		{"shared-key with a key file", func(c *Config) { c.Destinations[1].Auth = "shared-key"; c.Destinations[1].AccountKeyFile = "/k" }, nil},
		{"sas with a variable", func(c *Config) { c.Destinations[1].Auth = "sas"; c.Destinations[1].SASEnv = "AZ_SAS" }, nil},
		{"client-secret complete", func(c *Config) {
			d := &c.Destinations[1]
			d.Auth, d.TenantID, d.ClientID, d.ClientSecretFile = "client-secret", "t", "c", "/s"
		}, nil},
		{"client-certificate complete", func(c *Config) {
			d := &c.Destinations[1]
			d.Auth, d.TenantID, d.ClientID, d.ClientCertificateFile, d.ClientCertificatePasswordEnv = "client-certificate", "t", "c", "/c.pem", "CERT_PW"
		}, nil},
		{"a user-assigned managed identity", func(c *Config) { c.Destinations[1].Auth = "managed-identity"; c.Destinations[1].ClientID = "c" }, nil},
		{"s3 with profile, ca_file and legal hold", func(c *Config) {
			d := &c.Destinations[0]
			d.Profile, d.CAFile, d.LegalHold = "keys", "/etc/ssl/private-ca.pem", true
		}, nil},
		{"a lower-case s3 mode is stored upper-case", func(c *Config) { c.Destinations[0].Retention.Mode = "governance" },
			func(c *Config) bool { return c.Destinations[0].Retention.Mode == "GOVERNANCE" }},
		{"an upper-case azure mode is stored lower-case", func(c *Config) { c.Destinations[1].Retention.Mode = "Unlocked" },
			func(c *Config) bool { return c.Destinations[1].Retention.Mode == "unlocked" }},
		{"a prefix gets a trailing slash", func(c *Config) { c.Destinations[0].Prefix = "sql/keys" },
			func(c *Config) bool { return c.Destinations[0].Prefix == "sql/keys/" }},
		{"an empty auth becomes default", func(c *Config) { c.Destinations[1].Auth = "" },
			func(c *Config) bool { return c.Destinations[1].Auth == "default" }},
		{"neither password source means the default variable", func(c *Config) { c.Backup.PasswordEnv = "" },
			func(c *Config) bool { return c.PasswordSource().Env == DefaultPasswordEnv }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid(t)
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if tt.check != nil && !tt.check(c) {
				t.Errorf("not normalised: %+v", c.Destinations)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := valid(t)
	c.HomeRegion = ""
	c.MaxAge = 0
	c.Destinations[2].Path = ""
	wantErr(t, c.Validate(), "home_region", "max_age", "destinations[2].path")
}

func TestValidateFor(t *testing.T) {
	archiveOnly := func(c *Config) { c.SQLServer = nil; c.Backup.ServerDirectory = "" }
	tests := []struct {
		name, command string
		mutate        func(c *Config)
		want          []string // nil means valid
	}{
		{"backup needs a sqlserver section", "backup", func(c *Config) { c.SQLServer = nil }, []string{"sqlserver", "dsn_env or dsn_file"}},
		{"backup needs server_directory", "backup", func(c *Config) { c.Backup.ServerDirectory = "" }, []string{"backup.server_directory", "required"}},
		{"archive needs neither", "archive", archiveOnly, nil},
		{"check needs neither", "check", archiveOnly, nil},
		{"verify needs neither", "verify", archiveOnly, nil},
		{"an unknown command is refused", "bakup", func(*Config) {}, []string{"unknown command"}},
		{"per-command needs add to Validate's", "backup", func(c *Config) { c.SQLServer = nil; c.MaxAge = 0 }, []string{"sqlserver", "max_age"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid(t)
			tt.mutate(c)
			err := c.ValidateFor(tt.command)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tt.want...)
		})
	}
}

func TestWarningsForShortRetention(t *testing.T) {
	c := valid(t)
	c.Destinations[0].Retention.Days = 30
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	w := c.Warnings()
	if len(w) != 1 || !strings.Contains(string(w[0]), "destinations[0].retention.days") {
		t.Errorf("warnings = %q", w)
	}
}

func TestWaived(t *testing.T) {
	c := &Config{Waive: []string{"versioning"}}
	if !c.Waived("versioning") || c.Waived("region") {
		t.Errorf("Waived wrong for %q", c.Waive)
	}
}

// Package config owns keyescrow's configuration: the Config type, strict
// decoding of the YAML file (unknown keys, wrong types and duplicates are
// errors naming the key and its line), overrides from KEYESCROW_<PATH>
// environment variables and from flags (Config.Set), validation that says
// what to fix, and reading secrets from an environment variable, a file or
// standard input.
//
// Precedence is flag > env > file > default: Load applies defaults, the file
// and the environment; the caller then applies flags with Set and calls
// Validate or ValidateFor. Every error from this package matches ErrConfig.
package config

import "time"

// Default names of the environment variables that hold secrets when the
// configuration names no other source.
const (
	DefaultPasswordEnv = "KEYESCROW_BACKUP_PASSWORD"
	DefaultDSNEnv      = "KEYESCROW_SQLSERVER_DSN"
	DefaultDrillDSNEnv = "KEYESCROW_DRILL_DSN"
	// ConfigEnv names the config file when --config is not given.
	ConfigEnv = "KEYESCROW_CONFIG"
)

// Config is the whole configuration. See docs/configuration.md.
type Config struct {
	SQLServer    *SQLServer    `yaml:"sqlserver"` // nil when absent (archive-only setups)
	Backup       Backup        `yaml:"backup"`
	HomeRegion   string        `yaml:"home_region"`
	Destinations []Destination `yaml:"destinations"`
	Waive        []string      `yaml:"waive"` // allowed: "region", "versioning", "immutability"
	MetricsFile  string        `yaml:"metrics_file"`
	MaxAge       Duration      `yaml:"max_age"` // default 8d
	// Require is how many destinations must hold a proven copy for the run
	// to succeed (0 = every destination); the others are reported.
	Require  int      `yaml:"require"`
	Verify   Verify   `yaml:"verify"`
	Drill    Drill    `yaml:"drill"`
	LockFile string   `yaml:"lock_file"` // "" → keyescrow.lock in the state folder
	Signing  Signing  `yaml:"signing"`
	Trust    Trust    `yaml:"trust"`
	Timeouts Timeouts `yaml:"timeouts"`
	// Hierarchy: the database master keys and certificates backup
	// escrows with the service master key.
	Hierarchy Hierarchy `yaml:"hierarchy"`
	// StateDirectory is keyescrow's private folder (the lock, the host
	// identity backup recorded); "" → the per-OS default of package state.
	StateDirectory string `yaml:"state_directory"`
	// Host names this host's copies for every command: backup names them
	// with it instead of SQL Server's MachineName, and list, verify,
	// restore, drill and archive use it as their default host. "" → the
	// identity backup recorded in the state folder, else the OS host name.
	Host   string `yaml:"host"`
	Source string `yaml:"-"` // the file path it came from, "" when none

	// lines maps a display key ("destinations[1].bucket") to its line in
	// Source; keys later overridden by env or Set are removed.
	lines map[string]int
}

// Signing names the Ed25519 private key (made by keyescrow init-key) that
// backup and archive sign every stored receipt with. It is a secret: from
// KeyFile (owner-only) or the variable KeyEnv (the key file's PEM text).
// Neither set: receipts are stored unsigned.
type Signing struct {
	KeyFile string `yaml:"key_file"`
	KeyEnv  string `yaml:"key_env"`
}

// Trust pins the public keys (ed25519:<base64>, as init-key prints them)
// whose signatures list, verify, restore and drill accept. Set, a copy
// counts only when its receipt is signed by one of them; several allow a
// key rotation. Empty: receipts are not authenticated.
type Trust struct {
	PublicKeys []string `yaml:"public_keys"`
}

// SQLServer says where the DSN of the production server comes from. With
// neither key set, DSNEnv is DefaultDSNEnv (see DSNSource).
type SQLServer struct {
	DSNEnv  string `yaml:"dsn_env"`
	DSNFile string `yaml:"dsn_file"`
}

// Backup configures the key file SQL Server writes and its password. With
// neither PasswordEnv nor PasswordFile set, the password comes from
// DefaultPasswordEnv (see PasswordSource).
type Backup struct {
	ServerDirectory string `yaml:"server_directory"` // as SQL Server sees it
	LocalDirectory  string `yaml:"local_directory"`  // as this host sees it, when different
	PasswordEnv     string `yaml:"password_env"`
	PasswordFile    string `yaml:"password_file"` // "-" means standard input
	// SealTo turns on sealed passwords: every backup gets a fresh random
	// password, sealed to these age recipients (age1… public keys) and
	// stored beside the copy. Excludes PasswordEnv and PasswordFile.
	SealTo    []string `yaml:"seal_to"`
	KeepLocal bool     `yaml:"keep_local"`
	// Remote: keyescrow does not run on the database host (e.g. a CI
	// runner). SQL Server still writes the key file to ServerDirectory on
	// its own disk; the agent reads it back over the SQL connection
	// (OPENROWSET BULK … SINGLE_BLOB, which needs ADMINISTER BULK
	// OPERATIONS) and asks the server to remove it afterwards.
	// LocalDirectory must then be empty.
	Remote bool `yaml:"remote"`
}

// Verify configures `keyescrow verify`.
type Verify struct {
	// Copies is how many of the newest copies per host and instance are
	// downloaded and re-hashed at each destination (default 3).
	Copies int `yaml:"copies"`
}

// Drill configures `keyescrow drill`: the scratch SQL Server the newest
// copy is restored into. It must never be the production server of the
// sqlserver section. With neither DSNEnv nor DSNFile set, the DSN comes
// from DefaultDrillDSNEnv.
type Drill struct {
	DSNEnv  string `yaml:"dsn_env"`
	DSNFile string `yaml:"dsn_file"`
	// ServerDirectory is where the scratch server reads the key file from,
	// as it sees the path (default: backup.server_directory).
	ServerDirectory string `yaml:"server_directory"`
	// LocalDirectory is the same folder as this host sees it, when
	// different (default: backup.local_directory when ServerDirectory is
	// not set either).
	LocalDirectory string `yaml:"local_directory"`
}

// Timeouts bound every network operation and the whole run, so that a
// stalled server never holds the host lock for long. Defaults: connect
// 30s, request 2m, idle 30s, run 10m.
type Timeouts struct {
	// Connect bounds a TCP connect and TLS handshake to a destination, and
	// connecting and logging in to SQL Server.
	Connect Duration `yaml:"connect"`
	// Request bounds one storage request (with its retries and its body)
	// and one SQL statement.
	Request Duration `yaml:"request"`
	// Idle bounds how long no byte may move on a storage request or
	// response (waiting for the answer counts).
	Idle Duration `yaml:"idle"`
	// Run bounds the whole command.
	Run Duration `yaml:"run"`
}

// Destination is one place the key file is archived to. The "for" tag lists
// the destination types a key belongs to; keys without it apply to all.
type Destination struct {
	Name   string `yaml:"name"`
	Type   string `yaml:"type"` // s3 | azureblob | file
	Prefix string `yaml:"prefix"`

	Bucket    string `yaml:"bucket" for:"s3"`
	Region    string `yaml:"region" for:"s3"`
	Endpoint  string `yaml:"endpoint" for:"s3"`
	PathStyle bool   `yaml:"path_style" for:"s3"`
	Profile   string `yaml:"profile" for:"s3"` // AWS shared config profile; "" = the default chain
	// CAFile is an extra CA bundle (PEM) trusted for a private endpoint or
	// an emulator, on top of the system roots.
	CAFile string `yaml:"ca_file" for:"s3,azureblob"`

	AccountURL     string `yaml:"account_url" for:"azureblob"`
	Container      string `yaml:"container" for:"azureblob"`
	Auth           string `yaml:"auth" for:"azureblob"`
	ResourceID     string `yaml:"resource_id" for:"azureblob"`
	AccountKeyEnv  string `yaml:"account_key_env" for:"azureblob"`
	AccountKeyFile string `yaml:"account_key_file" for:"azureblob"`
	SASEnv         string `yaml:"sas_env" for:"azureblob"`
	SASFile        string `yaml:"sas_file" for:"azureblob"`
	// TenantID and ClientID name the Entra ID application for auth
	// client-secret and client-certificate (and optionally a user-assigned
	// managed identity's client id for managed-identity, or override
	// AZURE_CLIENT_ID/AZURE_TENANT_ID for workload-identity).
	TenantID                     string `yaml:"tenant_id" for:"azureblob"`
	ClientID                     string `yaml:"client_id" for:"azureblob"`
	ClientSecretEnv              string `yaml:"client_secret_env" for:"azureblob"`
	ClientSecretFile             string `yaml:"client_secret_file" for:"azureblob"`
	ClientCertificateFile        string `yaml:"client_certificate_file" for:"azureblob"` // PEM or PKCS#12 with the private key
	ClientCertificatePasswordEnv string `yaml:"client_certificate_password_env" for:"azureblob"`

	Path string `yaml:"path" for:"file"`

	Retention *Retention `yaml:"retention" for:"s3,azureblob"`
	// LegalHold also places a legal hold on every copy (S3 Object Lock legal
	// hold, Azure legal hold); it stays until someone with the right to
	// remove it does.
	LegalHold bool `yaml:"legal_hold" for:"s3,azureblob"`
	// Required: the run fails when this destination holds no proven copy,
	// whatever require says.
	Required bool `yaml:"required"`
}

// Retention is the lock applied to every archived object: for s3 the Object
// Lock mode (COMPLIANCE or GOVERNANCE), for azureblob the immutability policy
// state (locked or unlocked).
type Retention struct {
	Mode string `yaml:"mode"`
	Days int    `yaml:"days"`
}

// Destination types.
const (
	TypeS3        = "s3"
	TypeAzureBlob = "azureblob"
	TypeFile      = "file"
)

// Checks that can be waived.
const (
	WaiveRegion       = "region"
	WaiveVersioning   = "versioning"
	WaiveImmutability = "immutability"
)

// Default returns the configuration before any file or environment.
func Default() *Config {
	return &Config{MaxAge: Duration(8 * day), Verify: Verify{Copies: 3}, Hierarchy: Hierarchy{Enabled: true, Refresh: DefaultRefresh}, Timeouts: Timeouts{
		Connect: Duration(30 * time.Second), Request: Duration(2 * time.Minute),
		Idle: Duration(30 * time.Second), Run: Duration(10 * time.Minute),
	}}
}

// Waived reports whether check is listed in waive.
func (c *Config) Waived(check string) bool {
	for _, w := range c.Waive {
		if w == check {
			return true
		}
	}
	return false
}

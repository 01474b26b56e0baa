package config

import (
	"fmt"

	"github.com/keyescrow/keyescrow/internal/sealed"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"

	"github.com/keyescrow/keyescrow/internal/sign"
)

// Validate checks the whole configuration and reports every problem at once
// (errors.Join of *Error), each naming the key and the fix. It normalises
// as it goes: retention modes (COMPLIANCE/GOVERNANCE upper case,
// locked/unlocked lower case), auth ("" → "default") and prefixes (a
// trailing "/" added).
func (c *Config) Validate() error {
	p := c.validate()
	return p.join()
}

func (c *Config) validate() *problems {
	p := &problems{c: c}
	c.validateTop(p)
	c.validateTimeouts(p)
	c.validateDestinations(p)
	return p
}

// ValidateFor is Validate plus what command needs: "backup" needs a
// sqlserver section and backup.server_directory, "inventory" a sqlserver
// section. The other commands
// (archive, check, list, verify, restore, drill) need only Validate.
func (c *Config) ValidateFor(command string) error {
	p := c.validate()
	switch command {
	case "backup":
		if c.SQLServer == nil {
			p.missing("sqlserver", "backup needs SQL Server",
				"add a sqlserver section (dsn_env or dsn_file), or set "+DefaultDSNEnv)
		}
		if c.Backup.ServerDirectory == "" {
			p.missing("backup.server_directory", "is required for backup",
				"set it to the folder SQL Server writes the key file to, as the server sees it")
		}
	case "inventory":
		if c.SQLServer == nil {
			p.missing("sqlserver", "inventory reads the hierarchy from SQL Server",
				"add a sqlserver section (dsn_env or dsn_file), or set "+DefaultDSNEnv)
		}
	case "drill":
		if dir, _ := c.DrillDirectories(); dir == "" {
			p.missing("drill.server_directory", "is required for drill (or backup.server_directory)",
				"set it to the folder the scratch SQL Server reads the key file from, as it sees the path")
		}
	case "archive", "check", "list", "verify", "restore":
	default:
		p.add("", fmt.Sprintf("ValidateFor: unknown command %q", command), "")
	}
	return p.join()
}

// Warnings returns the problems that do not stop a run, such as a
// retention shorter than a year. Call it after Validate.
func (c *Config) Warnings() []Warning {
	var out []Warning
	for i, d := range c.Destinations {
		if d.Retention != nil && d.Retention.Days >= 1 && d.Retention.Days < 365 {
			out = append(out, Warning(fmt.Sprintf(
				"destinations[%d].retention.days: %d is under a year; a key may be needed to restore an old backup, so keep it at least as long as those backups (e.g. 3650)",
				i, d.Retention.Days)))
		}
	}
	return out
}

// problems collects *Error values, with file and line from the Config.
type problems struct {
	c *Config
	errs
}

// add reports a problem with the value at key (line of the key itself).
func (p *problems) add(key, problem, fix string) {
	file, line := p.c.lineOf(key, true)
	p.errs.add(&Error{File: file, Line: line, Key: key, Problem: problem, Fix: fix})
}

// missing reports a key that is absent (line of its enclosing section).
func (p *problems) missing(key, problem, fix string) {
	file, line := p.c.lineOf(key, false)
	p.errs.add(&Error{File: file, Line: line, Key: key, Problem: problem, Fix: fix})
}

var envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *Config) validateTop(p *problems) {
	b := c.Backup
	if b.PasswordEnv != "" && b.PasswordFile != "" {
		p.add("backup.password_file", "both backup.password_env and backup.password_file are set",
			"keep one of them")
	}
	checkEnvName(p, "backup.password_env", b.PasswordEnv)
	if len(b.SealTo) > 0 {
		if b.PasswordEnv != "" || b.PasswordFile != "" {
			p.add("backup.seal_to", "is set together with a static password (backup.password_env or backup.password_file)",
				"keep backup.seal_to for a fresh sealed password per backup, or the static password, not both")
		}
		if _, err := sealed.ParseRecipients(b.SealTo); err != nil {
			p.add("backup.seal_to", err.Error(), "list the age1… public keys of the people who may open the password (keyescrow new-identity --out FILE makes a pair and prints the public key)")
		}
	}
	if c.Require < 0 || c.Require > len(c.Destinations) {
		p.add("require", fmt.Sprintf("%d is not between 1 and the number of destinations (%d)", c.Require, len(c.Destinations)),
			"set it to how many destinations must hold a proven copy, or remove it (every destination)")
	}
	if s := c.SQLServer; s != nil {
		if s.DSNEnv != "" && s.DSNFile != "" {
			p.add("sqlserver.dsn_file", "both sqlserver.dsn_env and sqlserver.dsn_file are set",
				"keep one of them")
		}
		checkEnvName(p, "sqlserver.dsn_env", s.DSNEnv)
	}
	if b.ServerDirectory != "" && !serverPath(b.ServerDirectory) {
		p.add("backup.server_directory", "must be an absolute path as SQL Server sees it",
			`use e.g. /var/opt/mssql/keyescrow, C:\keyescrow or \\server\share\keyescrow`)
	}
	checkAbs(p, "backup.local_directory", b.LocalDirectory)
	if b.Remote && b.LocalDirectory != "" {
		p.add("backup.local_directory", "is not used with backup.remote: true (the key file is read over the SQL connection)",
			"remove backup.local_directory, or set backup.remote: false")
	}
	checkAbs(p, "metrics_file", c.MetricsFile)
	checkAbs(p, "lock_file", c.LockFile)
	checkAbs(p, "state_directory", c.StateDirectory)
	if c.Host != "" && (len(c.Host) > 255 || strings.IndexFunc(c.Host, unicode.IsControl) >= 0 || strings.TrimSpace(c.Host) != c.Host) {
		p.add("host", "is not a host name (at most 255 characters, no control characters, no leading or trailing spaces)",
			"set it to the name the copies are filed under, e.g. the failover cluster instance's virtual network name")
	}
	if c.MaxAge <= 0 {
		p.add("max_age", "must be positive", "set it to e.g. 8d")
	}
	if c.Verify.Copies < 1 || c.Verify.Copies > 1000 {
		p.add("verify.copies", fmt.Sprintf("%d is not between 1 and 1000", c.Verify.Copies),
			"set it to how many of the newest copies verify re-reads, e.g. 3")
	}
	c.validateSigning(p)
	c.validateHierarchy(p)
	d := c.Drill
	if d.DSNEnv != "" && d.DSNFile != "" {
		p.add("drill.dsn_file", "both drill.dsn_env and drill.dsn_file are set", "keep one of them")
	}
	checkEnvName(p, "drill.dsn_env", d.DSNEnv)
	if d.ServerDirectory != "" && !serverPath(d.ServerDirectory) {
		p.add("drill.server_directory", "must be an absolute path as the scratch SQL Server sees it",
			`use e.g. /var/opt/mssql/keyescrow-drill or C:\keyescrow-drill`)
	}
	checkAbs(p, "drill.local_directory", d.LocalDirectory)
	if d.LocalDirectory != "" && d.ServerDirectory == "" {
		p.add("drill.local_directory", "is set without drill.server_directory",
			"set drill.server_directory to the same folder as the scratch server sees it")
	}
	allowed := []string{WaiveRegion, WaiveVersioning, WaiveImmutability}
	for i, w := range c.Waive {
		if !contains(allowed, w) {
			p.add(fmt.Sprintf("waive[%d]", i), fmt.Sprintf("%q cannot be waived", w),
				didYouMean(w, allowed, "use "+quoteList(allowed)))
		}
	}
}

// checkEnvName rejects an *_env value that is not a variable name, without
// echoing it: it may be the secret itself pasted in by mistake.
func checkEnvName(p *problems, key, v string) {
	if v != "" && !envVarName.MatchString(v) {
		p.add(key, "is not an environment variable name (letters, digits and _)",
			"put the NAME of the variable here, never the secret itself")
	}
}

func checkAbs(p *problems, key, v string) {
	if v != "" && !filepath.IsAbs(v) {
		p.add(key, fmt.Sprintf("%q is not an absolute path", v),
			"use an absolute path (unattended runs have no useful working folder)")
	}
}

var windowsAbs = regexp.MustCompile(`^([A-Za-z]:[\\/]|\\\\[^\\]+\\[^\\]+)`)

// serverPath reports whether s is an absolute POSIX or Windows path (the
// server may run on another OS than this host).
func serverPath(s string) bool {
	if strings.ContainsAny(s, "\x00\r\n") {
		return false
	}
	return strings.HasPrefix(s, "/") || windowsAbs.MatchString(s)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// validateSigning checks the signing key's source and every pinned key.
func (c *Config) validateSigning(p *problems) {
	sg := c.Signing
	if sg.KeyEnv != "" && sg.KeyFile != "" {
		p.add("signing.key_file", "both signing.key_env and signing.key_file are set", "keep one of them")
	}
	checkEnvName(p, "signing.key_env", sg.KeyEnv)
	checkAbs(p, "signing.key_file", sg.KeyFile)
	seen := map[string]int{}
	for i, k := range c.Trust.PublicKeys {
		key := fmt.Sprintf("trust.public_keys[%d]", i)
		pk, err := sign.ParsePublicKey(k)
		if err != nil {
			p.add(key, err.Error(), "paste the public key line keyescrow init-key printed (ed25519:<base64 of 32 bytes>)")
			continue
		}
		if j, dup := seen[pk.ID]; dup {
			p.add(key, fmt.Sprintf("is the same key as trust.public_keys[%d]", j), "remove one of them")
		}
		seen[pk.ID] = i
	}
}

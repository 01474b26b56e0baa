package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/keyescrow/keyescrow/internal/secret"
)

// SecretSource says where one secret comes from: the variable Env or the
// file File ("-" for standard input). Key names the secret in messages, e.g.
// "backup.password"; the config keys are Key+"_env" and Key+"_file".
type SecretSource struct {
	Key  string
	Env  string
	File string
	// Lines: the secret is a text of several lines (an age identity file),
	// whose line breaks are kept; every other secret is one line.
	Lines bool
}

// PasswordSource returns where the backup password comes from
// (DefaultPasswordEnv when neither key is set).
func (c *Config) PasswordSource() SecretSource {
	s := SecretSource{Key: "backup.password", Env: c.Backup.PasswordEnv, File: c.Backup.PasswordFile}
	if s.Env == "" && s.File == "" {
		s.Env = DefaultPasswordEnv
	}
	return s
}

// DSNSource returns where the SQL Server DSN comes from (DefaultDSNEnv when
// neither key is set or there is no sqlserver section).
func (c *Config) DSNSource() SecretSource {
	s := SecretSource{Key: "sqlserver.dsn"}
	if c.SQLServer != nil {
		s.Env, s.File = c.SQLServer.DSNEnv, c.SQLServer.DSNFile
	}
	if s.Env == "" && s.File == "" {
		s.Env = DefaultDSNEnv
	}
	return s
}

// DrillDSNSource returns where the scratch SQL Server's DSN for `drill`
// comes from (DefaultDrillDSNEnv when neither key is set).
func (c *Config) DrillDSNSource() SecretSource {
	s := SecretSource{Key: "drill.dsn", Env: c.Drill.DSNEnv, File: c.Drill.DSNFile}
	if s.Env == "" && s.File == "" {
		s.Env = DefaultDrillDSNEnv
	}
	return s
}

// DrillDirectories returns the folder the scratch server reads the key file
// from (as it sees it) and the same folder as this host sees it.
func (c *Config) DrillDirectories() (server, local string) {
	if c.Drill.ServerDirectory != "" {
		return c.Drill.ServerDirectory, c.Drill.LocalDirectory
	}
	return c.Backup.ServerDirectory, c.Backup.LocalDirectory
}

// AccountKeySource returns where an azureblob shared key comes from.
func (d Destination) AccountKeySource() SecretSource {
	return SecretSource{Key: d.key("account_key"), Env: d.AccountKeyEnv, File: d.AccountKeyFile}
}

// SASSource returns where an azureblob SAS token comes from.
func (d Destination) SASSource() SecretSource {
	return SecretSource{Key: d.key("sas"), Env: d.SASEnv, File: d.SASFile}
}

// ClientSecretSource returns where an azureblob client secret comes from.
func (d Destination) ClientSecretSource() SecretSource {
	return SecretSource{Key: d.key("client_secret"), Env: d.ClientSecretEnv, File: d.ClientSecretFile}
}

// ClientCertificatePasswordSource returns where the password of an azureblob
// client certificate comes from; Env is "" when the certificate has none.
func (d Destination) ClientCertificatePasswordSource() SecretSource {
	return SecretSource{Key: d.key("client_certificate_password"), Env: d.ClientCertificatePasswordEnv}
}

func (d Destination) key(k string) string {
	return fmt.Sprintf("destinations[%s].%s", d.Name, k)
}

// SigningKeySource returns where the receipt signing key comes from (a
// text of several lines: a comment and the key); both
// fields empty when no signing key is configured.
func (c *Config) SigningKeySource() SecretSource {
	return SecretSource{Key: "signing.key", Env: c.Signing.KeyEnv, File: c.Signing.KeyFile, Lines: true}
}

// ReadSecret reads the secret src points to. A variable must be set and
// non-empty; a file (or standard input for "-") must be a regular file of
// at most MaxSecretBytes, is read whole with exactly one trailing "\n" or
// "\r\n" removed, and must not then be empty. Whatever the source, a
// one-line secret (all but src.Lines) that still holds a line break or
// another control character is refused: a second newline at the end of a
// file would otherwise become part of the password without anyone seeing
// it. A file that group or others can read gives a Warning. Errors never
// contain the secret.
func ReadSecret(src SecretSource, env Env, stdin io.Reader) (secret.Value, []Warning, error) {
	v, warns, err := readSecret(src, env, stdin)
	if err != nil {
		return secret.Value{}, nil, err
	}
	if problem := controlProblem(v); problem != "" && !src.Lines {
		return secret.Value{}, nil, &Error{Key: src.Key, Problem: sourceName(src) + " " + problem, Fix: controlFix(src)}
	}
	return secret.New(v), warns, nil
}

func readSecret(src SecretSource, env Env, stdin io.Reader) (string, []Warning, error) {
	fail := func(problem, fix string, err error) (string, []Warning, error) {
		return "", nil, &Error{Key: src.Key, Problem: problem, Fix: fix, Err: err}
	}
	switch {
	case src.Env != "" && src.File != "":
		return fail("both "+src.Key+"_env and "+src.Key+"_file are set", "keep one", nil)
	case src.Env != "":
		v, ok := env(src.Env)
		if !ok {
			return fail("environment variable "+src.Env+" is not set",
				"set it, or set "+src.Key+"_file", nil)
		}
		if v == "" {
			return fail("environment variable "+src.Env+" is empty",
				"set it to the secret, or set "+src.Key+"_file", nil)
		}
		return v, nil, nil
	case src.File == "-":
		if stdin == nil {
			return fail("standard input is not available", "pipe the secret in, or set "+src.Key+"_env", nil)
		}
		b, err := io.ReadAll(io.LimitReader(stdin, MaxSecretBytes+1))
		if err != nil {
			return fail("cannot read standard input: "+err.Error(), "", err)
		}
		if len(b) > MaxSecretBytes {
			return fail("standard input holds more than "+sizeText(MaxSecretBytes), "pipe in the secret alone", nil)
		}
		v := stripNewline(b)
		if v == "" {
			return fail("standard input was empty", "pipe the secret in, or set "+src.Key+"_env", nil)
		}
		return v, nil, nil
	case src.File != "":
		return readSecretFile(src)
	}
	return fail("no source", "set "+src.Key+"_env or "+src.Key+"_file", nil)
}

func readSecretFile(src SecretSource) (string, []Warning, error) {
	fail := func(problem, fix string, err error) (string, []Warning, error) {
		return "", nil, &Error{Key: src.Key, Problem: problem, Fix: fix, Err: err}
	}
	data, err := readRegular(src.File, MaxSecretBytes)
	var nr *notRegularError
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		return fail("file "+src.File+" does not exist", "create it, or correct "+src.Key+"_file", err)
	case errors.Is(err, fs.ErrPermission):
		return fail("file "+src.File+" is not readable (permission denied)",
			"run as its owner, or correct "+src.Key+"_file", err)
	case errors.As(err, &nr) && nr.kind == "a folder":
		return fail(src.File+" is a folder", "point "+src.Key+"_file at the file holding the secret", err)
	case errors.As(err, &nr):
		return fail("cannot use "+src.File+": "+nr.Error(),
			"point "+src.Key+"_file at a regular file holding the secret, or use \"-\" to read it from standard input", err)
	case errors.Is(err, errTooLarge):
		return fail("file "+src.File+" is "+err.Error(), "is this the right file? It should hold the secret alone", err)
	default:
		return fail("cannot read file "+src.File+": "+err.Error(), "correct "+src.Key+"_file", err)
	}
	var warns []Warning
	if fi, err := os.Stat(src.File); err == nil && tooOpen(fi) {
		warns = append(warns, Warning(fmt.Sprintf(
			"%s: file %s can be read by other users (mode %04o); run chmod 600 %s",
			src.Key, src.File, fi.Mode().Perm(), src.File)))
	}
	v := stripNewline(data)
	if v == "" {
		return fail("file "+src.File+" is empty", "write the secret into it", nil)
	}
	return v, warns, nil
}

// stripNewline removes exactly one trailing "\n" or "\r\n".
func stripNewline(b []byte) string {
	switch {
	case bytes.HasSuffix(b, []byte("\r\n")):
		b = b[:len(b)-2]
	case bytes.HasSuffix(b, []byte("\n")):
		b = b[:len(b)-1]
	}
	return string(b)
}

// controlProblem says what is wrong when v holds a line break or another
// control character (never where, nor which: that would tell part of the
// secret), or "" when v is clean.
func controlProblem(v string) string {
	for _, r := range v {
		switch {
		case r == '\n' || r == '\r':
			return "still holds a line break after the one trailing newline was removed"
		case r < 0x20 || r == 0x7f:
			// ASCII control characters only: what a file or a terminal
			// leaves by accident. C1 code points can come from a legacy
			// code page's view of a UTF-8 environment and are SQL Server
			// characters like any other.
			return "holds a control character (such as a tab or an escape)"
		}
	}
	return ""
}

func sourceName(src SecretSource) string {
	switch {
	case src.Env != "":
		return "environment variable " + src.Env
	case src.File == "-":
		return "standard input"
	}
	return "file " + src.File
}

func controlFix(src SecretSource) string {
	if src.Env != "" {
		return "set it to the secret alone, on one line, without a trailing newline"
	}
	return "write the secret on one line with at most one newline at the end (an extra blank line counts), e.g. printf '%s\\n' \"$SECRET\" > FILE"
}

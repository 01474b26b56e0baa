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
}

// maxSecret bounds what ReadSecret reads from a file or standard input.
const maxSecret = 1 << 20

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

// SigningKeySource returns where the receipt signing key comes from; both
// fields empty when no signing key is configured.
func (c *Config) SigningKeySource() SecretSource {
	return SecretSource{Key: "signing.key", Env: c.Signing.KeyEnv, File: c.Signing.KeyFile}
}

// ReadSecret reads the secret src points to. A variable must be set and
// non-empty; a file (or standard input for "-") is read whole with one
// trailing "\n" or "\r\n" removed, and must not then be empty. A file that
// group or others can read gives a Warning. Errors never contain the secret.
func ReadSecret(src SecretSource, env Env, stdin io.Reader) (secret.Value, []Warning, error) {
	fail := func(problem, fix string, err error) (secret.Value, []Warning, error) {
		return secret.Value{}, nil, &Error{Key: src.Key, Problem: problem, Fix: fix, Err: err}
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
		return secret.New(v), nil, nil
	case src.File == "-":
		if stdin == nil {
			return fail("standard input is not available", "pipe the secret in, or set "+src.Key+"_env", nil)
		}
		v, err := readAll(stdin)
		if err != nil {
			return fail("cannot read standard input: "+err.Error(), "", err)
		}
		if v == "" {
			return fail("standard input was empty", "pipe the secret in, or set "+src.Key+"_env", nil)
		}
		return secret.New(v), nil, nil
	case src.File != "":
		return readSecretFile(src)
	}
	return fail("no source", "set "+src.Key+"_env or "+src.Key+"_file", nil)
}

func readSecretFile(src SecretSource) (secret.Value, []Warning, error) {
	fail := func(problem, fix string, err error) (secret.Value, []Warning, error) {
		return secret.Value{}, nil, &Error{Key: src.Key, Problem: problem, Fix: fix, Err: err}
	}
	f, err := os.Open(src.File)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fail("file "+src.File+" does not exist", "create it, or correct "+src.Key+"_file", err)
		case errors.Is(err, fs.ErrPermission):
			return fail("file "+src.File+" is not readable (permission denied)",
				"run as its owner, or correct "+src.Key+"_file", err)
		}
		return fail("cannot open file "+src.File, "correct "+src.Key+"_file", err)
	}
	defer f.Close()
	var warns []Warning
	if fi, err := f.Stat(); err == nil {
		if fi.IsDir() {
			return fail(src.File+" is a folder", "point "+src.Key+"_file at the file holding the secret", nil)
		}
		if tooOpen(fi) {
			warns = append(warns, Warning(fmt.Sprintf(
				"%s: file %s can be read by other users (mode %04o); run chmod 600 %s",
				src.Key, src.File, fi.Mode().Perm(), src.File)))
		}
	}
	v, err := readAll(f)
	if err != nil {
		return fail("cannot read file "+src.File+": "+err.Error(), "", err)
	}
	if v == "" {
		return fail("file "+src.File+" is empty", "write the secret into it", nil)
	}
	return secret.New(v), warns, nil
}

// readAll reads at most maxSecret bytes and strips one trailing newline.
func readAll(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSecret+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecret {
		return "", errors.New("larger than 1 MiB; is this the right file?")
	}
	switch {
	case bytes.HasSuffix(b, []byte("\r\n")):
		b = b[:len(b)-2]
	case bytes.HasSuffix(b, []byte("\n")):
		b = b[:len(b)-1]
	}
	return string(b), nil
}

package config

import (
	"errors"
	"io/fs"
	"os"
	"reflect"
)

// Load builds a Config from defaults, then the file at path (none when path
// is ""), then KEYESCROW_<PATH> variables read through env. It does not
// validate. A nil env means the process environment (OSEnv, OSEnvList), which
// also enables the warning for unknown KEYESCROW_ variables; use LoadEnv to
// inject both in tests.
func Load(path string, env Env) (*Config, []Warning, error) {
	if env == nil {
		return LoadEnv(path, OSEnv(), OSEnvList())
	}
	return LoadEnv(path, env, nil)
}

// LoadEnv is Load with the list of variable names (for the warning about
// KEYESCROW_ variables that match no key) injected; list may be nil.
func LoadEnv(path string, env Env, list EnvList) (*Config, []Warning, error) {
	c := Default()
	c.lines = map[string]int{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, readError(path, err)
		}
		if err := decodeYAML(path, data, c); err != nil {
			return nil, nil, err
		}
		c.Source = path
	}
	warns, err := applyEnv(c, env, list)
	if err != nil {
		return nil, warns, err
	}
	return c, warns, nil
}

func readError(path string, err error) error {
	e := &Error{File: path, Err: err}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		e.Problem = "config file not found"
		e.Fix = "create it (see docs/configuration.md), or pass --config (or set " + ConfigEnv + ") with the right path"
	case errors.Is(err, fs.ErrPermission):
		e.Problem = "cannot read the config file (permission denied)"
		e.Fix = "run as a user that can read it, or adjust its permissions"
	default:
		e.Problem = "cannot read the config file: " + err.Error()
		e.Fix = "pass --config with a readable file"
	}
	return e
}

// override records that the value at segs no longer comes from the file.
func (c *Config) override(segs []string) {
	delete(c.lines, display(segs))
}

// lineOf returns the file position to report for key: its own line, or for
// a key that is missing, the line of the nearest enclosing section.
func (c *Config) lineOf(key string, exact bool) (string, int) {
	if c.Source == "" {
		return "", 0
	}
	if l, ok := c.lines[key]; ok {
		return c.Source, l
	}
	if exact {
		return "", 0
	}
	for k := parentKey(key); k != ""; k = parentKey(k) {
		if l, ok := c.lines[k]; ok {
			return c.Source, l
		}
	}
	return "", 0
}

func parentKey(k string) string {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == '.' || k[i] == '[' {
			return k[:i]
		}
	}
	return ""
}

// set parses value into the key at segs (used by Set and the environment).
func (c *Config) set(segs []string, value string) error {
	v, err := locate(reflect.ValueOf(c), segs)
	if err != nil {
		return err
	}
	if err := setString(v, value); err != nil {
		return err
	}
	c.override(segs)
	return nil
}

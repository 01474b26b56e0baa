package config

import "errors"

// Set overrides one key from a flag: path is dotted ("backup.keep_local",
// "destinations.0.path"; "destinations[0].path" also works) and value is
// parsed like an environment variable (bools true/false, durations like 8d,
// "waive" a comma-separated list). Index len(destinations) appends a new
// destination.
func (c *Config) Set(path, value string) error {
	segs := splitPath(path)
	key := display(segs)
	if len(segs) == 0 {
		return &Error{Key: path, Problem: "empty key", Fix: "use key=value, e.g. backup.keep_local=true"}
	}
	if isSecretKey(segs) {
		return &Error{Key: key, Problem: "secrets are not accepted as flag values",
			Fix: "set " + key + "_env or " + key + "_file instead"}
	}
	if err := c.set(segs, value); err != nil {
		fix := ""
		if errors.Is(err, errIndex) {
			fix = "add destinations in order, starting at the next free index"
		}
		return &Error{Key: key, Problem: err.Error(), Fix: fix}
	}
	return nil
}

// isSecretKey reports whether segs name a secret itself (for which only the
// _env/_file keys exist), e.g. backup.password or sqlserver.dsn.
func isSecretKey(segs []string) bool {
	switch segs[len(segs)-1] {
	case "password", "dsn", "account_key", "sas", "client_secret", "client_certificate_password":
		return true
	}
	return false
}

package sqlserver

import (
	"net/url"
	"strings"
)

// redactParseError keeps only the shape of a DSN parse error: the driver's
// message may quote parts of the DSN, which can hold a password.
func redactParseError(err error) string {
	msg := err.Error()
	for _, marker := range []string{": ", " '"} {
		if i := strings.Index(msg, marker); i > 0 {
			msg = msg[:i]
		}
	}
	if len(msg) > 80 {
		msg = msg[:80]
	}
	return msg
}

// Endpoint describes the DSN's server for messages and receipts, without
// user info or parameters: "host:port" or "host\instance".
func Endpoint(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "(the configured server)"
	}
	host := u.Host
	if p := strings.Trim(u.Path, "/"); p != "" {
		host += `\` + p
	}
	return host
}

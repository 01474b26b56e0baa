package secret

import (
	"net/url"
	"strings"
)

// variants lists the forms a secret takes in text: as is, URL-escaped (in a
// DSN's user info or query) and with single quotes doubled (in T-SQL).
func variants(v string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range []string{
		v,
		url.QueryEscape(v),
		url.PathEscape(v),
		(&url.URL{User: url.User(v)}).User.String(),
		strings.ReplaceAll(v, "'", "''"),
	} {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

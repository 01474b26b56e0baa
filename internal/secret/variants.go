package secret

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
)

// unquote drops the surrounding quotes of a quoted form.
func unquote(q string) string {
	if len(q) >= 2 && q[0] == '"' && q[len(q)-1] == '"' {
		return q[1 : len(q)-1]
	}
	return q
}

// variants lists the forms a secret takes in text: as is, URL-escaped (in a
// DSN's user info or query), with single quotes doubled (in T-SQL), and
// escaped inside a JSON or Go-quoted string (JSON output, slog's text
// handler).
func variants(v string) []string {
	jsonForm, _ := json.Marshal(v)
	jsonHTML := new(strings.Builder)
	enc := json.NewEncoder(jsonHTML)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	seen := map[string]bool{}
	var out []string
	for _, s := range []string{
		v,
		url.QueryEscape(v),
		url.PathEscape(v),
		(&url.URL{User: url.User(v)}).User.String(),
		strings.ReplaceAll(v, "'", "''"),
		unquote(string(jsonForm)),
		unquote(strings.TrimSuffix(jsonHTML.String(), "\n")),
		unquote(strconv.Quote(v)),
		unquote(strconv.QuoteToASCII(v)),
	} {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

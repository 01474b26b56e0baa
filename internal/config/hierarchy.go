package config

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Hierarchy configures the keys below the service master key that backup
// escrows with it (docs/hierarchy.md): every database master key and every
// certificate with a private key, SQL Server's own ##MS_…## certificates
// aside, minus what Databases and Certificates leave out. Each item is
// archived only when it changed since its newest proven copy, or when that
// copy is older than Refresh.
type Hierarchy struct {
	// Enabled: backup also escrows the hierarchy (default true). false:
	// the service master key only.
	Enabled bool `yaml:"enabled"`
	// Refresh: an unchanged item is archived again when its newest proven
	// copy is older than this (default 30d).
	Refresh Duration `yaml:"refresh"`
	// Databases selects the databases whose master key and certificates
	// are escrowed (names, * and ? wildcards, any case).
	Databases Selection `yaml:"databases"`
	// Certificates selects certificates by name, or by database/name.
	Certificates Selection `yaml:"certificates"`
	// Passwords are the secrets some keys need to be exported: a database
	// master key the service master key does not protect, a certificate
	// whose private key has a password of its own.
	Passwords []KeyPassword `yaml:"passwords"`
}

// Selection is a list of patterns to include (empty: all) and to exclude
// (applied after include).
type Selection struct {
	Include []string `yaml:"include"`
	Exclude []string `yaml:"exclude"`
}

// KeyPassword is the password of one database master key (Certificate
// empty) or of one certificate's private key.
type KeyPassword struct {
	Database     string `yaml:"database"`
	Certificate  string `yaml:"certificate"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
}

// DefaultRefresh is hierarchy.refresh when not set.
const DefaultRefresh = Duration(30 * 24 * time.Hour)

// Source returns where the password comes from.
func (k KeyPassword) Source(i int) SecretSource {
	return SecretSource{Key: fmt.Sprintf("hierarchy.passwords[%d].password", i), Env: k.PasswordEnv, File: k.PasswordFile}
}

// Selected reports whether the selection keeps name (patterns compared
// case-insensitively, as SQL Server compares names by default), and when
// not, the pattern that leaves it out ("" when include has no match).
func (s Selection) Selected(name string) (bool, string) {
	return s.selected(func(p string) bool { return matchFold(p, name) })
}

// SelectedCertificate is Selected for a certificate: a pattern with a "/"
// matches database/name, any other the name in every database.
func (s Selection) SelectedCertificate(database, name string) (bool, string) {
	return s.selected(func(p string) bool {
		if db, cert, ok := strings.Cut(p, "/"); ok {
			return matchFold(db, database) && matchFold(cert, name)
		}
		return matchFold(p, name)
	})
}

func (s Selection) selected(match func(string) bool) (bool, string) {
	if len(s.Include) > 0 {
		in := false
		for _, p := range s.Include {
			if match(p) {
				in = true
				break
			}
		}
		if !in {
			return false, ""
		}
	}
	for _, p := range s.Exclude {
		if match(p) {
			return false, p
		}
	}
	return true, ""
}

// matchFold is path.Match without case. A bad pattern matches nothing;
// validation refuses it first.
func matchFold(pattern, name string) bool {
	ok, err := path.Match(strings.ToLower(pattern), strings.ToLower(name))
	return err == nil && ok
}

// PasswordFor returns the index of the password configured for a database
// master key (certificate "") or a certificate's private key, -1 when none.
func (h Hierarchy) PasswordFor(database, certificate string) int {
	for i, k := range h.Passwords {
		if strings.EqualFold(k.Database, database) && strings.EqualFold(k.Certificate, certificate) {
			return i
		}
	}
	return -1
}

func (c *Config) validateHierarchy(p *problems) {
	h := c.Hierarchy
	if h.Refresh <= 0 {
		p.add("hierarchy.refresh", "must be positive", "set it to e.g. 30d")
	}
	checkPatterns := func(key string, list []string, slash bool) {
		for i, pat := range list {
			k := fmt.Sprintf("%s[%d]", key, i)
			if pat == "" {
				p.add(k, "is empty", "remove it, or write a name or a pattern such as Sales* ")
				continue
			}
			parts := []string{pat}
			if slash {
				if db, cert, ok := strings.Cut(pat, "/"); ok {
					parts = []string{db, cert}
				}
			}
			for _, part := range parts {
				if _, err := path.Match(part, ""); err != nil || part == "" {
					p.add(k, fmt.Sprintf("%q is not a valid pattern", pat), "use names with * and ? (e.g. Sales*, or master/TDE* for certificates)")
					break
				}
			}
		}
	}
	checkPatterns("hierarchy.databases.include", h.Databases.Include, false)
	checkPatterns("hierarchy.databases.exclude", h.Databases.Exclude, false)
	checkPatterns("hierarchy.certificates.include", h.Certificates.Include, true)
	checkPatterns("hierarchy.certificates.exclude", h.Certificates.Exclude, true)
	seen := map[string]int{}
	for i, k := range h.Passwords {
		key := fmt.Sprintf("hierarchy.passwords[%d]", i)
		if k.Database == "" {
			p.missing(key+".database", "is missing", "name the database whose master key (or certificate) this password opens")
		}
		switch {
		case k.PasswordEnv != "" && k.PasswordFile != "":
			p.add(key+".password_file", "both password_env and password_file are set", "keep one of them")
		case k.PasswordEnv == "" && k.PasswordFile == "":
			p.missing(key+".password_env", "neither password_env nor password_file is set", "name the variable or the owner-only file that holds the password")
		}
		checkEnvName(p, key+".password_env", k.PasswordEnv)
		if k.PasswordFile != "-" {
			checkAbs(p, key+".password_file", k.PasswordFile)
		}
		id := strings.ToLower(k.Database) + "/" + strings.ToLower(k.Certificate)
		if j, dup := seen[id]; dup {
			p.add(key, fmt.Sprintf("names the same key as hierarchy.passwords[%d]", j), "keep one of them")
		}
		seen[id] = i
	}
}

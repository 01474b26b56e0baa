package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Env looks up an environment variable; production uses OSEnv.
type Env func(key string) (string, bool)

// EnvList returns the environment as "NAME=value" entries (or bare names),
// like os.Environ. Only the names are used.
type EnvList func() []string

// OSEnv returns os.LookupEnv.
func OSEnv() Env { return os.LookupEnv }

// OSEnvList returns os.Environ.
func OSEnvList() EnvList { return os.Environ }

// MapEnv returns an Env and EnvList over m, for tests and embedding.
func MapEnv(m map[string]string) (Env, EnvList) {
	env := func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	list := func() []string {
		var out []string
		for k, v := range m {
			out = append(out, k+"="+v)
		}
		return out
	}
	return env, list
}

// EnvPrefix starts every override variable: KEYESCROW_<PATH>, where PATH is
// the dotted key upper-cased with "." (and list indexes) joined by "_":
// backup.keep_local → KEYESCROW_BACKUP_KEEP_LOCAL, destinations.0.path →
// KEYESCROW_DESTINATIONS_0_PATH.
const EnvPrefix = "KEYESCROW_"

// EnvName returns the override variable for a dotted key.
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.Join(splitPath(path), "_"))
}

// applyEnv applies every KEYESCROW_<PATH> override found through env, then,
// when list is not nil, warns about KEYESCROW_ variables that match nothing.
func applyEnv(c *Config, env Env, list EnvList) ([]Warning, error) {
	used := map[string]bool{}
	var problems errs
	try := func(segs []string) {
		name := EnvPrefix + strings.ToUpper(strings.Join(segs, "_"))
		val, ok := env(name)
		if !ok {
			return
		}
		used[name] = true
		if err := c.set(segs, val); err != nil {
			problems.add(&Error{Key: display(segs),
				Problem: fmt.Sprintf("environment variable %s: %v", name, err),
				Fix:     "correct or unset " + name})
		}
	}
	lists := map[string][][]string{} // list key → item templates after "*"
	var listOrder []string
	for _, tp := range templates(reflect.TypeFor[Config]()) {
		i := slices.Index(tp, "*")
		if i < 0 {
			try(tp)
			continue
		}
		k := strings.Join(tp[:i], ".")
		if _, ok := lists[k]; !ok {
			listOrder = append(listOrder, k)
		}
		lists[k] = append(lists[k], tp[i+1:])
	}
	for _, k := range listOrder {
		prefix := strings.Split(k, ".")
		// An override for index len appends an item, so the loop bound grows.
		for n := 0; n <= listLen(c, prefix); n++ {
			for _, rest := range lists[k] {
				try(slices.Concat(prefix, []string{strconv.Itoa(n)}, rest))
			}
		}
	}
	if c.SQLServer == nil {
		if _, ok := env(DefaultDSNEnv); ok {
			c.SQLServer = &SQLServer{}
		}
	}
	if len(problems) > 0 {
		return nil, problems.join()
	}
	if list == nil {
		return nil, nil
	}
	return unknownEnv(c, list(), used)
}

// listLen returns the length of the list at prefix (0 when absent).
func listLen(c *Config, prefix []string) int {
	v := reflect.ValueOf(c).Elem()
	for _, s := range prefix {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return 0
			}
			v = v.Elem()
		}
		v, _, _ = fieldByKey(v, s)
	}
	return v.Len()
}

// unknownEnv warns about each KEYESCROW_ variable that is neither an
// override nor a secret source, and fails on an override for a list index
// past the end (which would otherwise be ignored).
func unknownEnv(c *Config, entries []string, used map[string]bool) ([]Warning, error) {
	keep := c.secretEnvNames()
	var names []string
	for _, e := range entries {
		name, _, _ := strings.Cut(e, "=")
		if strings.HasPrefix(name, EnvPrefix) && !used[name] && !keep[name] &&
			!strings.HasPrefix(name, EnvPrefix+"TEST_") {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	names = slices.Compact(names)

	var known []string
	var patterns []*regexp.Regexp
	for _, tp := range templates(reflect.TypeFor[Config]()) {
		name := EnvName(strings.Join(tp, "."))
		known = append(known, name)
		if strings.Contains(name, "*") {
			patterns = append(patterns, regexp.MustCompile("^"+
				strings.ReplaceAll(regexp.QuoteMeta(name), `\*`, `(\d+)`)+"$"))
		}
	}
	for k := range keep {
		known = append(known, k)
	}
	slices.Sort(known)

	var warns []Warning
	var problems errs
	for _, name := range names {
		if idx := matchIndex(patterns, name); idx >= 0 {
			problems.add(&Error{Key: name, Problem: fmt.Sprintf(
				"list index %d is past the end (there are %d destinations)", idx, len(c.Destinations)),
				Fix: "number destinations from 0 without gaps, or unset " + name})
			continue
		}
		cands := make([]string, len(known))
		for i, k := range known {
			cands[i] = strings.Join(fillIndex(strings.Split(k, "_"), strings.Split(name, "_")), "_")
		}
		msg := fmt.Sprintf("environment variable %s matches no configuration key; ", name)
		warns = append(warns, Warning(msg+didYouMean(name, cands, "unset it if it is not meant for keyescrow")))
	}
	return warns, problems.join()
}

func matchIndex(patterns []*regexp.Regexp, name string) int {
	for _, p := range patterns {
		if m := p.FindStringSubmatch(name); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	return -1
}

// secretEnvNames returns the variables that hold secrets or name the config
// file: never overrides, never warned about.
func (c *Config) secretEnvNames() map[string]bool {
	names := map[string]bool{ConfigEnv: true, DefaultPasswordEnv: true, DefaultDSNEnv: true, DefaultDrillDSNEnv: true}
	srcs := []SecretSource{c.PasswordSource(), c.DSNSource(), c.DrillDSNSource(), c.SigningKeySource()}
	for _, d := range c.Destinations {
		srcs = append(srcs, d.AccountKeySource(), d.SASSource(), d.ClientSecretSource(), d.ClientCertificatePasswordSource())
	}
	for i, k := range c.Hierarchy.Passwords {
		srcs = append(srcs, k.Source(i))
	}
	for _, s := range srcs {
		if s.Env != "" {
			names[s.Env] = true
		}
	}
	return names
}

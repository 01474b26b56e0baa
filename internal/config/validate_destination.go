package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

var (
	destName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	destTypes = []string{TypeS3, TypeAzureBlob, TypeFile}
	authModes = []string{"default", "managed-identity", "workload-identity", "client-secret",
		"client-certificate", "cli", "shared-key", "sas"}
)

func (c *Config) validateDestinations(p *problems) {
	if len(c.Destinations) == 0 {
		p.missing("destinations", "no destination is configured",
			"add at least one under destinations: (see docs/configuration.md), or set KEYESCROW_DESTINATIONS_0_TYPE and its keys")
		return
	}
	names := map[string]int{}
	worm := false
	for i := range c.Destinations {
		d := &c.Destinations[i]
		at := func(k string) string { return fmt.Sprintf("destinations[%d]%s", i, k) }
		switch first, dup := names[d.Name]; {
		case d.Name == "":
			p.missing(at(".name"), "is required", "give the destination a unique name such as offsite-s3")
		case dup:
			p.add(at(".name"), fmt.Sprintf("%q is also the name of destinations[%d]", d.Name, first),
				"give every destination its own name")
		case !destName.MatchString(d.Name):
			p.add(at(".name"), fmt.Sprintf("%q is not a valid name", d.Name),
				"use up to 63 letters, digits, '_', '.', '-', starting with a letter or digit")
		}
		names[d.Name] = i
		if !contains(destTypes, d.Type) {
			if d.Type == "" {
				p.missing(at(".type"), "is required", "set it to one of "+quoteList(destTypes))
			} else {
				p.add(at(".type"), fmt.Sprintf("unknown type %q", d.Type),
					didYouMean(d.Type, destTypes, "use one of "+quoteList(destTypes)))
			}
			continue
		}
		worm = worm || d.Type != TypeFile
		d.validate(p, at)
	}
	if worm && c.HomeRegion == "" && !c.Waived(WaiveRegion) {
		p.missing("home_region", "is required to prove destinations are in another region",
			"set it to the region this host lives in (e.g. eu-west-1), or add \"region\" to waive")
	}
}

// validate checks one destination of a known type; at renders its keys.
func (d *Destination) validate(p *problems, at func(string) string) {
	// Keys of another type.
	v := reflect.ValueOf(*d)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		types := f.Tag.Get("for")
		if types == "" || f.Name == "Retention" || slices.Contains(strings.Split(types, ","), d.Type) {
			continue
		}
		if !v.Field(i).IsZero() {
			p.add(at("."+tagOf(f)), fmt.Sprintf("%s is not used by type %s", tagOf(f), d.Type),
				"remove it (it belongs to type "+types+")")
		}
	}
	if strings.HasPrefix(d.Prefix, "/") {
		p.add(at(".prefix"), "must not start with \"/\"", "write it relative, e.g. sqlkeys/")
	} else if slices.Contains(strings.Split(d.Prefix, "/"), "..") {
		p.add(at(".prefix"), "must not contain \"..\"", "write a plain relative prefix, e.g. sqlkeys/")
	} else if d.Prefix != "" && !strings.HasSuffix(d.Prefix, "/") {
		d.Prefix += "/"
	}
	switch d.Type {
	case TypeS3:
		required(p, at, "bucket", d.Bucket, "set the bucket name")
		required(p, at, "region", d.Region, "set the bucket's region, e.g. us-east-2")
		if d.Endpoint != "" {
			checkURL(p, at(".endpoint"), d.Endpoint, "https://s3.example.com")
		}
	case TypeAzureBlob:
		required(p, at, "account_url", d.AccountURL, "set it, e.g. https://account.blob.core.windows.net")
		if d.AccountURL != "" {
			checkURL(p, at(".account_url"), d.AccountURL, "https://account.blob.core.windows.net")
		}
		required(p, at, "container", d.Container, "set the container name")
		d.validateAuth(p, at)
	case TypeFile:
		required(p, at, "path", d.Path, "set the folder to copy the key to, e.g. /mnt/keys")
		if d.Path != "" && !filepath.IsAbs(d.Path) {
			p.add(at(".path"), fmt.Sprintf("%q is not an absolute path", d.Path), "use an absolute path")
		}
		if d.Retention != nil {
			p.add(at(".retention"), "a folder cannot enforce retention",
				"remove retention or use s3/azureblob")
		}
		return
	}
	if d.CAFile != "" && !filepath.IsAbs(d.CAFile) {
		p.add(at(".ca_file"), fmt.Sprintf("%q is not an absolute path", d.CAFile), "use an absolute path to a PEM file")
	}
	d.validateRetention(p, at)
}

func (d *Destination) validateAuth(p *problems, at func(string) string) {
	if d.Auth == "" {
		d.Auth = "default"
	}
	if !contains(authModes, d.Auth) {
		p.add(at(".auth"), fmt.Sprintf("unknown auth %q", d.Auth),
			didYouMean(d.Auth, authModes, "use one of "+quoteList(authModes)))
	}
	pair := func(mode, env, envVal, file, fileVal string) {
		if d.Auth != mode {
			for _, k := range [][2]string{{env, envVal}, {file, fileVal}} {
				if k[1] != "" {
					p.add(at("."+k[0]), k[0]+" is only used with auth: "+mode,
						"remove it, or set auth: "+mode)
				}
			}
			return
		}
		switch {
		case envVal == "" && fileVal == "":
			p.missing(at("."+env), "auth "+mode+" needs "+env+" or "+file, "set one of them")
		case envVal != "" && fileVal != "":
			p.add(at("."+file), "both "+env+" and "+file+" are set", "keep one of them")
		}
		checkEnvName(p, at("."+env), envVal)
	}
	pair("shared-key", "account_key_env", d.AccountKeyEnv, "account_key_file", d.AccountKeyFile)
	pair("sas", "sas_env", d.SASEnv, "sas_file", d.SASFile)
	pair("client-secret", "client_secret_env", d.ClientSecretEnv, "client_secret_file", d.ClientSecretFile)

	switch d.Auth {
	case "client-secret", "client-certificate":
		required(p, at, "tenant_id", d.TenantID, "set the Entra ID tenant id of the application")
		required(p, at, "client_id", d.ClientID, "set the application (client) id")
	case "shared-key", "sas", "cli":
		for _, k := range [][2]string{{"tenant_id", d.TenantID}, {"client_id", d.ClientID}} {
			if k[1] != "" {
				p.add(at("."+k[0]), k[0]+" is not used with auth: "+d.Auth, "remove it")
			}
		}
	}
	if d.Auth == "client-certificate" {
		required(p, at, "client_certificate_file", d.ClientCertificateFile, "set the PEM or PKCS#12 file holding the certificate and its private key")
	} else {
		for _, k := range [][2]string{{"client_certificate_file", d.ClientCertificateFile}, {"client_certificate_password_env", d.ClientCertificatePasswordEnv}} {
			if k[1] != "" {
				p.add(at("."+k[0]), k[0]+" is only used with auth: client-certificate", "remove it, or set auth: client-certificate")
			}
		}
	}
	checkEnvName(p, at(".client_certificate_password_env"), d.ClientCertificatePasswordEnv)
	if d.ClientCertificateFile != "" && !filepath.IsAbs(d.ClientCertificateFile) {
		p.add(at(".client_certificate_file"), fmt.Sprintf("%q is not an absolute path", d.ClientCertificateFile), "use an absolute path")
	}
}

func (d *Destination) validateRetention(p *problems, at func(string) string) {
	r := d.Retention
	if r == nil {
		p.missing(at(".retention"), "a WORM destination must say its retention",
			"add e.g. retention: {mode: "+map[string]string{TypeS3: "COMPLIANCE", TypeAzureBlob: "locked"}[d.Type]+", days: 3650}")
		return
	}
	modes := []string{"COMPLIANCE", "GOVERNANCE"}
	r.Mode = strings.ToUpper(r.Mode)
	if d.Type == TypeAzureBlob {
		modes = []string{"locked", "unlocked"}
		r.Mode = strings.ToLower(r.Mode)
	}
	switch {
	case r.Mode == "":
		p.missing(at(".retention.mode"), "is required", "use one of "+quoteList(modes))
	case !contains(modes, r.Mode):
		p.add(at(".retention.mode"), fmt.Sprintf("%q is not a retention mode for %s", r.Mode, d.Type),
			didYouMean(r.Mode, modes, "use one of "+quoteList(modes)))
	}
	if r.Days < 1 {
		p.missing(at(".retention.days"), "must be at least 1", "set the number of days to keep each copy, e.g. 3650")
	}
}

func required(p *problems, at func(string) string, key, v, fix string) {
	if v == "" {
		p.missing(at("."+key), "is required", fix)
	}
}

// checkURL accepts https URLs, and http only for a local emulator.
func checkURL(p *problems, key, raw, example string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		p.add(key, "is not a URL", "use e.g. "+example)
	case u.RawQuery != "" || u.User != nil:
		p.add(key, "must not carry a query or credentials", "put secrets in the *_env/*_file keys, never in the URL")
	case u.Scheme == "https":
	case u.Scheme == "http" && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost"):
	default:
		p.add(key, "must use https (http only for 127.0.0.1 or localhost)", "use e.g. "+example)
	}
}

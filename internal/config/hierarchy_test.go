package config

import (
	"strings"
	"testing"
	"time"
)

func TestHierarchyDefaultsAndOverrides(t *testing.T) {
	c := valid(t)
	if !c.Hierarchy.Enabled || time.Duration(c.Hierarchy.Refresh) != 30*24*time.Hour {
		t.Fatalf("defaults: %+v", c.Hierarchy)
	}
	c = mustLoad(t, designExample+`hierarchy:
  enabled: false
  refresh: 14d
  databases: {exclude: [Scratch*]}
  certificates: {include: ["master/TDE*", Payroll]}
  passwords:
    - database: HR
      password_env: HR_DMK_PASSWORD
    - database: HR
      certificate: Signing
      password_file: /etc/keyescrow/signing-key-password
`, nil)
	h := c.Hierarchy
	if h.Enabled || time.Duration(h.Refresh) != 14*24*time.Hour || len(h.Passwords) != 2 || h.Passwords[1].Certificate != "Signing" {
		t.Fatalf("from the file: %+v", h)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if i := h.PasswordFor("hr", ""); i != 0 {
		t.Errorf("HR's master key password is entry %d, want 0", i)
	}
	if i := h.PasswordFor("HR", "signing"); i != 1 {
		t.Errorf("Signing's password is entry %d, want 1", i)
	}
	if i := h.PasswordFor("Sales", ""); i != -1 {
		t.Errorf("Sales has no password, got entry %d", i)
	}
	if s := h.Passwords[0].Source(0); s.Key != "hierarchy.passwords[0].password" || s.Env != "HR_DMK_PASSWORD" {
		t.Errorf("source %+v", s)
	}
}

func TestHierarchySelection(t *testing.T) {
	s := Selection{Exclude: []string{"Scratch*", "tempdb"}}
	for name, want := range map[string]bool{"Sales": true, "scratch01": false, "SCRATCH": false, "TempDB": false, "master": true} {
		if got, _ := s.Selected(name); got != want {
			t.Errorf("database %s selected %v, want %v", name, got, want)
		}
	}
	if _, why := s.Selected("Scratch2"); why != "Scratch*" {
		t.Errorf("the pattern that excludes Scratch2 is %q", why)
	}
	in := Selection{Include: []string{"Sales", "HR"}, Exclude: []string{"hr"}}
	for name, want := range map[string]bool{"sales": true, "HR": false, "Ops": false} {
		if got, _ := in.Selected(name); got != want {
			t.Errorf("include/exclude: %s selected %v, want %v", name, got, want)
		}
	}
	certs := Selection{Exclude: []string{"master/TDE*", "Old?"}}
	for _, c := range []struct {
		db, name string
		want     bool
	}{{"master", "TDECert", false}, {"Sales", "TDECert", true}, {"HR", "Old1", false}, {"HR", "Old10", true}, {"HR", "Payroll", true}} {
		if got, _ := certs.SelectedCertificate(c.db, c.name); got != c.want {
			t.Errorf("certificate %s/%s selected %v, want %v", c.db, c.name, got, c.want)
		}
	}
}

func TestHierarchyValidation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(h *Hierarchy)
		want   []string
	}{
		{"a refresh of zero", func(h *Hierarchy) { h.Refresh = 0 }, []string{"hierarchy.refresh", "must be positive"}},
		{"a bad database pattern", func(h *Hierarchy) { h.Databases.Exclude = []string{"Sales["} }, []string{"hierarchy.databases.exclude[0]", "not a valid pattern"}},
		{"an empty certificate pattern", func(h *Hierarchy) { h.Certificates.Include = []string{""} }, []string{"hierarchy.certificates.include[0]", "is empty"}},
		{"a certificate pattern without its name", func(h *Hierarchy) { h.Certificates.Exclude = []string{"master/"} }, []string{"hierarchy.certificates.exclude[0]", "not a valid pattern"}},
		{"a password without database", func(h *Hierarchy) { h.Passwords = []KeyPassword{{PasswordEnv: "X"}} }, []string{"hierarchy.passwords[0].database", "is missing"}},
		{"a password without source", func(h *Hierarchy) { h.Passwords = []KeyPassword{{Database: "HR"}} }, []string{"hierarchy.passwords[0]", "neither password_env nor password_file"}},
		{"a password with both sources", func(h *Hierarchy) {
			h.Passwords = []KeyPassword{{Database: "HR", PasswordEnv: "X", PasswordFile: "/x"}}
		}, []string{"both password_env and password_file"}},
		{"a password pasted into password_env", func(h *Hierarchy) { h.Passwords = []KeyPassword{{Database: "HR", PasswordEnv: "Hr-Dmk-Pa55!"}} }, []string{"hierarchy.passwords[0].password_env", "not an environment variable name"}},
		{"a relative password file", func(h *Hierarchy) { h.Passwords = []KeyPassword{{Database: "HR", PasswordFile: "pw"}} }, []string{"hierarchy.passwords[0].password_file", "absolute"}},
		{"the same key twice", func(h *Hierarchy) {
			h.Passwords = []KeyPassword{{Database: "HR", PasswordEnv: "A"}, {Database: "hr", PasswordEnv: "B"}}
		}, []string{"hierarchy.passwords[1]", "same key as hierarchy.passwords[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid(t)
			tt.mutate(&c.Hierarchy)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "Hr-Dmk-Pa55!") {
				t.Errorf("the error echoes what may be a password: %v", err)
			}
		})
	}
}

func TestHierarchyFromTheEnvironment(t *testing.T) {
	env := map[string]string{
		"KEYESCROW_HIERARCHY_ENABLED":                  "false",
		"KEYESCROW_HIERARCHY_REFRESH":                  "14d",
		"KEYESCROW_HIERARCHY_DATABASES_EXCLUDE":        "Ops,Scratch*",
		"KEYESCROW_HIERARCHY_PASSWORDS_0_DATABASE":     "HR",
		"KEYESCROW_HIERARCHY_PASSWORDS_0_PASSWORD_ENV": "HR_DMK",
	}
	c, _, err := Load("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	h := c.Hierarchy
	if h.Enabled || h.Refresh.String() == DefaultRefresh.String() || strings.Join(h.Databases.Exclude, ",") != "Ops,Scratch*" ||
		len(h.Passwords) != 1 || h.Passwords[0].PasswordEnv != "HR_DMK" {
		t.Fatalf("%+v", h)
	}
	if err := c.Set("hierarchy.certificates.exclude", "master/TDE*"); err != nil || c.Hierarchy.Certificates.Exclude[0] != "master/TDE*" {
		t.Fatalf("--set: %v %+v", err, c.Hierarchy.Certificates)
	}
}

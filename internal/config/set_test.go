package config

import (
	"testing"
)

func TestSet(t *testing.T) {
	tests := []struct {
		name, path, value string
		check             func(*Config) bool
	}{
		{"a bool is parsed", "backup.keep_local", "true", func(c *Config) bool { return c.Backup.KeepLocal }},
		{"a list index in dots works", "destinations.0.path", "/x", func(c *Config) bool { return c.Destinations[0].Path == "/x" }},
		{"a list index in brackets works", "destinations[0].bucket", "b", func(c *Config) bool { return c.Destinations[0].Bucket == "b" }},
		{"the next index appends", "destinations.1.name", "n", func(c *Config) bool { return len(c.Destinations) == 2 }},
		{"waive takes a comma list", "waive", "region,versioning", func(c *Config) bool { return len(c.Waive) == 2 }},
		{"a duration is parsed", "max_age", "36h", func(c *Config) bool { return c.MaxAge.String() == "36h0m0s" }},
		{"a section is created on demand", "sqlserver.dsn_file", "/d", func(c *Config) bool { return c.SQLServer.DSNFile == "/d" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, baseFile, nil)
			if err := c.Set(tt.path, tt.value); err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("Set(%q, %q) not applied: %+v", tt.path, tt.value, c)
			}
		})
	}
}

func TestSetRefuses(t *testing.T) {
	tests := []struct {
		name, path, value string
		want              []string
	}{
		{"an unknown key with a suggestion", "home_regon", "x", []string{"home_regon", `"home_region"`}},
		{"an unknown nested key keeps the index", "destinations.0.bukcet", "x", []string{`"destinations.0.bucket"`}},
		{"a section that is not a value", "backup", "x", []string{"unknown key"}},
		{"a bad bool", "backup.keep_local", "sure", []string{"backup.keep_local", "true or false"}},
		{"an index past the end", "destinations.3.path", "/x", []string{"destinations[3]", "next one is 1"}},
		{"a secret as a flag value", "backup.password", "hunter2", []string{"not accepted as flag values", "password_env"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, baseFile, nil)
			wantErr(t, c.Set(tt.path, tt.value), tt.want...)
		})
	}
}

func TestSetDropsTheFileLineOfTheKey(t *testing.T) {
	c := mustLoad(t, "destinations:\n  - name: usb\n    type: file\n    path: /ok\n", nil)
	if err := c.Set("destinations.0.path", "rel"); err != nil {
		t.Fatal(err)
	}
	err := c.Validate()
	wantErr(t, err, "destinations[0].path")
	if got := err.Error(); len(got) > 0 && got[0] == '/' {
		t.Errorf("a flag value should not be blamed on the file: %q", got)
	}
}

package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"
)

func TestDesignExampleLoadsAndValidates(t *testing.T) {
	c := mustLoad(t, designExample, nil)
	for _, cmd := range []string{"backup", "archive", "check", "verify"} {
		if err := c.ValidateFor(cmd); err != nil {
			t.Errorf("ValidateFor(%q): %v", cmd, err)
		}
	}
	if len(c.Destinations) != 3 || c.Destinations[2].Path != "/mnt/keys" {
		t.Errorf("destinations = %+v", c.Destinations)
	}
	if r := c.Destinations[0].Retention; r == nil || r.Mode != "COMPLIANCE" || r.Days != 3650 {
		t.Errorf("s3 retention = %+v", r)
	}
	if c.Destinations[1].Auth != "default" || c.HomeRegion != "eu-west-1" {
		t.Errorf("azure auth %q, home_region %q", c.Destinations[1].Auth, c.HomeRegion)
	}
	if time.Duration(c.MaxAge) != 8*24*time.Hour || c.SQLServer == nil || c.Source == "" {
		t.Errorf("max_age %v, sqlserver %v, source %q", c.MaxAge, c.SQLServer, c.Source)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings = %q", w)
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"an unknown top-level key names its line and a suggestion",
			"home_regoin: eu-west-1\n", []string{"config.yaml:1:", "home_regoin", "unknown key", `did you mean "home_region"?`}},
		{"an unknown nested key names its line and a suggestion",
			"backup:\n  keep_locl: true\n", []string{"config.yaml:2:", "backup.keep_locl", `"keep_local"`}},
		{"an unknown key in a list item names the index",
			"destinations:\n  - name: a\n    type: s3\n  - name: b\n    bukcet: x\n",
			[]string{"config.yaml:5:", "destinations[1].bukcet", `did you mean "bucket"?`}},
		{"an unknown key deep in retention is found",
			"destinations:\n  - retention: {mode: locked, dayz: 3}\n", []string{"config.yaml:2:", "destinations[0].retention.dayz", `"days"`}},
		{"a wrong type names its line",
			"destinations:\n  - name: a\n    retention:\n      days: ten\n", []string{"config.yaml:4:", "destinations[0].retention.days", `"ten" is not a whole number`}},
		{"a bool that is not true or false is refused",
			"backup:\n  keep_local: yes\n", []string{"config.yaml:2:", "backup.keep_local", "true or false"}},
		{"a bad duration is refused",
			"max_age: soon\n", []string{"config.yaml:1:", "max_age"}},
		{"a mapping where a value belongs is refused",
			"home_region:\n  a: b\n", []string{"config.yaml:2:", "home_region", "single value"}},
		{"a scalar where a list belongs is refused",
			"destinations: usb\n", []string{"config.yaml:1:", "destinations", "expected a list"}},
		{"waive must be a list",
			"waive: region\n", []string{"config.yaml:1:", "waive", "expected a list"}},
		{"a duplicate key is refused",
			"home_region: a\nhome_region: b\n", []string{"config.yaml:2:", "duplicate key", "line 1"}},
		{"a second document is refused",
			"home_region: a\n---\nhome_region: b\n", []string{"config.yaml:2:", "second YAML document"}},
		{"a top level that is not a mapping is refused",
			"- a\n- b\n", []string{"config.yaml:1:", "not a mapping"}},
		{"a syntax error names its line",
			"backup:\n  keep_local: true\n bad: [\n", []string{"config.yaml:", "invalid YAML"}},
		{"every problem is reported at once",
			"home_regoin: x\nmax_agee: 1d\n", []string{"home_regoin", "max_agee"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadString(t, tt.body, nil)
			wantErr(t, err, tt.want...)
		})
	}
}

func TestLoadUnknownKeyIsAnErrorWithLine(t *testing.T) {
	_, _, err := loadString(t, "destinations:\n  - name: a\n    bukcet: x\n", nil)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	if e.Line != 3 || e.Key != "destinations[0].bukcet" || filepath.Base(e.File) != "config.yaml" {
		t.Errorf("got %+v", e)
	}
}

func TestLoadMissingFileSaysHowToFix(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.yaml")
	_, _, err := LoadEnv(p, noEnv, nil)
	wantErr(t, err, p, "not found", "--config")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v does not match fs.ErrNotExist", err)
	}
}

func TestLoadAcceptsEmptyInput(t *testing.T) {
	for _, tt := range []struct{ name, body string }{
		{"an empty file gives the defaults", ""},
		{"a file of comments gives the defaults", "# nothing yet\n"},
		{"an empty document gives the defaults", "---\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.body, nil)
			if time.Duration(c.MaxAge) != 8*24*time.Hour || c.SQLServer != nil || len(c.Destinations) != 0 {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestLoadWithoutAFileUsesDefaultsAndEnv(t *testing.T) {
	env, list := MapEnv(map[string]string{"KEYESCROW_HOME_REGION": "eu-west-1"})
	c, _, err := LoadEnv("", env, list)
	if err != nil {
		t.Fatal(err)
	}
	if c.HomeRegion != "eu-west-1" || c.Source != "" {
		t.Errorf("got %+v", c)
	}
}

func TestLoadEmptySectionIsPresent(t *testing.T) {
	c := mustLoad(t, "sqlserver:\n", nil)
	if c.SQLServer == nil {
		t.Fatal("sqlserver: with no keys should give a section with defaults")
	}
	if got := c.DSNSource().Env; got != DefaultDSNEnv {
		t.Errorf("DSN env = %q, want %q", got, DefaultDSNEnv)
	}
}

func TestValidationErrorsNameTheFileLine(t *testing.T) {
	c := mustLoad(t, "home_region: a\ndestinations:\n  - name: usb\n    type: file\n    path: keys\n", nil)
	wantErr(t, c.Validate(), "config.yaml:5:", "destinations[0].path", "absolute")
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
)

func testApp(env map[string]string) (*App, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	e, list := config.MapEnv(env)
	return &App{
		Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""),
		Env: e, EnvList: list,
		Clock:    func() time.Time { return time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC) },
		Hostname: func() (string, error) { return "host1", nil },
		Build:    BuildInfo{Version: "v9.9.9", Commit: "abc"},
	}, &out, &errb
}

func TestGlobalFlagsWorkBeforeAndAfterTheCommandAndArgumentsKeepTheirOrder(t *testing.T) {
	a, _, _ := testApp(nil)
	for _, args := range [][]string{
		{"--config", "c.yaml", "archive", "--json", "--instance", "I", "f.key"},
		{"archive", "f.key", "--config=c.yaml", "--json", "--instance=I"},
		{"--json", "archive", "--instance", "I", "--config", "c.yaml", "f.key"},
	} {
		inv, err := a.parse(args)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if inv.cmd.name != "archive" || inv.configPath != "c.yaml" || !inv.jsonOut || inv.instance != "I" || !reflect.DeepEqual(inv.args, []string{"f.key"}) {
			t.Errorf("%v parsed as %+v", args, inv)
		}
	}
	inv, err := a.parse([]string{"backup", "--set", "a=1", "--set", "b=2"})
	if err != nil || !reflect.DeepEqual(inv.sets, []string{"a=1", "b=2"}) {
		t.Fatalf("--set: %v %v", inv, err)
	}
}

func TestUnknownFlagsAndCommandsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"backup", "--nope"}, {"frobnicate"}, {"backup", "--instance", "x"}} {
		a, _, errb := testApp(nil)
		err := a.Run(context.Background(), args)
		if exitcode.Code(err) != exitcode.Usage || errb.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, exitcode.Code(err), errb)
		}
	}
}

func TestVersionJSONNamesToolVersionAndCommit(t *testing.T) {
	a, out, _ := testApp(nil)
	if err := a.Run(context.Background(), []string{"version", "--json"}); err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v["version"] != "v9.9.9" || v["commit"] != "abc" || v["tool"] != "keyescrow" {
		t.Fatalf("%s %v", out, err)
	}
}

func TestArchiveInProcessWithConfigFromTheEnvironmentAlone(t *testing.T) {
	dir := t.TempDir()
	usb := filepath.Join(dir, "usb")
	if err := os.Mkdir(usb, 0o700); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "k.key")
	if err := os.WriteFile(key, []byte("bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, out, errb := testApp(map[string]string{
		"KEYESCROW_DESTINATIONS_0_NAME": "usb",
		"KEYESCROW_DESTINATIONS_0_TYPE": "file",
		"KEYESCROW_DESTINATIONS_0_PATH": usb,
		"KEYESCROW_LOCK_FILE":           filepath.Join(dir, "lock"),
	})
	err := a.Run(context.Background(), []string{"archive", "--json", "--log-format", "json", key})
	if err != nil {
		t.Fatalf("%v\n%s", err, errb)
	}
	var rec struct {
		Status, Host, Version string
	}
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil || rec.Status != "ok" || rec.Host != "host1" || rec.Version != "v9.9.9" {
		t.Fatalf("%s %v", out, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("--log-format json wrote a line that is not JSON: %q", line)
		}
	}
}

func TestEveryValueFlagBeforeTheCommandIsSkippedWithItsValue(t *testing.T) {
	a, _, _ := testApp(nil)
	vf := a.valueFlags()
	for _, name := range []string{"config", "set", "out", "host", "identity", "password-out", "version-id"} {
		if !vf[name] {
			t.Errorf("--%s takes a value but is not known as one", name)
		}
	}
	for _, name := range []string{"json", "apply", "force", "all-hosts", "no-receipts"} {
		if vf[name] {
			t.Errorf("--%s is a switch but is taken as a value flag", name)
		}
	}
	for _, c := range a.commands() {
		(&invocation{}).flagSet(c.name).VisitAll(func(f *flag.Flag) {
			if !vf[f.Name] {
				return
			}
			name, _, err := splitCommand([]string{"--" + f.Name, "value", c.name}, vf)
			if err != nil || name != c.name {
				t.Errorf("--%s value %s: command %q (%v)", f.Name, c.name, name, err)
			}
		})
	}
}

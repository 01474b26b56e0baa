//go:build unix

package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
)

// hostInv is an invocation with a loaded configuration whose state folder
// is dir, logging into the returned buffer.
func hostInv(t *testing.T, dir, cfgPath, host string) (*invocation, *bytes.Buffer) {
	t.Helper()
	a, _, errb := testApp(map[string]string{"STATE_DIRECTORY": dir})
	inv := &invocation{app: a, logLevel: "info", logFormat: "text"}
	var err error
	if inv.log, err = newLogger(errb, nil, "info", "text"); err != nil {
		t.Fatal(err)
	}
	inv.cfg = config.Default()
	inv.cfg.Source, inv.cfg.Host = cfgPath, host
	return inv, errb
}

func TestTheHostIdentityComesFromFlagThenConfigThenRecordThenOS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	cfgPath := filepath.Join(t.TempDir(), "keyescrow.yaml")
	inv, _ := hostInv(t, dir, cfgPath, "")
	inv.recordIdentity(t.Context(), inv.cfg, identityRecord{Host: "SQLFCI01", Instance: "INST1", MachineName: "SQLFCI01", RecordedAt: time.Now()})

	cases := []struct {
		name, flag, cfgHost, cfgPath string
		want, source, instance       string
	}{
		{"--host wins", "FLAGHOST", "CFGHOST", cfgPath, "FLAGHOST", hostFromFlag, ""},
		{"then the host key", "", "CFGHOST", cfgPath, "CFGHOST", hostFromConfig, ""},
		{"then the record of this configuration", "", "", cfgPath, "SQLFCI01", hostFromRecord, "INST1"},
		{"another configuration has no record: the OS host name", "", "", cfgPath + ".other", "host1", hostFromOS, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inv, logs := hostInv(t, dir, tc.cfgPath, tc.cfgHost)
			inv.host = tc.flag
			id, err := inv.hostIdentity()
			if err != nil {
				t.Fatal(err)
			}
			if id.Host != tc.want || !strings.HasPrefix(id.Source, tc.source) || inv.defaultInstance(id) != tc.instance {
				t.Errorf("got %+v (instance %q), want %s from %s (instance %q)", id, inv.defaultInstance(id), tc.want, tc.source, tc.instance)
			}
			if !strings.Contains(logs.String(), "host identity") || !strings.Contains(logs.String(), tc.source) {
				t.Errorf("no log line names the source:\n%s", logs)
			}
		})
	}
}

func TestAnUntrustworthyRecordIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	cfgPath := filepath.Join(t.TempDir(), "keyescrow.yaml")
	inv, _ := hostInv(t, dir, cfgPath, "")
	inv.recordIdentity(t.Context(), inv.cfg, identityRecord{Host: "H", RecordedAt: time.Now()})
	name, _ := recordName(inv.cfg)
	rec := filepath.Join(dir, name)
	for _, tc := range []struct {
		name  string
		plant func()
		want  string
	}{
		{"damaged", func() { _ = os.WriteFile(rec, []byte("{"), 0o600) }, "is damaged or belongs to another configuration"},
		{"another configuration's", func() {
			_ = os.WriteFile(rec, []byte(`{"config":"/etc/other.yaml","host":"OTHER"}`), 0o600)
		}, "is damaged or belongs to another configuration"},
		{"a symbolic link", func() {
			other := filepath.Join(t.TempDir(), "planted.json")
			_ = os.WriteFile(other, []byte(`{"config":"`+cfgPath+`","host":"OTHER"}`), 0o600)
			_ = os.Remove(rec)
			_ = os.Symlink(other, rec)
		}, "is a symbolic link"},
		{"in a folder others can write", func() { _ = os.Chmod(dir, 0o777) }, "can be written by group or others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.plant()
			inv, _ := hostInv(t, dir, cfgPath, "")
			_, err := inv.hostIdentity()
			if exitcode.Code(err) != exitcode.Usage || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (exit %d), want exit 2 saying %q", err, exitcode.Code(err), tc.want)
			}
			if errors.Is(err, os.ErrNotExist) {
				t.Errorf("reported as missing: %v", err)
			}
		})
	}
}

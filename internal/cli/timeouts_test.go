package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Every command that loads a configuration tells the RunLimit hook (main's
// watchdog) how long it may still run: timeouts.run, from the file, the
// environment or --set.
func TestCommandsArmTheWatchdogWithTimeoutsRun(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	body := "home_region: eu-west-1\ndestinations:\n  - name: usb\n    type: file\n    path: " + dir + "\nlock_file: " + filepath.Join(dir, "lock") + "\ntimeouts:\n  run: 7m\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want time.Duration
	}{
		{"from the file", nil, []string{"list", "--config", cfg}, 7 * time.Minute},
		{"from the environment", map[string]string{"KEYESCROW_TIMEOUTS_RUN": "3m"}, []string{"verify", "--config", cfg}, 3 * time.Minute},
		{"from --set", nil, []string{"check", "--config", cfg, "--set", "timeouts.run=150s"}, 150 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, _, _ := testApp(tt.env)
			var got time.Duration
			a.RunLimit = func(d time.Duration) { got = d }
			_ = a.Run(context.Background(), tt.args)
			if got <= tt.want-10*time.Second || got > tt.want {
				t.Fatalf("RunLimit got %v, want just under %v", got, tt.want)
			}
		})
	}
}

package config

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLoadEnv is what every command pays before it starts: the file,
// the environment overrides and the unknown-variable check.
func BenchmarkLoadEnv(b *testing.B) {
	dir := b.TempDir()
	p := filepath.Join(dir, "keyescrow.yaml")
	cfg := "home_region: eu-west-1\ndestinations:\n  - name: usb\n    type: file\n    path: /mnt/usb\n  - name: s3\n    type: s3\n    bucket: b\n    region: us-east-2\n    retention: {mode: COMPLIANCE, days: 30}\n"
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	env, list := MapEnv(map[string]string{"PATH": "/usr/bin", "KEYESCROW_BACKUP_PASSWORD": "x", "KEYESCROW_METRICS_FILE": "/tmp/m.prom"})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := LoadEnv(p, env, list); err != nil {
			b.Fatal(err)
		}
	}
}

// Package perf holds the benchmark's helpers (limit, countproxy, benchrun)
// and an in-process benchmark of `keyescrow archive` for profiling:
//
//	go test -run '^$' -bench Archive -cpuprofile cpu.out ./internal/perf/
//	go tool pprof -top cpu.out
package perf

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyescrow/keyescrow/internal/cli"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// BenchmarkArchive runs `keyescrow archive` in-process against versitygw
// over HTTPS (one Object Lock bucket), a new key each iteration.
func BenchmarkArchive(b *testing.B) {
	for _, k := range []string{"AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN"} {
		b.Setenv(k, "")
		os.Unsetenv(k)
	}
	srv := s3srv.Start(b, s3srv.VersityGW, "eu-central-1")
	bucket := srv.NewBucket(b, s3srv.Bucket{ObjectLock: true})
	dir := b.TempDir()
	b.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	b.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	b.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	b.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	cfg := filepath.Join(dir, "keyescrow.yaml")
	yaml := fmt.Sprintf(`home_region: eu-west-1
lock_file: %s/lock
destinations:
  - {name: s3, type: s3, bucket: %s, region: %s, endpoint: %s, path_style: true, ca_file: %s, retention: {mode: COMPLIANCE, days: 1}}
`, dir, bucket, srv.Region, srv.Endpoint, srv.TLS.CA)
	key := filepath.Join(dir, "smk.key")
	for path, data := range map[string]string{cfg: yaml, key: string(make([]byte, 150))} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	app := cli.New(cli.BuildInfo{Version: "bench"})
	app.Stdout, app.Stderr = io.Discard, io.Discard
	b.ResetTimer()
	for range b.N {
		if err := app.Run(context.Background(), []string{"archive", "--config", cfg, "--host", "BENCH", key}); err != nil {
			b.Fatal(err)
		}
	}
}

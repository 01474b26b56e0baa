// Command seed fills a bucket for the benchmark's scale part by running the
// real `keyescrow archive` pipeline (preflight, create-only write, proof,
// receipt) in-process, several at a time: COUNT copies under each of HOSTS
// host names. Each worker has its own lock file, as separate hosts would.
//
//	seed -config keyescrow.yaml -hosts 1 -count 2000 -host-prefix BIG -workers 16 FILE
//	seed -config fleet.yaml -hosts 1000 -count 1 -host-prefix fleet -workers 16 FILE
//
// The destination's keys come from the environment, as for keyescrow.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyescrow/keyescrow/internal/cli"
)

func main() {
	cfg := flag.String("config", "", "keyescrow configuration")
	hosts := flag.Int("hosts", 1, "number of host names")
	count := flag.Int("count", 1, "copies per host")
	prefix := flag.String("host-prefix", "HOST", "host names are PREFIX, or PREFIX-0001… with -hosts > 1")
	workers := flag.Int("workers", 16, "archives at the same time")
	lockDir := flag.String("lock-dir", os.TempDir(), "folder for the workers' lock files")
	flag.Parse()
	if *cfg == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: seed -config FILE [-hosts N] [-count N] [-host-prefix P] [-workers N] KEYFILE")
		os.Exit(2)
	}
	start := time.Now()
	n, err := seed(context.Background(), *cfg, flag.Arg(0), *prefix, *lockDir, *hosts, *count, *workers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
	fmt.Printf("seeded %d copies (%d hosts × %d) in %.1f s\n", n, *hosts, *count, time.Since(start).Seconds())
}

func hostName(prefix string, hosts, i int) string {
	if hosts == 1 {
		return prefix
	}
	return fmt.Sprintf("%s-%04d", prefix, i+1)
}

func seed(ctx context.Context, cfg, file, prefix, lockDir string, hosts, count, workers int) (int64, error) {
	jobs := make(chan string)
	var done atomic.Int64
	var firstErr error
	var once sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			app := cli.New(cli.BuildInfo{Version: "seed"})
			app.Stdout, app.Stderr = io.Discard, io.Discard
			lock := "lock_file=" + filepath.Join(lockDir, fmt.Sprintf("seed-%d.lock", w))
			for host := range jobs {
				err := app.Run(ctx, []string{"archive", "--config", cfg, "--set", lock, "--host", host, "--instance", "BENCH", file})
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("archive --host %s: %w", host, err); cancel() })
					continue
				}
				done.Add(1)
			}
		})
	}
feed:
	for c := 0; c < count; c++ {
		for h := 0; h < hosts; h++ {
			select {
			case jobs <- hostName(prefix, hosts, h):
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	return done.Load(), firstErr
}

package escrow

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage/s3store"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// BenchmarkReadAtScale measures list and verify over many archived copies
// in one versitygw bucket (HTTPS, Object Lock), through a proxy that
// counts the requests: one host with 500 and 2,000 copies (list reads
// every receipt; verify lists, then re-reads the newest 3), and a fleet of
// 1,000 hosts (verify --all-hosts lists only). It reports the requests,
// list pages and the peak live heap (runtime/metrics /gc/heap/live:bytes,
// sampled every 2 ms) of one operation. Run it with
//
//	go test -run '^$' -bench ReadAtScale -benchtime 1x ./internal/escrow/
//
// Seeding runs the real archive pipeline (write, proof, receipt) for every
// copy, 16 at a time, once per size.
func BenchmarkReadAtScale(b *testing.B) {
	srv := s3srv.Start(b, s3srv.VersityGW, "us-east-2")
	bucket := srv.NewBucket(b, s3srv.Bucket{ObjectLock: true, DefaultMode: "COMPLIANCE", DefaultDays: 1})
	proxy := s3srv.NewProxy(b, srv)
	proxy.Light()
	store, err := s3store.New(context.Background(), s3store.Options{
		Bucket: bucket, Region: srv.Region, Endpoint: proxy.Endpoint, PathStyle: true, CAFile: srv.TLS.CA,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	if err != nil {
		b.Fatal(err)
	}
	runner := func(prefix string) *Runner {
		d := config.Destination{Name: "offsite", Type: config.TypeS3, Bucket: bucket, Region: srv.Region, Prefix: prefix,
			Retention: &config.Retention{Mode: "COMPLIANCE", Days: 1}}
		return &Runner{
			Config: &config.Config{HomeRegion: "eu-west-1", MaxAge: config.Duration(24 * time.Hour), Verify: config.Verify{Copies: 3},
				Destinations: []config.Destination{d}},
			Destinations: []Destination{{Config: d, Backend: store}},
			Log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
			Clock:        time.Now, Version: "bench", RunID: NewRunID(),
			Lock: func() (func(), error) { return func() {}, nil },
		}
	}
	measure := func(b *testing.B, what string, op func() error) {
		b.Helper()
		var peak atomic.Uint64
		done := make(chan struct{})
		go func() {
			// The live heap as of the last collection: what the operation
			// holds, not the garbage a collection has yet to reclaim.
			sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
			for {
				metrics.Read(sample)
				if v := sample[0].Value.Uint64(); v > peak.Load() {
					peak.Store(v)
				}
				select {
				case <-done:
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		}()
		runtime.GC()
		proxy.Reset()
		b.ResetTimer()
		for range b.N {
			if err := op(); err != nil {
				b.Fatalf("%s: %v", what, err)
			}
		}
		b.StopTimer()
		close(done)
		var lists int
		for _, r := range proxy.Requests() {
			if r.Action == "s3:ListBucketVersions" {
				lists++
			}
		}
		b.ReportMetric(float64(len(proxy.Requests()))/float64(b.N), "requests/op")
		b.ReportMetric(float64(lists)/float64(b.N), "pages/op")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-live-heap-MiB")
	}

	for _, n := range []int{500, 2000} {
		prefix := fmt.Sprintf("scale%d/", n)
		seed(b, runner(prefix), n, func(int) string { return "SQLHOST01" })
		r := runner(prefix)
		b.Run(fmt.Sprintf("list/copies=%d", n), func(b *testing.B) {
			measure(b, "list", func() error {
				count := 0
				_, err := r.List(context.Background(), ListOptions{}, func(c Copy) error {
					if c.SHA256 == "" {
						return fmt.Errorf("copy %s without its receipt's SHA-256: %s", c.Key, c.Note)
					}
					count++
					return nil
				})
				if err == nil && count != n {
					err = fmt.Errorf("listed %d copies, want %d", count, n)
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("verify/copies=%d", n), func(b *testing.B) {
			measure(b, "verify", func() error {
				a, err := r.Verify(context.Background(), VerifyOptions{Filter: Filter{Host: "SQLHOST01"}, Copies: 3})
				if err == nil && a.Destinations[0].Groups[0].Copies != n {
					err = fmt.Errorf("verify saw %d copies, want %d", a.Destinations[0].Groups[0].Copies, n)
				}
				return err
			})
		})
	}

	const hosts = 1000
	seed(b, runner("fleet/"), hosts, func(i int) string { return fmt.Sprintf("SQLHOST%04d", i) })
	r := runner("fleet/")
	b.Run(fmt.Sprintf("verify-all-hosts/hosts=%d", hosts), func(b *testing.B) {
		measure(b, "verify --all-hosts", func() error {
			a, err := r.Verify(context.Background(), VerifyOptions{AllHosts: true})
			if err == nil && len(a.Destinations[0].Groups) != hosts {
				err = fmt.Errorf("verify saw %d hosts, want %d", len(a.Destinations[0].Groups), hosts)
			}
			return err
		})
	})
}

// seed archives n copies through the pipeline (preflight once, then the
// write, its proof and the receipt for each), host(i) naming the host.
func seed(b *testing.B, r *Runner, n int, host func(int) string) {
	b.Helper()
	start := time.Now()
	ctx := context.Background()
	targets, err := r.preflight(ctx, r.newReceipt())
	if err != nil || len(targets) != 1 {
		b.Fatalf("preflight: %v", err)
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 16 {
		wg.Go(func() {
			for i := range jobs {
				data := make([]byte, 150)
				_, _ = rand.Read(data)
				rec := r.newReceipt()
				rec.RunID = NewRunID()
				rec.Host, rec.Instance = host(i), "MSSQLSERVER"
				name := archiveFileName("smk.key", time.Now(), rec.RunID)
				rec.File = &receipt.File{Name: name}
				ts := []target{targets[0]}
				key := func(prefix string) string { return objectKey(prefix, rec.Host, rec.Instance, rec.Kind, name) }
				if err := r.archive(ctx, rec, newKeyFile("", data), ts, key); err != nil {
					failed.Store(err)
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("seeding: %v", err)
	}
	b.Logf("seeded %d copies in %v", n, time.Since(start).Round(time.Millisecond))
}

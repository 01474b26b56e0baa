// Command s3bucket creates a bucket on a local test server started by
// deploy/dev/s3-servers.sh: versioned, with Object Lock and a COMPLIANCE
// default retention, in the server's region. The demo uses it. The root keys
// come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the server's
// credentials.env), never from the command line.
//
//	s3bucket -endpoint https://127.0.0.1:PORT -region eu-central-1 -ca DIR/certs/ca.pem -bucket NAME
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
	"github.com/keyescrow/keyescrow/internal/testtls"
)

func main() {
	endpoint := flag.String("endpoint", "", "the server's https://127.0.0.1:PORT")
	region := flag.String("region", "eu-central-1", "the server's region")
	ca := flag.String("ca", "", "the server's ca.pem")
	bucket := flag.String("bucket", "", "the bucket to create")
	days := flag.Int("days", 1, "the bucket's default COMPLIANCE retention in days")
	flag.Parse()
	access, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if *endpoint == "" || *ca == "" || *bucket == "" || access == "" || secret == "" {
		fmt.Fprintln(os.Stderr, "usage: AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… s3bucket -endpoint URL -region R -ca CA.pem -bucket NAME")
		os.Exit(2)
	}
	srv := &s3srv.Server{Endpoint: *endpoint, Region: *region, AccessKey: access, SecretKey: secret, TLS: testtls.Files{CA: *ca}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.CreateBucket(ctx, *bucket, s3srv.Bucket{ObjectLock: true, DefaultMode: "COMPLIANCE", DefaultDays: int32(*days)}); err != nil {
		fmt.Fprintln(os.Stderr, "s3bucket:", err)
		os.Exit(1)
	}
	fmt.Printf("bucket %s: versioned, Object Lock, COMPLIANCE %dd default, region %s\n", *bucket, *days, *region)
}

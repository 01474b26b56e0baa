package main

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// The limit program's three requests succeed against versitygw over HTTPS
// with an Object Lock bucket, and its create-only PutObject refuses a
// second write of the same key.
func TestLimitStoresCreateOnlyAndProvesTheCopy(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", "")
	srv := s3srv.Start(t, s3srv.VersityGW, "eu-central-1")
	bucket := srv.NewBucket(t, s3srv.Bucket{ObjectLock: true})
	c, err := newClient(srv.Endpoint, srv.Region, srv.TLS.CA, credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data := []byte("a stand-in for a 150-byte service master key file")
	v, err := putAndProve(ctx, c, bucket, "k/1.key", data, time.Now().Add(time.Hour))
	if err != nil || v == "" {
		t.Fatalf("putAndProve = %q, %v; want a version id", v, err)
	}
	if _, err := putAndProve(ctx, c, bucket, "k/1.key", data, time.Now().Add(time.Hour)); err == nil {
		t.Fatal("a second PutObject of the same key succeeded; want If-None-Match to refuse it")
	}
}

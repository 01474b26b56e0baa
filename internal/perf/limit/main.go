// Command limit is the benchmark's reference point: the least a program
// built on aws-sdk-go-v2 must do to store a key file create-only under
// Object Lock and prove the copy. It sends exactly three requests:
//
//  1. PutObject with If-None-Match: *, x-amz-checksum-sha256 (computed
//     here, sent as a header), COMPLIANCE lock and retain-until date;
//  2. HeadObject of the version written, with checksum mode: the stored
//     SHA-256 must equal ours;
//  3. GetObject of that version: the bytes must re-hash the same.
//
// No configuration files, no credential chain, no preflight: the keys come
// from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, everything else from
// flags. keyescrow is measured against it by deploy/dev/bench.sh.
//
//	limit -endpoint https://127.0.0.1:PORT -region R -ca ca.pem -bucket B -key K FILE
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func main() {
	endpoint := flag.String("endpoint", "", "S3 endpoint URL")
	region := flag.String("region", "eu-central-1", "region to sign for")
	ca := flag.String("ca", "", "PEM file of the CA to trust (besides nothing else)")
	bucket := flag.String("bucket", "", "bucket with Object Lock")
	key := flag.String("key", "", "object key (new each run)")
	days := flag.Int("days", 1, "COMPLIANCE retention in days")
	flag.Parse()
	if *endpoint == "" || *bucket == "" || *key == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: limit -endpoint URL -region R -ca CA.pem -bucket B -key K FILE")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := run(ctx, *endpoint, *region, *ca, *bucket, *key, flag.Arg(0), time.Duration(*days)*24*time.Hour)
	if err != nil {
		fmt.Fprintln(os.Stderr, "limit:", err)
		os.Exit(1)
	}
	fmt.Println(v)
}

func run(ctx context.Context, endpoint, region, ca, bucket, key, file string, keep time.Duration) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	client, err := newClient(endpoint, region, ca, credentials.NewStaticCredentialsProvider(
		os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")))
	if err != nil {
		return "", err
	}
	return putAndProve(ctx, client, bucket, key, data, time.Now().Add(keep))
}

func newClient(endpoint, region, ca string, creds aws.CredentialsProvider) (*s3.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", ca)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return s3.New(s3.Options{
		Region:                     region,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		HTTPClient:                 &http.Client{Transport: tr},
		Credentials:                creds,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		DisableLogOutputChecksumValidationSkipped: true,
	}), nil
}

// putAndProve is the three requests; it returns the version id proven.
func putAndProve(ctx context.Context, c *s3.Client, bucket, key string, data []byte, until time.Time) (string, error) {
	sum := sha256.Sum256(data)
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	put, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket:                    aws.String(bucket),
		Key:                       aws.String(key),
		Body:                      bytes.NewReader(data),
		ContentLength:             aws.Int64(int64(len(data))),
		ChecksumAlgorithm:         "SHA256",
		ChecksumSHA256:            aws.String(b64),
		IfNoneMatch:               aws.String("*"),
		ObjectLockMode:            "COMPLIANCE",
		ObjectLockRetainUntilDate: aws.Time(until.UTC()),
	})
	if err != nil {
		return "", fmt.Errorf("PutObject: %w", err)
	}
	version := aws.ToString(put.VersionId)
	if version == "" {
		return "", fmt.Errorf("PutObject: no version id (bucket not versioned?)")
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(version), ChecksumMode: "ENABLED",
	})
	if err != nil {
		return "", fmt.Errorf("HeadObject: %w", err)
	}
	if got := aws.ToString(head.ChecksumSHA256); got != b64 {
		return "", fmt.Errorf("HeadObject: stored SHA-256 %q, want %q", got, b64)
	}
	if head.ObjectLockMode != "COMPLIANCE" || head.ObjectLockRetainUntilDate == nil {
		return "", fmt.Errorf("HeadObject: no COMPLIANCE lock (mode %q)", head.ObjectLockMode)
	}
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(version)})
	if err != nil {
		return "", fmt.Errorf("GetObject: %w", err)
	}
	defer get.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, get.Body); err != nil {
		return "", fmt.Errorf("GetObject: %w", err)
	}
	if [sha256.Size]byte(h.Sum(nil)) != sum {
		return "", fmt.Errorf("GetObject: the bytes read back do not hash to the SHA-256 written")
	}
	return version, nil
}

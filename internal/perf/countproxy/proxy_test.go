package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

func TestKindNamesTheS3Operation(t *testing.T) {
	for line, want := range map[string]string{
		"HEAD /b":                             "HEAD bucket",
		"GET /b?versioning=":                  "GET bucket?versioning",
		"GET /b?object-lock":                  "GET bucket?object-lock",
		"PUT /b/h/i/service-master-key/x.key": "PUT object",
		"PUT /b/h/i/service-master-key/x.key.receipt.json": "PUT receipt",
		"HEAD /b/k?versionId=1":                            "HEAD object",
		"GET /b?list-type=2&prefix=a":                      "GET bucket?list-type",
	} {
		if got := Kind(line); got != want {
			t.Errorf("Kind(%q) = %q, want %q", line, got, want)
		}
	}
}

// Through the proxy, versitygw's requests and connections are counted and
// the client sees the server's answers unchanged.
func TestProxyCountsRequestsAndConnections(t *testing.T) {
	srv := s3srv.Start(t, s3srv.VersityGW, "eu-central-1")
	bucket := srv.NewBucket(t, s3srv.Bucket{Versioning: true})
	pair, err := tls.LoadX509KeyPair(srv.TLS.Cert, srv.TLS.Key)
	if err != nil {
		t.Fatal(err)
	}
	upstream := srv.Endpoint[len("https://"):]
	upTLS := &tls.Config{RootCAs: srv.CertPool(), ServerName: "127.0.0.1"}
	p := &Proxy{
		TLS:  &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}},
		Dial: func() (net.Conn, error) { return tls.Dial("tcp", upstream, upTLS) },
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() { _ = p.Serve(l) }()
	c := srv.Admin("https://" + l.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p.Take()
	data := []byte("counted")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("a.key"), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("a.key")}); err != nil {
		t.Fatal(err)
	}
	got := p.Take()
	if got.Requests != 2 || got.ByKind["PUT object"] != 1 || got.ByKind["HEAD object"] != 1 {
		t.Fatalf("counts = %+v; want one PUT object and one HEAD object", got)
	}
	// One request at a time: a peak of 1, or 2 when the server closed the
	// first connection and the proxy saw that close only after the client
	// had opened the second (a race on a loaded machine, not concurrency).
	if got.Peak < 1 || int64(got.Peak) > got.Connections {
		t.Fatalf("peak = %d with %d connections; want 1 (one request at a time)", got.Peak, got.Connections)
	}
	if got.Connections < 1 || got.Connections > 2 {
		t.Fatalf("connections = %d; want 1 (kept alive) or 2 (closed after each response)", got.Connections)
	}
}

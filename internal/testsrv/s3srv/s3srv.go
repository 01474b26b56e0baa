// Package s3srv starts the real S3-compatible servers the tests run against
// — versitygw and MinIO, installed into .tools/bin by deploy/dev/s3-servers.sh
// — on free 127.0.0.1 ports over HTTPS with a throw-away certificate, in a
// chosen region; creates buckets with or without versioning and Object Lock
// through an admin client; and stops each server by its PID when the test
// ends. A server that is not installed is reported with testutil.Skip,
// which fails under KEYESCROW_TEST_DISALLOW_SKIP=1.
package s3srv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/keyescrow/keyescrow/internal/testsrv"
	"github.com/keyescrow/keyescrow/internal/testtls"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

// Kind names a server.
type Kind string

// The servers.
const (
	VersityGW Kind = "versitygw"
	MinIO     Kind = "minio"
)

// Kinds are every server the S3 tests run against.
var Kinds = []Kind{VersityGW, MinIO}

// Server is one running server.
type Server struct {
	Kind Kind
	// Endpoint is https://127.0.0.1:PORT.
	Endpoint string
	Region   string
	// AccessKey and SecretKey are the root credentials (random per start).
	AccessKey, SecretKey string
	// TLS is the server's throw-away certificate; TLS.CA is its ca_file.
	TLS testtls.Files
	// PID of the server process.
	PID int

	// DataDir is the server's data folder (tests corrupt stored bytes in
	// it behind the server's back).
	DataDir string

	cmd     *exec.Cmd
	dir     string
	logPath string
	done    chan struct{}
}

// ToolsBin is the folder the install script puts the servers in: the
// repository's .tools/bin, found from the working directory, or
// $KEYESCROW_TOOLS_BIN.
func ToolsBin() string {
	if d := os.Getenv("KEYESCROW_TOOLS_BIN"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return ".tools/bin"
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".tools", "bin")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ".tools/bin"
		}
		dir = parent
	}
}

// Binary returns the path of kind's executable, "" when not installed.
func Binary(kind Kind) string {
	name := string(kind)
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	p := filepath.Join(ToolsBin(), name)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return ""
	}
	return p
}

// Start starts kind in region and stops it (by PID) when t ends.
func Start(t testing.TB, kind Kind, region string) *Server {
	t.Helper()
	bin := Binary(kind)
	if bin == "" {
		testutil.Skip(t, "%s is not installed in %s: run make tools-s3 (deploy/dev/s3-servers.sh install)", kind, ToolsBin())
	}
	dir, err := os.MkdirTemp("", "keyescrow-"+string(kind)+"-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Kind: kind, Region: region, dir: dir, done: make(chan struct{}),
		AccessKey: "ke" + testutil.RandHex(8), SecretKey: testutil.RandHex(20), logPath: filepath.Join(dir, "server.log")}
	t.Cleanup(func() {
		s.Stop()
		_ = os.RemoveAll(dir)
	})
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	if s.TLS, err = testtls.Write(certs); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken between probe and bind
		port, err := testsrv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if lastErr = s.start(bin, port); lastErr == nil {
			return s
		}
		s.Stop()
	}
	t.Fatalf("starting %s: %v\n%s", kind, lastErr, s.logTail())
	return nil
}

func (s *Server) start(bin string, port int) error {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s.Endpoint = "https://" + addr
	data := filepath.Join(s.dir, fmt.Sprintf("data-%d", port))
	s.DataDir = data
	var args, env []string
	switch s.Kind {
	case VersityGW:
		for _, d := range []string{filepath.Join(data, "root"), filepath.Join(data, "versions")} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
		}
		args = []string{"--port", addr, "--region", s.Region, "--cert", s.TLS.Cert, "--key", s.TLS.Key,
			"posix", "--versioning-dir", filepath.Join(data, "versions"), filepath.Join(data, "root")}
		env = []string{"ROOT_ACCESS_KEY=" + s.AccessKey, "ROOT_SECRET_KEY=" + s.SecretKey}
	case MinIO:
		certs := filepath.Join(s.dir, "minio-certs")
		if err := os.MkdirAll(certs, 0o700); err != nil {
			return err
		}
		for src, dst := range map[string]string{s.TLS.Cert: "public.crt", s.TLS.Key: "private.key"} {
			b, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(certs, dst), b, 0o600); err != nil {
				return err
			}
		}
		args = []string{"server", data, "--address", addr, "--certs-dir", certs, "--quiet"}
		env = []string{"MINIO_ROOT_USER=" + s.AccessKey, "MINIO_ROOT_PASSWORD=" + s.SecretKey,
			"MINIO_SITE_REGION=" + s.Region, "MINIO_BROWSER=off", "MINIO_UPDATE=off"}
	default:
		return fmt.Errorf("unknown server kind %q", s.Kind)
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	// Nothing of the machine's environment (AWS_*, MINIO_*) reaches it.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.dir, "TMPDIR=" + s.dir}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	s.cmd, s.PID = cmd, cmd.Process.Pid
	s.done = make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	return s.waitReady(60 * time.Second)
}

// waitReady polls until the server answers over HTTPS.
func (s *Server) waitReady(limit time.Duration) error {
	client := s.HTTPClient()
	url := s.Endpoint + "/"
	if s.Kind == MinIO {
		url = s.Endpoint + "/minio/health/ready"
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("the server exited")
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			// MinIO says ready before its S3 API is (503
			// XMinioServerNotInitialized): ready means ListBuckets answers.
			if (s.Kind != MinIO || resp.StatusCode == http.StatusOK) && s.listBuckets() == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v", limit)
}

func (s *Server) listBuckets() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.Admin("").ListBuckets(ctx, &s3.ListBucketsInput{})
	return err
}

// Stop ends the server by its PID (SIGTERM, then kill) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = s.cmd.Process.Kill()
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// CertPool trusts the server's certificate only.
func (s *Server) CertPool() *x509.CertPool {
	pem, err := os.ReadFile(s.TLS.CA)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}

// HTTPClient trusts the server's certificate.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12},
	}}
}

// Admin is an S3 client with the root credentials, for arranging buckets
// and reaching behind the agent's back. endpoint "" means the server's.
func (s *Server) Admin(endpoint string) *s3.Client {
	if endpoint == "" {
		endpoint = s.Endpoint
	}
	return s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:                 s.HTTPClient(),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// Bucket says how to create a bucket.
type Bucket struct {
	Versioning bool
	ObjectLock bool // implies versioning
	// DefaultMode and DefaultDays set a default retention (ObjectLock only).
	DefaultMode string
	DefaultDays int32
}

// NewBucket creates a bucket with a unique name and returns the name.
func (s *Server) NewBucket(t testing.TB, b Bucket) string {
	t.Helper()
	name := "ke-" + testutil.RandHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.CreateBucket(ctx, name, b); err != nil {
		t.Fatalf("%s: creating bucket %s %+v: %v", s.Kind, name, b, err)
	}
	return name
}

// CreateBucket creates name as b says.
func (s *Server) CreateBucket(ctx context.Context, name string, b Bucket) error {
	admin := s.Admin("")
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if s.Region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(s.Region)}
	}
	if b.ObjectLock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := admin.CreateBucket(ctx, in); err != nil {
		return fmt.Errorf("CreateBucket: %w", err)
	}
	if b.Versioning || b.ObjectLock {
		if _, err := admin.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
			return fmt.Errorf("PutBucketVersioning: %w", err)
		}
	}
	if b.ObjectLock && b.DefaultMode != "" {
		if _, err := admin.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: aws.String(name),
			ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled,
				Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionMode(strings.ToUpper(b.DefaultMode)), Days: aws.Int32(b.DefaultDays)}}}}); err != nil {
			return fmt.Errorf("PutObjectLockConfiguration: %w", err)
		}
	}
	return nil
}

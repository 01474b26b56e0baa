package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// s3Region is where the test servers live; s3Home is this "host's" region.
const (
	s3Region = "eu-central-1"
	s3Home   = "eu-west-1"
)

// s3Env is one test's world with an S3 destination on a real server,
// reached through a recording (and, when told, tampering) proxy.
type s3Env struct {
	*env
	srv    *s3srv.Server
	proxy  *s3srv.Proxy
	bucket string
}

type s3Dest struct {
	bucket, region, endpoint, home string
	mode                           string
	days                           int
	extra                          string // more destination keys
	waive                          []string
}

func newS3Env(t *testing.T, srv *s3srv.Server, b s3srv.Bucket) *s3Env {
	t.Helper()
	e := &s3Env{env: newEnv(t, mssqltest.Config{}), srv: srv, proxy: s3srv.NewProxy(t, srv), bucket: srv.NewBucket(t, b)}
	e.vars["AWS_ACCESS_KEY_ID"] = srv.AccessKey
	e.vars["AWS_SECRET_ACCESS_KEY"] = srv.SecretKey
	e.secrets = append(e.secrets, srv.SecretKey)
	e.writeS3(s3Dest{})
	return e
}

// writeS3 writes a config with one s3 destination; zero fields take the
// environment's defaults.
func (e *s3Env) writeS3(d s3Dest) {
	e.t.Helper()
	def := func(v *string, x string) {
		if *v == "" {
			*v = x
		}
	}
	def(&d.bucket, e.bucket)
	def(&d.region, s3Region)
	def(&d.endpoint, e.proxy.Endpoint)
	def(&d.home, s3Home)
	def(&d.mode, "COMPLIANCE")
	if d.days == 0 {
		d.days = 1
	}
	waive := "[]"
	if len(d.waive) > 0 {
		waive = "[" + strings.Join(d.waive, ", ") + "]"
	}
	cfg := fmt.Sprintf(`sqlserver:
  dsn_env: KEYESCROW_SQLSERVER_DSN
backup:
  server_directory: %q
  password_env: KEYESCROW_BACKUP_PASSWORD
home_region: %s
destinations:
  - name: offsite-s3
    type: s3
    bucket: %s
    region: %s
    prefix: sqlkeys/
    endpoint: %s
    path_style: true
    ca_file: %q
    retention: {mode: %s, days: %d}
%swaive: %s
lock_file: %q
`, e.keyDir, d.home, d.bucket, d.region, d.endpoint, e.srv.TLS.CA, d.mode, d.days, d.extra, waive, e.lockF)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// versions lists every version and delete marker in the bucket.
func (e *s3Env) versions() []string {
	e.t.Helper()
	out, err := e.srv.Admin("").ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(e.bucket)})
	if err != nil {
		e.t.Fatal(err)
	}
	var keys []string
	for _, v := range out.Versions {
		keys = append(keys, aws.ToString(v.Key)+"@"+aws.ToString(v.VersionId))
	}
	for _, m := range out.DeleteMarkers {
		keys = append(keys, aws.ToString(m.Key)+"@marker")
	}
	return keys
}

func lockBucket() s3srv.Bucket {
	return s3srv.Bucket{ObjectLock: true, DefaultMode: "COMPLIANCE", DefaultDays: 1}
}

// TestS3BackupToEachServer is the "done when": keyescrow backup
// against versitygw and MinIO (HTTPS, region set, Object Lock bucket) exits
// 0 with a receipt showing version id, retention mode and until, SHA-256
// local == remote and read_back; the copy is locked for real; the run makes
// exactly 4 preflight requests, 3 for the write and its proof, and 1 for
// the receipt.
func TestS3BackupToEachServer(t *testing.T) {
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3srv.Start(t, kind, s3Region)
			e := newS3Env(t, srv, lockBucket())
			start := time.Now()
			r := e.run("backup", "--config", e.cfgPath, "--json")
			took := time.Since(start)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			rec := parseReceipt(t, r.stdout)
			d := rec.Destinations[0]
			wantPrefix := "s3://" + e.bucket + "/sqlkeys/SQLHOST01/INST1/service-master-key/SQLHOST01$INST1-servicemasterkey-"
			minUntil := start.Add(24 * time.Hour).Add(-time.Second)
			switch {
			case rec.Status != "ok" || d.Status != "verified" || d.Type != "s3":
				t.Fatalf("receipt: %s", r.stdout)
			case !strings.HasPrefix(d.Location, wantPrefix) || !strings.HasSuffix(d.Location, ".key"):
				t.Errorf("location %q, want %s…", d.Location, wantPrefix)
			case d.VersionID == "" || d.Region != s3Region:
				t.Errorf("version_id %q region %q", d.VersionID, d.Region)
			case d.Retention == nil || d.Retention.Mode != "COMPLIANCE" || d.Retention.Until.Before(minUntil):
				t.Errorf("retention %+v, want COMPLIANCE until at least %s", d.Retention, minUntil)
			case d.Checksum.Algorithm != "SHA256" && d.Checksum.Algorithm != "sha256":
				t.Errorf("checksum algorithm %q", d.Checksum.Algorithm)
			case !d.Checksum.Match || d.Checksum.Local != rec.File.SHA256 || d.Checksum.Remote != rec.File.SHA256 || !d.ReadBack:
				t.Errorf("checksum %+v read_back %v, file %s", d.Checksum, d.ReadBack, rec.File.SHA256)
			}
			key := strings.TrimPrefix(d.Location, "s3://"+e.bucket+"/")
			admin := srv.Admin("")
			ctx := context.Background()

			// The stored bytes are the key file, under the version named.
			got, err := admin.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key), VersionId: aws.String(d.VersionID)})
			if err != nil {
				t.Fatal(err)
			}
			stored, _ := io.ReadAll(got.Body)
			got.Body.Close()
			if sha(stored) != rec.File.SHA256 {
				t.Fatal("the stored version does not hash to the receipt's sha256")
			}
			if _, err := mssqltest.OpenKeyFile(stored, backupPW); err != nil {
				t.Fatalf("the archived copy does not open with the backup password: %v", err)
			}
			// The receipt is stored beside it, locked too.
			rh, err := admin.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key + ".receipt.json")})
			if err != nil || rh.ObjectLockMode != "COMPLIANCE" {
				t.Fatalf("stored receipt: %v %+v", err, rh)
			}

			// Requests: the proxy saw every one the binary sent.
			var actions []string
			for _, q := range e.proxy.Requests() {
				actions = append(actions, q.Action)
			}
			want := []string{"s3:GetBucketObjectLockConfiguration", "s3:GetBucketVersioning", "s3:GetObjectVersion", "s3:GetObjectVersion",
				"s3:GetReplicationConfiguration", "s3:ListBucket", "s3:PutObject", "s3:PutObject"}
			slices.Sort(actions)
			if !slices.Equal(actions, want) {
				t.Errorf("requests of one backup = %q\nwant %q", actions, want)
			}
			t.Logf("%s: backup took %v with %d S3 requests", kind, took.Round(time.Millisecond), len(actions))
			// Each PutObject: create-only, the SHA-256 in a header (so the
			// service checks the whole body against it), no SDK CRC32, no
			// trailer, the lock asked in the same request.
			for _, q := range e.proxy.Requests() {
				if q.Action != "s3:PutObject" {
					continue
				}
				h := q.Header
				if h.Get("If-None-Match") != "*" || h.Get("X-Amz-Checksum-Sha256") == "" || h.Get("Content-Md5") == "" ||
					h.Get("X-Amz-Checksum-Crc32") != "" || h.Get("X-Amz-Trailer") != "" ||
					h.Get("X-Amz-Object-Lock-Mode") != "COMPLIANCE" || h.Get("X-Amz-Object-Lock-Retain-Until-Date") == "" {
					t.Errorf("PutObject %s headers: %v", q.Path, h)
				}
			}

			// The lock is real: deleting the version is refused and it stays.
			_, err = admin.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key), VersionId: aws.String(d.VersionID)})
			if err == nil {
				t.Fatal("the server deleted a locked version")
			}
			t.Logf("%s: deleting the locked version: %v", kind, err)
			again, err := admin.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key), VersionId: aws.String(d.VersionID)})
			if err != nil {
				t.Fatalf("the locked version is gone after a refused delete: %v", err)
			}
			b, _ := io.ReadAll(again.Body)
			again.Body.Close()
			if sha(b) != rec.File.SHA256 {
				t.Fatal("the locked version changed")
			}
		})
	}
}

// TestS3CheckWritesNothing: `keyescrow check` proves the bucket and writes
// nothing.
func TestS3CheckWritesNothing(t *testing.T) {
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newS3Env(t, s3srv.Start(t, kind, s3Region), lockBucket())
			r := e.run("check", "--config", e.cfgPath, "--json")
			if r.code != 0 || !strings.Contains(r.stdout, "default retention COMPLIANCE 1 days") {
				t.Fatalf("check: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			for _, q := range e.proxy.Requests() {
				if q.Method != "GET" && q.Method != "HEAD" {
					t.Errorf("check sent %s %s", q.Method, q.Path)
				}
			}
			if v := e.versions(); len(v) != 0 {
				t.Fatalf("check wrote %v", v)
			}
		})
	}
}

// TestS3RefusalsNameTheFix: every refused destination gets its exit code,
// a message naming the fix, and nothing stored.
func TestS3RefusalsNameTheFix(t *testing.T) {
	cases := []struct {
		name   string
		bucket s3srv.Bucket
		setup  func(e *s3Env)
		code   int
		want   []string
		stored int // objects the bucket holds after the run
	}{
		{name: "a bucket without versioning is exit 4", bucket: s3srv.Bucket{}, code: 4,
			want: []string{"versioning is not enabled", "put-bucket-versioning"}},
		{name: "a versioned bucket without Object Lock is exit 4", bucket: s3srv.Bucket{Versioning: true}, code: 4,
			want: []string{"cannot lock versions", "object-lock"}},
		{name: "a bucket in home_region is exit 4", bucket: lockBucket(), code: 4,
			setup: func(e *s3Env) { e.writeS3(s3Dest{home: s3Region}) },
			want:  []string{"the same region as this host", "use a destination in another region"}},
		{name: "a configured region that is not the bucket's is refused naming the real one", bucket: lockBucket(), code: 4,
			setup: func(e *s3Env) { e.writeS3(s3Dest{region: "us-east-2"}) },
			want:  []string{"eu-central-1", "correct region"}},
		{name: "a missing bucket is exit 4", bucket: lockBucket(), code: 4,
			setup: func(e *s3Env) { e.writeS3(s3Dest{bucket: "no-such-bucket-here"}) },
			want:  []string{"does not exist", "create it"}},
		{name: "wrong credentials are exit 5", bucket: lockBucket(), code: 5,
			setup: func(e *s3Env) {
				e.vars["AWS_SECRET_ACCESS_KEY"] = "wrong" + e.srv.SecretKey[5:]
				e.secrets = append(e.secrets, e.vars["AWS_SECRET_ACCESS_KEY"])
			},
			want: []string{"credentials", "AWS_ACCESS_KEY_ID"}},
		{name: "an unknown access key is exit 5", bucket: lockBucket(), code: 5,
			setup: func(e *s3Env) { e.vars["AWS_ACCESS_KEY_ID"] = "AKIAUNKNOWNKEY000000" },
			want:  []string{"credentials", "AWS_ACCESS_KEY_ID"}},
		{name: "no credentials at all is exit 5 naming every way to give them", bucket: lockBucket(), code: 5,
			setup: func(e *s3Env) {
				delete(e.vars, "AWS_ACCESS_KEY_ID")
				delete(e.vars, "AWS_SECRET_ACCESS_KEY")
			},
			want: []string{"AWS_ACCESS_KEY_ID", "profile", "web identity", "IMDS", "SSO"}},
		{name: "a PutObject body corrupted in flight is refused by the server: exit 5, nothing stored", bucket: lockBucket(), code: 5,
			setup: func(e *s3Env) { e.proxy.TamperPut(100) },
			want:  []string{"corrupted in transit", "nothing was stored"}},
		{name: "a GetObject body that differs on read-back is exit 6", bucket: lockBucket(), code: 6, stored: 1,
			setup: func(e *s3Env) { e.proxy.TamperGet(1) },
			want:  []string{"verification failed", "differ from the key file"}},
	}
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3srv.Start(t, kind, s3Region)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					e := newS3Env(t, srv, tc.bucket)
					if tc.setup != nil {
						tc.setup(e)
					}
					start := time.Now()
					r := e.run("backup", "--config", e.cfgPath, "--json")
					if r.code != tc.code {
						t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
					}
					if took := time.Since(start); took > 30*time.Second {
						t.Errorf("the refusal took %v", took)
					}
					for _, s := range tc.want {
						if !strings.Contains(r.stderr, s) {
							t.Errorf("stderr does not say %q:\n%s", s, r.stderr)
						}
					}
					if rec := parseReceipt(t, r.stdout); rec.Status != "failed" || rec.ExitCode != tc.code {
						t.Errorf("receipt: %s", r.stdout)
					}
					if e.bucket != "" {
						if v := e.versions(); len(v) != tc.stored {
							t.Errorf("the bucket holds %v after the run, want %d object(s)", v, tc.stored)
						}
					}
				})
			}
		})
	}
}

// TestS3LostPutResponseIsRetriedWithoutASecondObject: the server stores the
// copy but its answer is lost; the SDK retries, meets 412 for its own first
// attempt, and the run proves that first copy: exit 0, one object.
func TestS3LostPutResponseIsRetriedWithoutASecondObject(t *testing.T) {
	for _, kind := range s3srv.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newS3Env(t, s3srv.Start(t, kind, s3Region), lockBucket())
			e.proxy.DropPutReply(1)
			r := e.run("backup", "--config", e.cfgPath, "--json")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			rec := parseReceipt(t, r.stdout)
			if v := e.versions(); len(v) != 2 { // the key and its receipt
				t.Fatalf("the bucket holds %v, want one key copy and one receipt", v)
			}
			puts := 0
			for _, q := range e.proxy.Requests() {
				if q.Action == "s3:PutObject" {
					puts++
				}
			}
			if puts != 3 || rec.Destinations[0].VersionID == "" {
				t.Fatalf("PutObject requests %d (want 2 for the key, 1 for the receipt), receipt %s", puts, r.stdout)
			}
		})
	}
}

// TestS3PolicyAllowsEveryActionTheAgentCalls records the S3 actions of a
// backup, a check and a refused run on each server, and proves that
// deploy/aws/keyescrow-agent-policy.json allows every one of them, denies
// none of them, and allows no Delete* at all.
func TestS3PolicyAllowsEveryActionTheAgentCalls(t *testing.T) {
	called := map[string]bool{}
	for _, kind := range s3srv.Kinds {
		srv := s3srv.Start(t, kind, s3Region)
		e := newS3Env(t, srv, lockBucket())
		for _, args := range [][]string{{"backup"}, {"check"}, {"backup", "--set", "destinations.0.legal_hold=true"}} {
			if r := e.run(append(args, "--config", e.cfgPath)...); r.code != 0 {
				t.Fatalf("%s %v: exit %d\n%s", kind, args, r.code, r.stderr)
			}
		}
		e2 := newS3Env(t, srv, s3srv.Bucket{Versioning: true})
		e2.writeS3(s3Dest{waive: []string{"immutability"}})
		if r := e2.run("backup", "--config", e2.cfgPath); r.code != 0 {
			t.Fatalf("%s waived backup: exit %d\n%s", kind, r.code, r.stderr)
		}
		for _, p := range []*s3srv.Proxy{e.proxy, e2.proxy} {
			for _, q := range p.Requests() {
				called[q.Action] = true
				for _, a := range s3srv.ExtraActions(q) {
					called[a] = true
				}
			}
		}
	}
	pol := readPolicy(t)
	for a := range called {
		if !pol.allows(a) {
			t.Errorf("the agent calls %s but the policy does not allow it", a)
		}
		if strings.Contains(a, "Delete") {
			t.Errorf("the agent called %s", a)
		}
	}
	for _, a := range pol.allowed {
		if strings.Contains(strings.ToLower(a), "delete") || a == "s3:*" || a == "*" {
			t.Errorf("the policy allows %s", a)
		}
	}
	for _, a := range []string{"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"} {
		if !slices.Contains(pol.denied, a) {
			t.Errorf("the policy does not deny %s explicitly", a)
		}
	}
	names := make([]string, 0, len(called))
	for a := range called {
		names = append(names, a)
	}
	slices.Sort(names)
	t.Logf("actions the agent called: %s", strings.Join(names, ", "))
}

type policy struct{ allowed, denied []string }

func (p policy) allows(a string) bool {
	return slices.Contains(p.allowed, a) && !slices.Contains(p.denied, a)
}

func readPolicy(t *testing.T) policy {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "aws", "keyescrow-agent-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Effect string
			Action any
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("the policy is not JSON: %v", err)
	}
	var p policy
	for _, st := range doc.Statement {
		var acts []string
		switch a := st.Action.(type) {
		case string:
			acts = []string{a}
		case []any:
			for _, x := range a {
				acts = append(acts, fmt.Sprint(x))
			}
		}
		if st.Effect == "Allow" {
			p.allowed = append(p.allowed, acts...)
		} else {
			p.denied = append(p.denied, acts...)
		}
	}
	return p
}

// TestS3RealAWS runs the backup against a real bucket when
// KEYESCROW_TEST_S3_BUCKET and KEYESCROW_TEST_S3_REGION are set (with the
// machine's AWS credentials, passed on purpose); otherwise the local servers
// above are the whole proof and this says so.
func TestS3RealAWS(t *testing.T) {
	bucket, region := os.Getenv("KEYESCROW_TEST_S3_BUCKET"), os.Getenv("KEYESCROW_TEST_S3_REGION")
	if bucket == "" {
		t.Log("KEYESCROW_TEST_S3_BUCKET is unset: the S3 tests ran against versitygw and MinIO only")
		return
	}
	if region == "" {
		t.Fatal("with KEYESCROW_TEST_S3_BUCKET set, set KEYESCROW_TEST_S3_REGION (the bucket's region)")
	}
	home := os.Getenv("KEYESCROW_TEST_S3_HOME_REGION")
	if home == "" {
		home = "eu-west-1"
		if region == home {
			home = "us-east-1"
		}
	}
	e := newEnv(t, mssqltest.Config{})
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CA_BUNDLE"} {
		if v, ok := os.LookupEnv(k); ok {
			e.vars[k] = v
		}
	}
	if h, err := os.UserHomeDir(); err == nil && e.vars["AWS_CONFIG_FILE"] == "" {
		e.vars["AWS_CONFIG_FILE"] = filepath.Join(h, ".aws", "config")
		e.vars["AWS_SHARED_CREDENTIALS_FILE"] = filepath.Join(h, ".aws", "credentials")
	}
	mode := os.Getenv("KEYESCROW_TEST_S3_MODE")
	if mode == "" {
		mode = "GOVERNANCE" // a test object a real account can still clean up
	}
	cfg := fmt.Sprintf(`sqlserver:
  dsn_env: KEYESCROW_SQLSERVER_DSN
backup:
  server_directory: %q
  password_env: KEYESCROW_BACKUP_PASSWORD
home_region: %s
destinations:
  - name: real-s3
    type: s3
    bucket: %s
    region: %s
    prefix: keyescrow-test/
    profile: %q
    retention: {mode: %s, days: 1}
lock_file: %q
`, e.keyDir, home, bucket, region, os.Getenv("KEYESCROW_TEST_S3_PROFILE"), mode, e.lockF)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run("backup", "--config", e.cfgPath, "--json")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	d := parseReceipt(t, r.stdout).Destinations[0]
	if d.VersionID == "" || d.Retention == nil || !d.Checksum.Match || !d.ReadBack || d.Region != region {
		t.Fatalf("receipt: %s", r.stdout)
	}
}

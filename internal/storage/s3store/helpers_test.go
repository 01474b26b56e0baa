package s3store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyescrow/keyescrow/internal/storage"
	"github.com/keyescrow/keyescrow/internal/storage/s3store"
	"github.com/keyescrow/keyescrow/internal/testsrv/s3srv"
)

// serverRegion is where the test servers live; homeRegion is elsewhere.
const serverRegion = "eu-central-1"

// open opens bucket on srv through endpoint ("" = the server itself).
func open(t *testing.T, srv *s3srv.Server, bucket, endpoint string, mod ...func(*s3store.Options)) *s3store.Store {
	t.Helper()
	if endpoint == "" {
		endpoint = srv.Endpoint
	}
	o := s3store.Options{
		Bucket: bucket, Region: srv.Region, Endpoint: endpoint, PathStyle: true, CAFile: srv.TLS.CA,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	}
	for _, m := range mod {
		m(&o)
	}
	s, err := s3store.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deleteVersion deletes through the admin client and maps the servers'
// refusals of a locked version (versitygw 403 AccessDenied, MinIO 400
// InvalidRequest) to ErrLocked.
func deleteVersion(ctx context.Context, srv *s3srv.Server, bucket, key, versionID string) error {
	in := &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	_, err := srv.Admin("").DeleteObject(ctx, in)
	if err == nil {
		return nil
	}
	var api interface{ ErrorCode() string }
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "AccessDenied", "InvalidRequest", "ObjectLocked":
			return fmt.Errorf("%w: %v", storage.ErrLocked, err)
		}
	}
	return err
}

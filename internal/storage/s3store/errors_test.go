package s3store

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// apiErr builds the error the SDK returns for a service answer.
func apiErr(status int, code string, header http.Header) error {
	var inner error = &smithy.GenericAPIError{Code: code, Message: "message of " + code}
	if code == "" {
		inner = errors.New("http response error")
	}
	return &smithy.OperationError{ServiceID: "S3", OperationName: "Op", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: header}},
			Err:      inner,
		},
	}}
}

func TestTranslateMapsServiceAnswersToSentinelsAndNamesTheFix(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
		fix  string
	}{
		{apiErr(412, "PreconditionFailed", nil), storage.ErrExists, "never overwrites"},
		{apiErr(409, "ConditionalRequestConflict", nil), storage.ErrExists, "never overwrites"},
		{apiErr(412, "", nil), storage.ErrExists, "never overwrites"},
		{apiErr(404, "NoSuchKey", nil), storage.ErrNotFound, "does not exist"},
		{apiErr(404, "NoSuchVersion", nil), storage.ErrNotFound, "does not exist"},
		{apiErr(404, "", nil), storage.ErrNotFound, "does not exist"},
		{apiErr(405, "", http.Header{"X-Amz-Delete-Marker": {"true"}}), storage.ErrNotFound, "delete marker"},
		{apiErr(404, "NoSuchBucket", nil), storage.ErrNotFound, "create it"},
		{apiErr(403, "InvalidAccessKeyId", nil), storage.ErrAuth, "AWS_ACCESS_KEY_ID"},
		{apiErr(403, "SignatureDoesNotMatch", nil), storage.ErrAuth, "AWS_ACCESS_KEY_ID"},
		{apiErr(400, "ExpiredToken", nil), storage.ErrAuth, "session token"},
		{apiErr(404, "XAdminUserNotFound", nil), storage.ErrAuth, "AWS_ACCESS_KEY_ID"},
		{apiErr(403, "AccessDenied", nil), storage.ErrPermission, "grant s3:PutObject"},
		{apiErr(403, "", nil), storage.ErrPermission, "grant s3:PutObject"},
		{apiErr(400, "BadDigest", nil), storage.ErrChecksum, "corrupted in transit"},
		{apiErr(400, "XAmzContentChecksumMismatch", nil), storage.ErrChecksum, "corrupted in transit"},
		{apiErr(400, "InvalidDigest", nil), storage.ErrChecksum, "corrupted in transit"},
		{apiErr(503, "SlowDown", nil), storage.ErrUnavailable, "retry later"},
		{apiErr(500, "", nil), storage.ErrUnavailable, "retry later"},
		{apiErr(403, "RequestTimeTooSkewed", nil), storage.ErrUnavailable, "clock"},
		{apiErr(301, "", http.Header{"X-Amz-Bucket-Region": {"us-west-2"}}), storage.ErrInvalid, `"us-west-2": correct region`},
		{apiErr(400, "InvalidRequest", nil), storage.ErrInvalid, "refused"},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), storage.ErrUnavailable, ""},
	} {
		got := translate(tc.err, "PutObject s3://b/k", "s3:PutObject")
		if !errors.Is(got, tc.want) || !strings.Contains(got.Error(), tc.fix) || !strings.HasPrefix(got.Error(), "PutObject s3://b/k") {
			t.Errorf("translate(%v) = %v, want %v naming %q", tc.err, got, tc.want, tc.fix)
		}
	}
	if got := translate(context.Canceled, "Op", ""); !errors.Is(got, context.Canceled) {
		t.Errorf("a cancelled request = %v, want context.Canceled kept", got)
	}
}

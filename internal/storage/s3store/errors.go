package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyescrow/keyescrow/internal/storage"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// codeOf returns the S3 error code and HTTP status of err ("" and 0 when
// the service did not answer).
func codeOf(err error) (code string, status int) {
	var api smithy.APIError
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

// headerOf returns a header of the error response, "" when there is none.
func headerOf(err error, name string) string {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.Header.Get(name)
	}
	return ""
}

// translate maps an SDK error to a storage sentinel. what says what was
// being done ("PutObject s3://b/k"); action is the IAM action it needs
// ("s3:PutObject"), named in the fix when the service refused it.
func translate(err error, what, action string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	code, status := codeOf(err)
	reason := code
	if reason == "" && status != 0 {
		reason = fmt.Sprintf("HTTP %d", status)
	}
	wrap := func(sentinel error, fix string) error {
		return fmt.Errorf("%s: %w (%s): %s", what, sentinel, reason, fix)
	}
	switch code {
	case "PreconditionFailed", "ConditionalRequestConflict":
		return wrap(storage.ErrExists, "an object with this key exists already; keyescrow never overwrites")
	case "NoSuchKey", "NoSuchVersion", "NotFound":
		return wrap(storage.ErrNotFound, "the object or version does not exist")
	case "NoSuchBucket":
		return wrap(storage.ErrNotFound, "the bucket does not exist: create it (see deploy/aws/terraform) or correct bucket")
	case "InvalidAccessKeyId", "XAdminUserNotFound", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidSecurity", "ExpiredTokenException":
		return wrap(storage.ErrAuth, "the credentials were rejected: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile, or renew the session token")
	case "AuthorizationHeaderMalformed", "AuthorizationQueryParametersError":
		return wrap(storage.ErrAuth, "the request was signed for another region or with malformed credentials: check region and the credentials")
	case "AccessDenied", "AllAccessDisabled", "AccessDeniedException":
		return wrap(storage.ErrPermission, fmt.Sprintf("grant %s to these credentials (see deploy/aws/keyescrow-agent-policy.json)", action))
	case "BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum":
		return wrap(storage.ErrChecksum, "the bytes that arrived do not match the checksum sent: corrupted in transit, nothing was stored; retry, and check proxies between this host and the endpoint")
	case "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "OperationAborted":
		fix := "the service is busy or failing: retry later"
		if code == "RequestTimeTooSkewed" {
			fix = "this host's clock is wrong: sync it (NTP)"
		}
		return wrap(storage.ErrUnavailable, fix)
	case "InvalidRequest", "InvalidArgument", "InvalidBucketState", "MalformedXML", "InvalidObjectState", "NotImplemented", "MissingContentMD5":
		return wrap(storage.ErrInvalid, "the service refused the request as invalid for this bucket")
	case "PermanentRedirect", "IllegalLocationConstraintException":
		return wrap(storage.ErrInvalid, fmt.Sprintf("the bucket is in region %q: correct region", headerOf(err, "x-amz-bucket-region")))
	}
	switch {
	case status == 412:
		return wrap(storage.ErrExists, "an object with this key exists already; keyescrow never overwrites")
	case status == 404:
		return wrap(storage.ErrNotFound, "the object, version or bucket does not exist")
	case status == 405 && headerOf(err, "x-amz-delete-marker") == "true":
		return wrap(storage.ErrNotFound, "the version is a delete marker")
	case status == 301:
		return wrap(storage.ErrInvalid, fmt.Sprintf("the bucket is in region %q: correct region", headerOf(err, "x-amz-bucket-region")))
	case status == 401:
		return wrap(storage.ErrAuth, "the credentials were rejected: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile")
	case status == 403:
		// A HEAD response has no body: wrong credentials and a missing
		// permission look alike.
		return wrap(storage.ErrPermission, fmt.Sprintf("refused: check the credentials (AWS_ACCESS_KEY_ID/profile) and grant %s", action))
	case status >= 500 || status == 429:
		return wrap(storage.ErrUnavailable, "the service is failing or throttling: retry later")
	case status >= 400:
		return wrap(storage.ErrInvalid, "the service refused the request")
	}
	if strings.Contains(err.Error(), "x509:") || strings.Contains(err.Error(), "tls:") {
		return fmt.Errorf("%s: %w: %v: the endpoint's certificate is not trusted: set ca_file to its CA bundle", what, storage.ErrUnavailable, err)
	}
	var ne net.Error
	var maxAttempts *retry.MaxAttemptsError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Errorf("%s: %w: cannot resolve %s: check endpoint and DNS", what, storage.ErrUnavailable, dnsErr.Name)
	case errors.As(err, &ne), errors.As(err, &maxAttempts), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%s: %w: %v: check the network path to the endpoint", what, storage.ErrUnavailable, err)
	}
	if strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "failed to refresh cached credentials") {
		return fmt.Errorf("%s: %w: %v", what, storage.ErrAuth, err)
	}
	return fmt.Errorf("%s: %w: %v", what, storage.ErrUnavailable, err)
}

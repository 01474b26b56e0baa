package azstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// translate maps an SDK error to the storage sentinels. The message names
// what was being done, the HTTP status and the service's error code; it
// never repeats the request URL (a SAS would be in it) or the body.
func translate(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("azureblob: %s: %w", what, context.Canceled)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("azureblob: %s: timed out: %w", what, errors.Join(context.DeadlineExceeded, storage.ErrUnavailable))
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("azureblob: %s: HTTP %d %s: %w", what, re.StatusCode, re.ErrorCode, sentinel(re.StatusCode, re.ErrorCode))
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) {
		return fmt.Errorf("azureblob: %s: Entra ID refused the credential (%s): %w", what, compact(af.Error()), storage.ErrAuth)
	}
	var cu interface{ NonRetriable() }
	if errors.As(err, &cu) || strings.Contains(err.Error(), "CredentialUnavailable") {
		return fmt.Errorf("azureblob: %s: no Azure credential is available (%s): %w", what, firstLine(err.Error()), storage.ErrAuth)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// The URL would carry a SAS: keep scheme, host and path only.
		u := ue.URL
		if p, perr := url.Parse(u); perr == nil {
			p.RawQuery, p.User = "", nil
			u = p.String()
		} else {
			u, _, _ = strings.Cut(u, "?")
		}
		return fmt.Errorf("azureblob: %s: %s %s: %s: %w", what, ue.Op, u, firstLine(fmt.Sprint(ue.Err)), storage.ErrUnavailable)
	}
	return fmt.Errorf("azureblob: %s: %s: %w", what, firstLine(err.Error()), storage.ErrUnavailable)
}

// sentinel is the storage error for a service answer.
func sentinel(status int, code string) error {
	switch bloberror.Code(code) {
	case bloberror.BlobAlreadyExists, bloberror.ConditionNotMet:
		return storage.ErrExists
	case bloberror.MD5Mismatch, bloberror.InvalidMD5:
		return storage.ErrChecksum
	case bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ResourceNotFound, bloberror.InvalidBlobOrBlock:
		return storage.ErrNotFound
	case bloberror.AuthenticationFailed, bloberror.InvalidAuthenticationInfo, "NoAuthenticationInformation":
		return storage.ErrAuth
	case bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationFailure,
		bloberror.AuthorizationResourceTypeMismatch, bloberror.AuthorizationServiceMismatch,
		bloberror.AuthorizationSourceIPMismatch, bloberror.AuthorizationProtocolMismatch, "AuthorizationFailed":
		return storage.ErrPermission
	case "BlobImmutableDueToPolicy", "BlobImmutableDueToLegalHold", "ContainerImmutableStorageWithVersioningEnabled", "ImmutabilityPolicyDeleteOnLockedPolicy":
		return storage.ErrLocked
	case bloberror.InvalidHeaderValue, bloberror.InvalidQueryParameterValue, bloberror.InvalidInput, bloberror.UnsupportedHeader:
		return storage.ErrInvalid
	}
	switch {
	case status == http.StatusNotFound:
		return storage.ErrNotFound
	case status == http.StatusUnauthorized:
		return storage.ErrAuth
	case status == http.StatusForbidden:
		return storage.ErrPermission
	case status == http.StatusPreconditionFailed:
		return storage.ErrExists
	case status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
		return storage.ErrUnavailable
	case status == http.StatusNotImplemented:
		return storage.ErrInvalid
	}
	return storage.ErrInvalid
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "-") {
			if len(l) > 300 {
				l = l[:300] + "…"
			}
			return l
		}
	}
	return s
}

// compact folds azidentity's multi-line report into one line, without the
// separator rules and the troubleshooting link.
func compact(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "To troubleshoot") || l == "{" || l == "}" {
			continue
		}
		parts = append(parts, l)
	}
	out := strings.Join(parts, " ")
	if len(out) > 600 {
		out = out[:600] + "…"
	}
	return out
}

// withHint names the data action an ErrPermission lacks.
func withHint(err error, action string) error {
	if errors.Is(err, storage.ErrPermission) {
		return fmt.Errorf("%w; grant the identity the data action %s (the keyescrow agent role in deploy/azure)", err, action)
	}
	return err
}

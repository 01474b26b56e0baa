package s3srv

import (
	"net/http"
	"net/url"
	"testing"
)

// The policy test trusts Action to name the IAM action of each request.
func TestActionNamesTheIAMActionOfEachRequest(t *testing.T) {
	for _, tc := range []struct{ method, target, want string }{
		{"HEAD", "/b", "s3:ListBucket"},
		{"GET", "/b?versioning=", "s3:GetBucketVersioning"},
		{"GET", "/b?object-lock=", "s3:GetBucketObjectLockConfiguration"},
		{"GET", "/b?replication=", "s3:GetReplicationConfiguration"},
		{"GET", "/b?location=", "s3:GetBucketLocation"},
		{"GET", "/b?versions=&prefix=p", "s3:ListBucketVersions"},
		{"PUT", "/b/k/a.key", "s3:PutObject"},
		{"HEAD", "/b/k/a.key?versionId=v1", "s3:GetObjectVersion"},
		{"HEAD", "/b/k/a.key", "s3:GetObject"},
		{"GET", "/b/k/a.key?versionId=v1", "s3:GetObjectVersion"},
		{"GET", "/b/k/a.key?retention=&versionId=v1", "s3:GetObjectRetention"},
		{"DELETE", "/b/k/a.key?versionId=v1", "s3:DeleteObjectVersion"},
		{"DELETE", "/b/k/a.key", "s3:DeleteObject"},
	} {
		u, _ := url.Parse(tc.target)
		if got := Action(tc.method, u.Path, u.Query(), http.Header{}); got != tc.want {
			t.Errorf("%s %s = %s, want %s", tc.method, tc.target, got, tc.want)
		}
	}
	put := Request{Action: "s3:PutObject", Method: "PUT", Header: http.Header{
		"X-Amz-Object-Lock-Mode": {"COMPLIANCE"}, "X-Amz-Object-Lock-Legal-Hold": {"ON"}}}
	if got := ExtraActions(put); len(got) != 2 || got[0] != "s3:PutObjectRetention" || got[1] != "s3:PutObjectLegalHold" {
		t.Errorf("ExtraActions(locked put) = %q", got)
	}
}

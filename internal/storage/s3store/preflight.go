package s3store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Preflight reads the bucket's facts with four concurrent requests and
// writes nothing: HeadBucket (existence, x-amz-bucket-region),
// GetBucketVersioning, GetObjectLockConfiguration and GetBucketReplication.
// GetBucketLocation is asked only when HeadBucket gives no region.
func (s *Store) Preflight(ctx context.Context) (storage.Properties, error) {
	if err := s.credentials(ctx); err != nil {
		return storage.Properties{}, err
	}
	b := aws.String(s.opts.Bucket)
	var (
		wg                           sync.WaitGroup
		head                         *s3.HeadBucketOutput
		vers                         *s3.GetBucketVersioningOutput
		lock                         *s3.GetObjectLockConfigurationOutput
		repl                         *s3.GetBucketReplicationOutput
		headErr, versErr, lockErr, r error
	)
	wg.Go(func() { head, headErr = s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: b}) })
	wg.Go(func() { vers, versErr = s.client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: b}) })
	wg.Go(func() {
		lock, lockErr = s.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: b})
	})
	wg.Go(func() { repl, r = s.client.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: b}) })
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return storage.Properties{}, err
	}
	// Requests signed for the wrong region are refused; the refusal names
	// the bucket's real region, which is the fact to report.
	if real := realRegion(headErr, versErr, lockErr, r); real != "" && !strings.EqualFold(real, s.opts.Region) {
		why := fmt.Sprintf("not read: the requests were signed for %s but the bucket is in %s; correct region", s.opts.Region, real)
		return storage.Properties{
			Region:       storage.Property{State: storage.Proven, Value: real, Detail: "the service's answer to a request signed for " + s.opts.Region},
			Versioning:   storage.Property{State: storage.Unknown, Detail: why},
			Immutability: storage.Property{State: storage.Unknown, Detail: why},
			Writable:     storage.Property{State: storage.Unknown, Detail: why},
		}, nil
	}
	// Rejected credentials or a missing bucket make every answer moot. A
	// HEAD carries no error body, so the others say which it was.
	for _, e := range []error{versErr, lockErr, r, headErr} {
		if e == nil {
			continue
		}
		code, status := codeOf(e)
		err := translate(e, "preflight of s3://"+s.opts.Bucket, "")
		switch {
		case errors.Is(err, storage.ErrAuth):
			return storage.Properties{}, err
		case code == "NoSuchBucket" || (e == headErr && status == 404):
			return storage.Properties{}, fmt.Errorf("bucket %s: %w: it does not exist (or not in region %s): create it with versioning and Object Lock (see deploy/aws/terraform), or correct bucket", s.opts.Bucket, storage.ErrNotFound, s.opts.Region)
		case errors.Is(err, storage.ErrUnavailable):
			return storage.Properties{}, err
		}
	}

	var p storage.Properties
	p.Region = s.region(ctx, head, headErr)
	p.Writable = storage.Property{State: storage.Unknown, Detail: "the bucket answers these credentials; s3:PutObject is proven by the write itself"}
	if headErr == nil {
		p.Writable.Detail = "the bucket exists and these credentials may list it; s3:PutObject is proven by the write itself"
	}

	switch {
	case versErr != nil:
		p.Versioning = unknown(versErr, "s3:GetBucketVersioning")
	case vers.Status == types.BucketVersioningStatusEnabled:
		p.Versioning = storage.Property{State: storage.Proven, Value: "Enabled", Detail: "GetBucketVersioning: Enabled"}
	default:
		st := string(vers.Status)
		if st == "" {
			st = "never enabled"
		}
		p.Versioning = storage.Property{State: storage.Absent, Value: st, Detail: "GetBucketVersioning: " + st + "; enable it with aws s3api put-bucket-versioning --bucket " + s.opts.Bucket + " --versioning-configuration Status=Enabled"}
	}

	p.Immutability, p.DefaultRetention = s.objectLock(lock, lockErr)
	s.noLock.Store(p.Immutability.State == storage.Absent)
	p.Notes = append(p.Notes, replicationNote(repl, r))
	return p, nil
}

// region proves where the bucket lives: x-amz-bucket-region from HeadBucket
// (also on its error responses, e.g. a 301 for another region), else
// GetBucketLocation.
func (s *Store) region(ctx context.Context, head *s3.HeadBucketOutput, headErr error) storage.Property {
	if head != nil && aws.ToString(head.BucketRegion) != "" {
		return storage.Property{State: storage.Proven, Value: aws.ToString(head.BucketRegion), Detail: "HeadBucket x-amz-bucket-region"}
	}
	if headErr != nil {
		if r := headerOf(headErr, "x-amz-bucket-region"); r != "" {
			return storage.Property{State: storage.Proven, Value: r, Detail: "HeadBucket x-amz-bucket-region (" + reason(headErr) + ")"}
		}
	}
	loc, err := s.client.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(s.opts.Bucket)})
	if err != nil {
		why := "s3:GetBucketLocation denied (" + reason(err) + ")"
		if headErr != nil {
			why = "s3:ListBucket (HeadBucket) and " + why
		}
		return storage.Property{State: storage.Unknown, Detail: why + ": grant s3:ListBucket and s3:GetBucketLocation"}
	}
	r := string(loc.LocationConstraint)
	switch r {
	case "":
		r = "us-east-1" // GetBucketLocation's name for us-east-1
	case "EU":
		r = "eu-west-1"
	}
	return storage.Property{State: storage.Proven, Value: r, Detail: "GetBucketLocation"}
}

func (s *Store) objectLock(lock *s3.GetObjectLockConfigurationOutput, err error) (storage.Property, *storage.DefaultRetention) {
	if err != nil {
		code, _ := codeOf(err)
		switch code {
		case "ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound", "NoSuchObjectLockConfiguration":
			return storage.Property{State: storage.Absent, Value: "Disabled", Detail: "GetObjectLockConfiguration: " + code +
				"; Object Lock is enabled when a bucket is created (aws s3api create-bucket --object-lock-enabled-for-bucket), or on a versioned bucket with put-object-lock-configuration"}, nil
		}
		return unknown(err, "s3:GetBucketObjectLockConfiguration"), nil
	}
	c := lock.ObjectLockConfiguration
	if c == nil || c.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return storage.Property{State: storage.Absent, Value: "Disabled", Detail: "GetObjectLockConfiguration: not enabled; enable Object Lock on the bucket"}, nil
	}
	prop := storage.Property{State: storage.Proven, Value: "Enabled", Detail: "GetObjectLockConfiguration: Enabled"}
	if c.Rule == nil || c.Rule.DefaultRetention == nil {
		prop.Detail += ", no default retention"
		return prop, nil
	}
	d := c.Rule.DefaultRetention
	days := int(aws.ToInt32(d.Days))
	if y := aws.ToInt32(d.Years); y > 0 {
		days = int(y) * 365
	}
	prop.Detail += fmt.Sprintf(", default retention %s %d days", d.Mode, days)
	return prop, &storage.DefaultRetention{Mode: string(d.Mode), Days: days}
}

func replicationNote(repl *s3.GetBucketReplicationOutput, err error) string {
	if err != nil {
		code, _ := codeOf(err)
		switch code {
		case "ReplicationConfigurationNotFoundError", "NoSuchReplicationConfiguration":
			return "replication: none configured"
		case "NotImplemented":
			return "replication: the service does not implement GetBucketReplication"
		}
		return "replication: unknown, s3:GetReplicationConfiguration denied or failed (" + reason(err) + ")"
	}
	if repl.ReplicationConfiguration == nil {
		return "replication: none configured"
	}
	var rules []string
	for _, r := range repl.ReplicationConfiguration.Rules {
		dest := ""
		if r.Destination != nil {
			dest = aws.ToString(r.Destination.Bucket)
		}
		rules = append(rules, fmt.Sprintf("%s %s → %s", aws.ToString(r.ID), r.Status, dest))
	}
	return "replication: " + strings.Join(rules, "; ")
}

var expecting = regexp.MustCompile(`expecting ["']([a-z0-9-]+)["']`)

// realRegion is the region an error response names: x-amz-bucket-region,
// or the "expecting 'region'" of AuthorizationHeaderMalformed.
func realRegion(errs ...error) string {
	for _, err := range errs {
		if err == nil {
			continue
		}
		if r := headerOf(err, "x-amz-bucket-region"); r != "" {
			return r
		}
		var api smithy.APIError
		if errors.As(err, &api) {
			if m := expecting.FindStringSubmatch(api.ErrorMessage()); m != nil {
				return m[1]
			}
		}
	}
	return ""
}

// unknown is a property these credentials may not read.
func unknown(err error, action string) storage.Property {
	code, _ := codeOf(err)
	if code == "AccessDenied" || strings.Contains(reason(err), "403") {
		return storage.Property{State: storage.Unknown, Detail: fmt.Sprintf("%s denied (%s): grant it to these credentials (see deploy/aws/keyescrow-agent-policy.json)", action, reason(err))}
	}
	return storage.Property{State: storage.Unknown, Detail: fmt.Sprintf("%s failed (%s)", action, reason(err))}
}

// reason is the service's error code, else its HTTP status, else the error.
func reason(err error) string {
	code, status := codeOf(err)
	switch {
	case code != "":
		return code
	case status != 0:
		return fmt.Sprintf("HTTP %d", status)
	}
	return err.Error()
}

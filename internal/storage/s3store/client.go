package s3store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// New opens the destination: it loads the AWS configuration (the default
// credential chain, or Options.Profile) and builds one client, with one
// HTTP client, used for every request. It sends nothing.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.Bucket == "" || o.Region == "" {
		return nil, fmt.Errorf("%w: s3 needs a bucket and a region", storage.ErrInvalid)
	}
	httpClient, err := newHTTPClient(o.CAFile, o.Endpoint)
	if err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = discard
	}
	loads := []func(*config.LoadOptions) error{
		config.WithRegion(o.Region),
		config.WithHTTPClient(httpClient),
		// Only what a request needs: no default CRC32 on PutObject (we send
		// SHA-256 ourselves) and no response validation on GetObject (the
		// pipeline re-hashes the bytes and must see a difference as such).
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithLogger(sdkLogger{log}),
	}
	if o.Profile != "" {
		loads = append(loads, config.WithSharedConfigProfile(o.Profile))
	}
	if o.Credentials != nil {
		loads = append(loads, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		var notExist config.SharedConfigProfileNotExistError
		if errors.As(err, &notExist) {
			return nil, fmt.Errorf("%w: AWS profile %q is not in the shared config or credentials file (~/.aws/config, ~/.aws/credentials, or AWS_CONFIG_FILE/AWS_SHARED_CREDENTIALS_FILE): correct profile, or create it", storage.ErrInvalid, o.Profile)
		}
		return nil, fmt.Errorf("%w: loading the AWS configuration: %v", storage.ErrInvalid, err)
	}
	attempts := o.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		so.Retryer = retry.NewStandard(func(r *retry.StandardOptions) {
			r.MaxAttempts = attempts
			r.MaxBackoff = 5 * time.Second
		})
		so.APIOptions = append(so.APIOptions, o.APIOptions...)
		// The SDK logs a warning for every GetObject it does not validate;
		// the pipeline validates by re-hashing, so the warning is noise.
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	return &Store{opts: o, client: client, log: log}, nil
}

// newHTTPClient trusts the system roots plus caFile (see tlsConfig; the SDK
// adds AWS_CA_BUNDLE to this client). An S3 301 carries no Location, so a
// request to the wrong region is never followed elsewhere: it fails, and
// its x-amz-bucket-region names the real one.
func newHTTPClient(caFile, endpoint string) (*awshttp.BuildableClient, error) {
	tlsCfg, err := tlsConfig(caFile, endpoint)
	if err != nil {
		return nil, err
	}
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSClientConfig = tlsCfg // uncloned: see tlsConfig
			tr.TLSHandshakeTimeout = 10 * time.Second
			tr.ResponseHeaderTimeout = 2 * time.Minute
		}), nil
}

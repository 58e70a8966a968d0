// Package s3store is a store.Store on S3-compatible object storage: AWS
// S3, MinIO, Ceph RGW, versitygw and others that speak the S3 API.
//
// Objects: a name is the key prefix/name in the bucket. An object of up to
// PartSize bytes is written with one PUT, larger ones with a multipart
// upload streamed through at most Concurrency buffers of PartSize; either
// way S3 makes the object visible only when it is complete, and a failed
// upload is aborted (what an abort cannot remove stays invisible; a bucket
// lifecycle rule that aborts incomplete multipart uploads after a day
// removes it for good). Every object carries a CRC32C checksum, sent with
// the write so that the service verifies it on arrival and checked again
// on every read: the S3 checksum headers where the service keeps them,
// else a copy in the object's metadata (single-PUT objects only).
//
// Create is a conditional write (If-None-Match: *), and locks are lock
// objects updated with conditional writes (If-None-Match to take a free
// lock, If-Match on the ETag to renew one or take over an expired one).
// The store checks once, on first use, that the service really honours
// these conditions; one that ignores or refuses them would let two
// writers both succeed, so on such a service Create and Lock refuse with
// ErrNoConditionalWrites, unless Options.ExternalLocking says that the
// caller guarantees a single writer by other means (writes then carry no
// condition).
//
// Requests are retried with exponential backoff and jitter on throttling,
// 5xx answers but 501, timeouts and connection failures, within
// MaxAttempts and MaxRetryTime; every attempt is bounded by
// RequestTimeout.
package s3store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/internal/locallock"
)

// Store is a store.Store in an S3 bucket. Its methods are safe for
// concurrent use.
type Store struct {
	opts   Options
	client *s3.Client
	idle   interface{ CloseIdleConnections() } // the HTTP client's, if it has it
	root   string                              // key prefix of every object: "" or "prefix/"
	where  string                              // the bucket and endpoint, for errors
	log    *slog.Logger

	mu     sync.Mutex
	closed bool
	leases map[*lease]struct{} // held, renewing
	local  locallock.Table     // the locks of ExternalLocking

	cond condProbe

	listPage int32 // keys per List page; 0: the service's default (1000 on S3)
}

var _ store.Store = (*Store)(nil)

// Keys of the store's own objects live under these segments, which start
// with a dot and so can never be an object name (store.ValidName).
const (
	locksDir = ".ckpt-locks/"
	probeDir = ".ckpt-probe/"
)

// Open returns the store in opts.Bucket. It checks that the bucket can be
// reached with the credentials found, so that a wrong endpoint, bucket,
// region or credential is reported now, with what to check.
func Open(ctx context.Context, opts Options) (*Store, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	// A buildable client, so that the SDK can still add what the
	// environment asks for (AWS_CA_BUNDLE); frozen below.
	hc := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = min(o.RequestTimeout, 10*time.Second) }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConns = 64
			tr.MaxIdleConnsPerHost = 32
			// No ResponseHeaderTimeout: each attempt's context bounds it
			// (see do), and two timers of one length race.
		})

	load := []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc),
		// The store retries by its own policy (do); the SDK's retryer,
		// with its client-side retry quota, would fail fast exactly when a
		// service is having trouble.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		config.WithLogger(sdkLogger{o.Logger}),
	}
	if o.Endpoint != "" && !o.InstanceMetadata {
		// A service of one's own has no instance role: asking the cloud
		// metadata address for one would send a request off the machine
		// and, failing, leave only a slower and vaguer error.
		load = append(load, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	if o.Region != "" {
		load = append(load, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(o.Profile))
	}
	if o.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3store: load the AWS configuration (environment variables, AWS_PROFILE, ~/.aws/config): %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if b, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		cfg.HTTPClient = b.Freeze()
	}
	idle, _ := cfg.HTTPClient.(interface{ CloseIdleConnections() })
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		so.RetryMaxAttempts = 1
		// The store computes and checks CRC32C itself (see write.go and
		// read.go); the SDK's own checksums would hash everything twice.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = "AWS S3"
		if cfg.BaseEndpoint != nil {
			endpoint = *cfg.BaseEndpoint
		}
	}
	if endpoint != "AWS S3" {
		endpoint = store.RedactString(endpoint)
	}
	s := &Store{
		opts:   o,
		client: client,
		idle:   idle,
		log:    o.Logger,
		where:  fmt.Sprintf("bucket %q at %s, region %s", o.Bucket, endpoint, cfg.Region),
		leases: make(map[*lease]struct{}),
		local:  locallock.Table{ClockTokens: true},
	}
	if o.Prefix != "" {
		s.root = o.Prefix + "/"
	}
	if err := s.checkBucket(ctx); err != nil {
		s.closeIdle()
		return nil, err
	}
	return s, nil
}

// OpenURL opens the store at an s3:// address (see OptionsFromURL), with
// credentials from the standard AWS chain.
func OpenURL(ctx context.Context, loc store.Location, log *slog.Logger) (*Store, error) {
	opts, err := OptionsFromURL(loc)
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	opts.Logger = log
	return Open(ctx, opts)
}

// checkBucket lists one key of the store, with a short retry budget: a
// mistyped endpoint should not take MaxRetryTime to report. A listing
// rather than HeadBucket, because its error answers carry a code
// (NoSuchBucket, InvalidAccessKeyId, ...) where HEAD has only a status.
func (s *Store) checkBucket(ctx context.Context) error {
	_, err := s.doN(ctx, "ListObjectsV2", min(s.opts.MaxAttempts, 3), func(ctx context.Context) error {
		_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
			Bucket: aws.String(s.opts.Bucket), Prefix: aws.String(s.root), MaxKeys: aws.Int32(1),
		})
		return err
	})
	if err != nil {
		return s.fail("open", "", err)
	}
	return nil
}

func (s *Store) key(name string) (string, error) {
	if err := store.ValidName(name); err != nil {
		return "", fmt.Errorf("s3store: %w", err)
	}
	return s.root + name, nil
}

func (s *Store) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("s3store: %w", store.ErrClosed)
	}
	return nil
}

// fail wraps the error of operation op on object name with what was
// tried, and, for errors a person must fix, what to check. Secrets never
// reach it: the SDK's errors carry none, and s.where holds none.
func (s *Store) fail(op, name string, err error) error {
	what := op
	if name != "" {
		what += " " + name
	}
	// The caller's own cancellation or deadline needs no hint; every
	// failure of the service comes wrapped in an attemptError by do.
	var ae *attemptError
	if !errors.As(err, &ae) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("s3store: %s: %w", what, err)
	}
	hint := hintFor(err)
	if hint == "" {
		return fmt.Errorf("s3store: %s (%s): %w", what, s.where, err)
	}
	return fmt.Errorf("s3store: %s (%s): %w; %s", what, s.where, err, hint)
}

// hintFor says what to check for errors a person must fix.
func hintFor(err error) string {
	code, status := apiCode(err)
	switch {
	case code == "NoSuchBucket" || status == http.StatusNotFound && code == "NotFound":
		return "check the bucket name and the endpoint, or create the bucket"
	case code == "InvalidAccessKeyId" || strings.HasSuffix(code, "UserNotFound"):
		return "the access key is unknown to the service: check AWS_ACCESS_KEY_ID or the profile's credentials"
	case code == "SignatureDoesNotMatch":
		return "check the secret key (AWS_SECRET_ACCESS_KEY or the profile's) and the region"
	case code == "RequestTimeTooSkewed":
		return "this machine's clock is off: fix it (NTP)"
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || status == http.StatusMovedPermanently:
		return "the bucket is in another region: set region= in the URL or AWS_REGION"
	case status == http.StatusForbidden:
		return "check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and that they may read and write the bucket"
	case status == 0 && strings.Contains(err.Error(), "credentials"):
		return "no usable credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
	case status == 0 && transportError(err):
		return "check the endpoint (scheme, host and port), that the service is running, and that this machine can reach it"
	case status == http.StatusNotImplemented:
		return "the service does not implement a feature this request uses (a conditional write or a CRC32C checksum header); it may be too old for ckpt"
	case status >= 500 || status == http.StatusTooManyRequests:
		return "the service is failing or overloaded; try again later"
	}
	return ""
}

// List returns the names of the objects that start with prefix, sorted.
// Keys that are no valid object name (the store's own lock objects, or
// objects other programs put under the store's prefix) are left out.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := store.ValidPrefix(prefix); err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	var names []string
	var token *string
	seen := make(map[string]bool) // continuation tokens, against a service that pages in a circle
	for {
		var out *s3.ListObjectsV2Output
		_, err := s.do(ctx, "ListObjectsV2", func(ctx context.Context) error {
			var err error
			out, err = s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
				Bucket:            aws.String(s.opts.Bucket),
				Prefix:            aws.String(s.root + prefix),
				ContinuationToken: token,
				MaxKeys:           pageSize(s.listPage),
			})
			return err
		})
		if err != nil {
			return nil, s.fail("list", fmt.Sprintf("%q", prefix), err)
		}
		for _, obj := range out.Contents {
			name, ok := strings.CutPrefix(aws.ToString(obj.Key), s.root)
			if ok && store.ValidName(name) == nil {
				names = append(names, name)
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		// A partial list must not pass for the whole: it would hide the
		// newest checkpoints, and retention would delete blobs they use.
		next := aws.ToString(out.NextContinuationToken)
		if next == "" || seen[next] {
			return nil, s.fail("list", fmt.Sprintf("%q", prefix), fmt.Errorf(
				"the service says the listing is truncated after %d keys but gives no new continuation token; it may not support ListObjectsV2 paging", len(names)))
		}
		seen[next] = true
		token = out.NextContinuationToken
	}
	// S3 lists in byte order, but not every service does; sorting is
	// cheap next to the requests.
	slices.Sort(names)
	return slices.Compact(names), nil
}

func pageSize(n int32) *int32 {
	if n == 0 {
		return nil
	}
	return aws.Int32(n)
}

// Delete removes name; a missing name is not an error.
func (s *Store) Delete(ctx context.Context, name string) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	_, err = s.do(ctx, "DeleteObject", func(ctx context.Context) error {
		_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(key)})
		if _, status := apiCode(err); status == http.StatusNotFound {
			return nil
		}
		return err
	})
	if err != nil {
		return s.fail("delete", name, err)
	}
	return nil
}

// Close releases the store's connections and ends the renewal of any
// lease still held (which then expires): when it returns, the renewals
// have stopped, one in flight cut off. Calls after Close fail with
// store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	leases := make([]*lease, 0, len(s.leases))
	for l := range s.leases {
		leases = append(leases, l)
	}
	s.mu.Unlock()
	for _, l := range leases {
		l.abandon()
	}
	for _, l := range leases {
		<-l.done
	}
	s.closeIdle()
	return nil
}

func (s *Store) closeIdle() {
	if s.idle != nil {
		s.idle.CloseIdleConnections()
	}
}

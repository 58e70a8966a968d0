package s3store

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ckptdev/ckpt/store"
)

// Defaults of the Options fields, used when a field is zero.
const (
	DefaultRequestTimeout = 30 * time.Second
	DefaultMaxAttempts    = 8
	DefaultMaxRetryTime   = 2 * time.Minute
	DefaultPartSize       = 16 << 20
	DefaultConcurrency    = 2
	DefaultLeaseTTL       = 30 * time.Second
	DefaultLeaseRenew     = 10 * time.Second

	// MinPartSize is S3's smallest part of a multipart upload (the last
	// part excepted).
	MinPartSize = 5 << 20
	// maxParts is S3's largest number of parts in one upload.
	maxParts = 10000
)

// Options configure a Store. The zero value of every field but Bucket
// means its documented default.
type Options struct {
	// Bucket is the bucket's name. Required.
	Bucket string
	// Prefix is prepended, with a slash, to every object name, so that
	// several stores can share a bucket. Empty means the bucket's root.
	Prefix string
	// Endpoint is the service's URL, as http://host:port, for a service
	// other than AWS. Empty means AWS (or AWS_ENDPOINT_URL_S3 /
	// AWS_ENDPOINT_URL when set).
	Endpoint string
	// Region is the bucket's region. Empty means the one AWS_REGION or the
	// AWS config file give, else us-east-1.
	Region string
	// PathStyle addresses the bucket as endpoint/bucket rather than
	// bucket.endpoint, as most services other than AWS need.
	PathStyle bool
	// Profile selects a profile of the AWS config and credentials files.
	// Empty means AWS_PROFILE, else the default profile.
	Profile string
	// Credentials, when set, are used instead of the standard AWS chain
	// (environment variables, config files, instance roles).
	Credentials aws.CredentialsProvider
	// InstanceMetadata lets the standard chain ask the instance metadata
	// service (IMDS, at 169.254.169.254) for the role of the machine when
	// Endpoint is set. Without an Endpoint the chain always may (it is how
	// a program on EC2 finds its role); with one, the service is rarely
	// AWS and the request would only leave the machine and fail, so it is
	// not sent unless this is true.
	InstanceMetadata bool

	// RequestTimeout bounds each attempt of a request; a download is cut
	// when no byte arrives for that long. Default 30s.
	RequestTimeout time.Duration
	// MaxAttempts bounds the attempts of one request, the first included.
	// Default 8.
	MaxAttempts int
	// MaxRetryTime bounds the time a request spends retrying: no attempt
	// starts after it. Default 2m.
	MaxRetryTime time.Duration
	// PartSize is the size of the parts of a multipart upload; objects up
	// to this size are written with one PUT. At least 5 MiB. Default 16 MiB.
	PartSize int64
	// Concurrency is the number of parts of one upload in flight. An upload
	// holds at most Concurrency buffers of PartSize. Default 2.
	Concurrency int

	// LeaseTTL is how long a lock stays held without renewal: a holder
	// that dies keeps its lock this long. At least one second. Default 30s.
	LeaseTTL time.Duration
	// LeaseRenew is how often a holder renews its lock; less than
	// LeaseTTL. Default 10s.
	LeaseRenew time.Duration
	// NoLockWait makes Lock fail at once with store.ErrLocked when the
	// lock's holder is a process of another host (which cannot be checked
	// from here) whose lease has not expired. By default Lock waits,
	// within its context, until the lease expires (then takes the lock
	// over: its holder died) or is renewed (then fails: its holder lives).
	// A holder that was a process of this host is checked directly: taken
	// over at once if it has exited, refused at once if it lives.
	NoLockWait bool
	// ExternalLocking declares that the caller guarantees a single writer
	// by other means, for services without conditional writes: Lock then
	// takes no lock in the bucket, no write carries a condition, and
	// Create is not atomic against a concurrent writer. See the package
	// documentation.
	ExternalLocking bool

	// Logger receives warnings (a stale lock taken over, retried requests
	// at debug level). Nil means slog.Default().
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxRetryTime == 0 {
		c.MaxRetryTime = DefaultMaxRetryTime
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.LeaseRenew == 0 {
		c.LeaseRenew = min(DefaultLeaseRenew, c.LeaseTTL/3)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Prefix = strings.Trim(c.Prefix, "/")
	return c
}

// validate checks options that withDefaults has completed.
func (o *Options) validate() error {
	var errs []error
	if o.Bucket == "" {
		errs = append(errs, errors.New("no bucket"))
	}
	if o.Prefix != "" {
		if err := store.ValidName(o.Prefix); err != nil {
			errs = append(errs, fmt.Errorf("prefix: %w", err))
		}
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// Shown without what may be a secret.
			shown := fmt.Sprintf("%q", store.RedactString(o.Endpoint))
			if strings.Contains(o.Endpoint, "@") {
				shown = "(not shown: it contains an @)"
			}
			errs = append(errs, fmt.Errorf("endpoint %s: want http://host:port or https://host", shown))
		} else if u.User != nil {
			errs = append(errs, errors.New("endpoint: credentials in the endpoint are not accepted; use the AWS environment variables or config files"))
		} else if u.RawQuery != "" || u.Fragment != "" {
			// The SDK repeats an endpoint in its errors, secrets included.
			errs = append(errs, fmt.Errorf("endpoint %s: want http://host:port or https://host, without a query or fragment", store.RedactString(o.Endpoint)))
		}
	}
	if o.RequestTimeout < 0 || o.MaxRetryTime < 0 {
		errs = append(errs, errors.New("request_timeout and max_retry_time must be positive"))
	}
	if o.MaxAttempts < 1 {
		errs = append(errs, errors.New("max_attempts must be at least 1"))
	}
	if o.PartSize < MinPartSize {
		errs = append(errs, fmt.Errorf("part_size %d is below S3's minimum of %d bytes (5 MiB)", o.PartSize, MinPartSize))
	}
	if o.Concurrency < 1 {
		errs = append(errs, errors.New("concurrency must be at least 1"))
	}
	if o.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("lease_ttl %s is below one second (S3 times objects to the second)", o.LeaseTTL))
	}
	if o.LeaseRenew <= 0 || o.LeaseRenew >= o.LeaseTTL {
		errs = append(errs, fmt.Errorf("lease_renew %s must be positive and less than lease_ttl %s", o.LeaseRenew, o.LeaseTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	return nil
}

// ErrBadOptions: the store's options or URL are invalid.
var ErrBadOptions = errors.New("invalid S3 store options")

// queryParams are the URL query parameters OptionsFromURL understands.
var queryParams = []string{
	"endpoint", "region", "path_style", "profile",
	"request_timeout", "max_attempts", "max_retry_time",
	"part_size", "concurrency", "lease_ttl", "lease_renew", "locking",
	"instance_metadata", "lock_wait",
}

// OptionsFromURL reads Options from a store address of the form
//
//	s3://bucket/prefix?endpoint=http://host:port&region=...&path_style=true
//
// The query parameters are the lower-case, underscored names of the
// Options fields: endpoint, region, path_style, profile, request_timeout,
// max_attempts, max_retry_time, part_size (bytes, or with a KiB/MiB/GiB
// suffix), concurrency, lease_ttl, lease_renew (Go durations such as 30s),
// locking=external for ExternalLocking, instance_metadata=true for
// InstanceMetadata and lock_wait=false for NoLockWait. Credentials are never read
// from the URL.
func OptionsFromURL(loc store.Location) (Options, error) {
	var o Options
	if loc.Scheme != "s3" || loc.URL == nil {
		return o, fmt.Errorf("%w: %s is not an s3:// address", ErrBadOptions, loc)
	}
	if loc.URL.User != nil {
		return o, fmt.Errorf("%w: credentials in the URL are not accepted; use the AWS environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or AWS_PROFILE", ErrBadOptions)
	}
	o.Bucket = loc.URL.Host
	o.Prefix = loc.Path
	var errs []error
	q := loc.URL.Query()
	for k := range q {
		if !slices.Contains(queryParams, k) {
			errs = append(errs, fmt.Errorf("unknown parameter %q (known: %s)", k, strings.Join(queryParams, ", ")))
		}
	}
	str := func(k string) string { return q.Get(k) }
	dur := func(k string, dst *time.Duration) {
		if v := q.Get(k); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a positive duration such as 30s", k, v))
			}
			*dst = d
		}
	}
	num := func(k string, dst *int) {
		if v := q.Get(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a positive whole number", k, v))
			}
			*dst = n
		}
	}
	o.Endpoint = str("endpoint")
	o.Region = str("region")
	o.Profile = str("profile")
	if v := q.Get("path_style"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("path_style=%q: want true or false", v))
		}
		o.PathStyle = b
	}
	dur("request_timeout", &o.RequestTimeout)
	dur("max_retry_time", &o.MaxRetryTime)
	dur("lease_ttl", &o.LeaseTTL)
	dur("lease_renew", &o.LeaseRenew)
	num("max_attempts", &o.MaxAttempts)
	num("concurrency", &o.Concurrency)
	if v := q.Get("part_size"); v != "" {
		n, err := parseSize(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("part_size=%q: %v", v, err))
		}
		o.PartSize = n
	}
	if v := q.Get("lock_wait"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("lock_wait=%q: want true or false", v))
		}
		o.NoLockWait = !b
	}
	if v := q.Get("instance_metadata"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("instance_metadata=%q: want true or false", v))
		}
		o.InstanceMetadata = b
	}
	switch v := q.Get("locking"); v {
	case "", "s3":
	case "external":
		o.ExternalLocking = true
	default:
		errs = append(errs, fmt.Errorf("locking=%q: want s3 (the default) or external", v))
	}
	if err := errors.Join(errs...); err != nil {
		return Options{}, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	return o, nil
}

// parseSize reads a byte count: digits, optionally followed by KiB, MiB or
// GiB.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, errors.New("want a positive size in bytes, or with a KiB, MiB or GiB suffix")
	}
	return n * mult, nil
}

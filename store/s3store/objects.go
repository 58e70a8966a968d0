package s3store

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckptdev/ckpt/store"
)

// The exported pieces below let the packages that read a job's inputs
// from S3 and write its outputs there (not checkpoints: see s3io) share
// the store's URL parameters, client, retry policy and resuming reader
// instead of building their own.

// OpenObjectURL opens the bucket of an object address,
//
//	s3://bucket/key?endpoint=http://host:port&region=...&path_style=true
//
// with the query parameters of OptionsFromURL, and returns the key: the
// address's path without its leading slash (which may be a pattern; it
// is not checked here). The store's prefix is the bucket's root.
func OpenObjectURL(ctx context.Context, raw string, log *slog.Logger) (*Store, string, error) {
	loc, err := store.ParseURL(raw)
	if err != nil {
		return nil, "", err
	}
	if loc.Scheme != "s3" {
		return nil, "", fmt.Errorf("%w: %s is not an s3:// address", ErrBadOptions, loc)
	}
	key := strings.TrimPrefix(loc.URL.Path, "/")
	if key == "" {
		return nil, "", fmt.Errorf("%w: %s names no object (use s3://bucket/key)", ErrBadOptions, loc)
	}
	loc.Path = ""
	opts, err := OptionsFromURL(loc)
	if err != nil {
		return nil, "", fmt.Errorf("s3store: %w", err)
	}
	opts.Logger = log
	s, err := Open(ctx, opts)
	if err != nil {
		return nil, "", err
	}
	return s, key, nil
}

// Client returns the store's S3 client. It retries nothing itself: wrap
// its calls in Do.
func (s *Store) Client() *s3.Client { return s.client }

// Bucket returns the store's bucket.
func (s *Store) Bucket() string { return s.opts.Bucket }

// PartSize returns the part size of the store's multipart uploads.
func (s *Store) PartSize() int64 { return s.opts.PartSize }

// Concurrency returns the number of parts of one upload in flight.
func (s *Store) Concurrency() int { return s.opts.Concurrency }

// Logger returns the store's logger.
func (s *Store) Logger() *slog.Logger { return s.log }

// Do runs fn under the store's retry policy (see the package
// documentation); op names the request in logs. A failure is wrapped with
// what was tried, where, and for errors a person must fix what to check;
// what names the object in it.
func (s *Store) Do(ctx context.Context, op, what string, fn func(ctx context.Context) error) error {
	if _, err := s.do(ctx, op, fn); err != nil {
		return s.fail(op, what, err)
	}
	return nil
}

// ErrorCode returns the S3 error code and HTTP status of an error
// answer within err, or a zero status if err holds none.
func ErrorCode(err error) (code string, status int) { return apiCode(err) }

// Describe renders an S3 error shortly, as "HTTP 404 NoSuchKey".
func Describe(err error) string { return describe(err) }

// CRC32C returns the CRC32C of b as the S3 checksum headers carry it.
func CRC32C(b []byte) string { return crcString(crc32.Checksum(b, castagnoli)) }

// UnsignedPayload leaves a request's body out of its signature (see
// write.go): for uploads whose body a CRC32C header protects.
var UnsignedPayload = unsignedPayload

// Abort removes an incomplete multipart upload; a missing one is not an
// error. What fails is logged: the parts are invisible.
func (s *Store) Abort(ctx context.Context, key, uploadID string) { s.abort(ctx, key, uploadID) }

// GetRange streams key from byte off to its end, which must be size, of
// the version whose ETag is etag (If-Match): a connection that breaks
// mid-read is resumed with a new ranged request from the byte it
// stopped at, and an object replaced meanwhile fails the read. An
// offset at the end gives an empty reader.
func (s *Store) GetRange(ctx context.Context, key, etag string, off, size int64) (io.ReadCloser, error) {
	if off >= size {
		return io.NopCloser(strings.NewReader("")), nil
	}
	if etag == "" {
		return nil, errors.New("s3store: a ranged read needs the object's ETag")
	}
	r := &reader{s: s, ctx: ctx, name: key, key: key, crc: crc32.New(castagnoli), start: time.Now(),
		etag: etag, size: size, off: off}
	if err := r.open(); err != nil {
		return nil, s.fail("get", key, err)
	}
	return r, nil
}

// HeadObject returns key's metadata, or an error matching
// store.ErrNotFound.
func (s *Store) HeadObject(ctx context.Context, key string) (*s3.HeadObjectOutput, error) {
	out, err := s.head(ctx, key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, s.fail("head", key, err)
	}
	return out, nil
}

// ListKeys returns the objects whose keys start with prefix, in key
// order, all pages of them.
func (s *Store) ListKeys(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var objs []ObjectInfo
	var token *string
	seen := make(map[string]bool)
	for {
		var out *s3.ListObjectsV2Output
		_, err := s.do(ctx, "ListObjectsV2", func(ctx context.Context) error {
			var err error
			out, err = s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
				Bucket: aws.String(s.opts.Bucket), Prefix: aws.String(prefix), ContinuationToken: token,
				MaxKeys: pageSize(s.listPage),
			})
			return err
		})
		if err != nil {
			return nil, s.fail("list", fmt.Sprintf("%q", prefix), err)
		}
		for _, o := range out.Contents {
			objs = append(objs, ObjectInfo{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag)})
		}
		if !aws.ToBool(out.IsTruncated) {
			return objs, nil
		}
		next := aws.ToString(out.NextContinuationToken)
		if next == "" || seen[next] {
			return nil, s.fail("list", fmt.Sprintf("%q", prefix), fmt.Errorf("the listing is truncated after %d keys without a new continuation token", len(objs)))
		}
		seen[next] = true
		token = out.NextContinuationToken
	}
}

// ObjectInfo is an object of a listing.
type ObjectInfo struct {
	Key  string
	Size int64
	ETag string
}

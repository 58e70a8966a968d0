package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// ErrNoConditionalWrites: the service ignores or refuses the conditional
// writes that Create and Lock need (If-None-Match, If-Match). Use a
// service that has them, or guarantee a single writer by other means and
// set Options.ExternalLocking (locking=external in the URL).
var ErrNoConditionalWrites = errors.New("the service does not support conditional writes")

// condProbe remembers whether the service honours conditional writes.
type condProbe struct {
	mu  sync.Mutex
	ok  bool
	err error // the service lacks them: final
}

// conditional checks once per store, before the first Create or Lock,
// that the service honours the conditions they rely on. A service that
// ignored If-None-Match would let two writers both "create" the same
// checkpoint, each believing it alone succeeded; the store refuses to
// pretend instead.
func (s *Store) conditional(ctx context.Context) error {
	if s.opts.ExternalLocking {
		return nil
	}
	s.cond.mu.Lock()
	defer s.cond.mu.Unlock()
	if s.cond.ok {
		return nil
	}
	if s.cond.err != nil {
		return s.cond.err
	}
	lacking, err := s.probe(ctx)
	if err != nil {
		return fmt.Errorf("check that the service supports conditional writes (%s): %w", s.where, err)
	}
	if lacking != "" {
		s.cond.err = fmt.Errorf("%w: %s (%s); without them two writers could both commit. "+
			"Use a service that has them (AWS S3 and versitygw do, as do recent MinIO releases), "+
			"or guarantee a single writer yourself and add locking=external to the store URL",
			ErrNoConditionalWrites, lacking, s.where)
		return s.cond.err
	}
	s.cond.ok = true
	return nil
}

// probe tries each condition on a scratch object and reports the first
// one the service does not honour ("" if it honours all), or an error if
// the service could not be asked.
func (s *Store) probe(ctx context.Context) (lacking string, err error) {
	key := s.root + probeDir + newID()
	bucket := aws.String(s.opts.Bucket)
	defer func() {
		ctx := context.WithoutCancel(ctx)
		s.doN(ctx, "DeleteObject", 3, func(ctx context.Context) error {
			_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: aws.String(key)})
			return err
		})
	}()
	put := func(body string, ifNoneMatch, ifMatch *string) error {
		_, err := s.do(ctx, "PutObject", func(ctx context.Context) error {
			_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
				Bucket: bucket, Key: aws.String(key), Body: bytes.NewReader([]byte(body)),
				IfNoneMatch: ifNoneMatch, IfMatch: ifMatch,
			})
			return err
		})
		return err
	}
	// refused classifies the answer to a write that must be refused: nil
	// if it was refused with 412, else what is lacking or the error.
	refused := func(err error, what string) (string, error) {
		_, status := apiCode(err)
		switch {
		case err == nil:
			return what + " is ignored", nil
		case status == http.StatusPreconditionFailed:
			return "", nil
		case status >= 400 && status < 500 && status != http.StatusForbidden, status == http.StatusNotImplemented:
			return what + " is refused (" + describe(err) + ")", nil
		}
		return "", err
	}

	if err := put("1", aws.String("*"), nil); err != nil {
		if lacking, err := refused(err, "If-None-Match: * on PutObject"); lacking != "" || err != nil {
			return lacking, err
		}
		return "", fmt.Errorf("If-None-Match: * on a new object was refused: %w", err)
	}
	if lacking, err := refused(put("2", aws.String("*"), nil), "If-None-Match: * on PutObject"); lacking != "" || err != nil {
		return lacking, err
	}
	if lacking, err := refused(put("3", nil, aws.String(`"00000000000000000000000000000000"`)), "If-Match on PutObject"); lacking != "" || err != nil {
		return lacking, err
	}

	var up *s3.CreateMultipartUploadOutput
	if _, err := s.do(ctx, "CreateMultipartUpload", func(ctx context.Context) error {
		var err error
		up, err = s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String(key)})
		return err
	}); err != nil {
		return "", err
	}
	defer s.abort(ctx, key, aws.ToString(up.UploadId))
	var part *s3.UploadPartOutput
	if _, err := s.do(ctx, "UploadPart", func(ctx context.Context) error {
		var err error
		part, err = s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: bucket, Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(1),
			Body: bytes.NewReader([]byte("4")),
		})
		return err
	}); err != nil {
		return "", err
	}
	_, err = s.do(ctx, "CompleteMultipartUpload", func(ctx context.Context) error {
		_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: bucket, Key: aws.String(key), UploadId: up.UploadId, IfNoneMatch: aws.String("*"),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}},
		})
		return err
	})
	return refused(err, "If-None-Match: * on CompleteMultipartUpload")
}

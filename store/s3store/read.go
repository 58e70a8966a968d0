package s3store

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ckptdev/ckpt/store"
)

// ErrChecksum: an object's bytes do not match the checksum stored with
// it: the object was damaged at rest or on the way.
var ErrChecksum = fmt.Errorf("%w: checksum mismatch", store.ErrCorrupt)

// checksumMode asks the service for the object's stored checksum headers.
// It is set as a plain header, not GetObjectInput.ChecksumMode, which
// would make the SDK verify the body too: the store verifies it itself
// (for single-PUT objects on services without checksums as well) and
// once is enough.
var checksumMode = s3.WithAPIOptions(smithyhttp.SetHeaderValue("x-amz-checksum-mode", "ENABLED"))

// Get opens name for reading. The reader verifies the object's CRC32C
// when it reaches the end and then fails with ErrChecksum on a mismatch,
// so a caller that reads to io.EOF has read exactly the bytes written. A
// connection that fails mid-read is resumed where it broke, from the same
// version of the object (If-Match on its ETag); a download that stalls for
// RequestTimeout counts as failed.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	r := &reader{s: s, ctx: ctx, name: name, key: key, crc: crc32.New(castagnoli), start: time.Now()}
	if err := r.open(); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("s3store: get %s: %w", name, store.ErrNotFound)
		}
		return nil, s.fail("get", name, err)
	}
	return r, nil
}

// reader streams one object, verifying its checksum.
type reader struct {
	s     *Store
	ctx   context.Context
	name  string
	key   string
	start time.Time

	etag string
	size int64
	want string // expected CRC32C, "" if the object has none we can check
	crc  hash.Hash32
	off  int64

	body     io.ReadCloser
	cancel   context.CancelFunc
	idle     *time.Timer
	mu       sync.Mutex
	timedOut bool
	reopens  int

	err error // sticky
}

// open sends the first GET, or after a failure a ranged one from r.off.
func (r *reader) open() error {
	s := r.s
	in := &s3.GetObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(r.key)}
	if r.etag != "" {
		in.IfMatch = aws.String(r.etag)
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", r.off))
	}
	var out *s3.GetObjectOutput
	var cancel context.CancelFunc
	_, err := s.do(r.ctx, "GetObject", func(actx context.Context) error {
		// The body outlives the attempt's context, so the request runs in
		// a context of its own that the idle timer or Close cancels; the
		// attempt's deadline covers the wait for the headers only.
		rctx, rcancel := context.WithCancel(r.ctx)
		stop := context.AfterFunc(actx, rcancel)
		o, err := s.client.GetObject(rctx, in, checksumMode)
		if !stop() && err == nil {
			// The attempt ended as the answer came: drop it.
			o.Body.Close()
			err = context.Cause(actx)
		}
		if err != nil {
			rcancel()
			return err
		}
		out, cancel = o, rcancel
		return nil
	})
	if err != nil {
		code, status := apiCode(err)
		switch {
		case status == http.StatusNotFound && r.etag == "":
			return fmt.Errorf("%s: %w", r.key, store.ErrNotFound)
		case status == http.StatusPreconditionFailed || status == http.StatusNotFound || code == "NoSuchKey":
			return fmt.Errorf("%s was replaced or deleted during the read (at byte %d of %d): %w", r.name, r.off, r.size, err)
		}
		return err
	}
	if r.etag == "" {
		r.etag = aws.ToString(out.ETag)
		r.size = aws.ToInt64(out.ContentLength)
		// A full-object checksum is the S3 one, else our metadata copy. A
		// composite one ("...-N", per part) cannot be checked without the
		// part sizes; the store writes full-object ones only.
		if c := aws.ToString(out.ChecksumCRC32C); c != "" && !strings.Contains(c, "-") {
			r.want = c
		} else if c := out.Metadata[metaCRC]; c != "" {
			r.want = c
		}
	}
	r.body, r.cancel = out.Body, cancel
	r.mu.Lock()
	r.timedOut = false
	r.mu.Unlock()
	r.idle = time.AfterFunc(s.opts.RequestTimeout, func() {
		r.mu.Lock()
		r.timedOut = true
		r.mu.Unlock()
		cancel()
	})
	return nil
}

func (r *reader) closeBody() {
	if r.body != nil {
		r.idle.Stop()
		r.body.Close()
		r.cancel()
		r.body = nil
	}
}

// Read reads the object, resuming after a broken connection.
func (r *reader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.body == nil {
			if err := r.reopen(); err != nil {
				r.err = r.s.fail("get", r.name, err)
				return 0, r.err
			}
		}
		n, err := r.body.Read(p)
		if n > 0 {
			r.idle.Reset(r.s.opts.RequestTimeout)
			r.crc.Write(p[:n])
			r.off += int64(n)
		}
		switch {
		case err == nil:
			return n, nil
		case r.off == r.size:
			// Every byte is here (the connection may have failed after
			// the last one): the checksum has the final word.
			r.closeBody()
			if r.want != "" {
				if got := crcString(r.crc.Sum32()); got != r.want {
					r.err = fmt.Errorf("s3store: get %s: %w: CRC32C of the %d bytes read is %s, the object's is %s", r.name, ErrChecksum, r.off, got, r.want)
					return n, r.err
				}
			}
			r.err = io.EOF
			return n, io.EOF
		case r.off > r.size:
			r.closeBody()
			r.err = fmt.Errorf("s3store: get %s: %w: more than the %d bytes announced", r.name, ErrChecksum, r.size)
			return n, r.err
		}
		// The connection broke, stalled or ended early: resume from r.off.
		r.mu.Lock()
		timedOut := r.timedOut
		r.mu.Unlock()
		r.closeBody()
		if r.ctx.Err() != nil {
			r.err = fmt.Errorf("s3store: get %s: %w", r.name, r.ctx.Err())
			return n, r.err
		}
		if timedOut {
			err = fmt.Errorf("%w (%s without a byte): %w", errAttemptTimeout, r.s.opts.RequestTimeout, err)
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.reopens++
		if !retryable(err, timedOut) || r.reopens >= r.s.opts.MaxAttempts || time.Since(r.start) > r.s.opts.MaxRetryTime {
			r.err = r.s.fail("get", r.name, &attemptError{attempts: r.reopens, elapsed: time.Since(r.start), err: err})
			return n, r.err
		}
		r.s.log.Debug("s3store: resuming a broken download", "key", r.key, "at", r.off, "err", describe(err))
		if n > 0 {
			return n, nil
		}
	}
}

func (r *reader) reopen() error {
	pause := backoff(r.reopens)
	t := time.NewTimer(pause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
	return r.open()
}

// Close ends the download.
func (r *reader) Close() error {
	r.closeBody()
	if r.err == nil {
		r.err = fmt.Errorf("s3store: get %s: read after Close: %w", r.name, store.ErrClosed)
	}
	return nil
}

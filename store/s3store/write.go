package s3store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/store"
)

// Object metadata the store writes (as x-amz-meta-*).
const (
	// metaCRC is the object's CRC32C, for services that do not keep the S3
	// checksum headers. Multipart objects cannot carry it: metadata is set
	// before their bytes are known.
	metaCRC = "ckpt-crc32c"
	// metaWrite is a random id of the write, so that a Create whose
	// acknowledgement was lost recognises its own object on the retry.
	metaWrite = "ckpt-write"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcString renders a CRC32C as the S3 checksum headers carry it.
func crcString(sum uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], sum)
	return base64.StdEncoding.EncodeToString(b[:])
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// unsignedPayload leaves the body out of the request signature: SigV4
// would otherwise hash every body with SHA-256 before sending it. The
// body is protected by its CRC32C header instead, which is signed and
// which the service checks.
var unsignedPayload = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

// Put writes name with the bytes of r, replacing any object of that name.
// The new object becomes visible whole, when the single PUT or the
// multipart upload completes; a failed Put leaves the old one in place.
func (s *Store) Put(ctx context.Context, name string, r io.Reader) error {
	return s.write(ctx, "put", name, r, false)
}

// Create is Put that fails with store.ErrExist if name exists, decided by
// the service in the same step as the write (If-None-Match: *).
func (s *Store) Create(ctx context.Context, name string, r io.Reader) error {
	return s.write(ctx, "create", name, r, true)
}

func (s *Store) write(ctx context.Context, op, name string, r io.Reader, create bool) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3store: %s %s: %w", op, name, err)
	}
	if create {
		if err := s.conditional(ctx); err != nil {
			return fmt.Errorf("s3store: %s %s: %w", op, name, err)
		}
		if s.opts.ExternalLocking {
			// Not atomic: the caller guarantees that nobody else writes.
			if _, err := s.head(ctx, key); err == nil {
				return fmt.Errorf("s3store: %s %s: %w", op, name, store.ErrExist)
			} else if !errors.Is(err, store.ErrNotFound) {
				return s.fail(op, name, err)
			}
		}
	}
	// Under ExternalLocking the write carries no condition: the services
	// that need it may refuse the header outright (501 NotImplemented).
	w := &upload{s: s, op: op, name: name, key: key, create: create && !s.opts.ExternalLocking, id: newID()}

	// A reader that knows its length (the engine's bytes.Reader) gets a
	// buffer of exactly that size if it fits one PUT; others a part buffer.
	src := &partSource{r: r}
	var buf []byte
	if l, ok := r.(interface{ Len() int }); ok && int64(l.Len()) < s.opts.PartSize {
		buf = make([]byte, l.Len())
	} else {
		buf = s.getBuf()
	}
	n, more, err := src.next(buf)
	if err == nil && more && int64(len(buf)) < s.opts.PartSize {
		// The length was short of the truth: go on in a part buffer.
		b := s.getBuf()
		copy(b, buf[:n])
		buf = b
		n, more, err = src.fill(buf, n)
	}
	if err != nil {
		s.putBuf(buf)
		return fmt.Errorf("s3store: %s %s: read the input: %w", op, name, err)
	}
	if !more {
		err := w.single(ctx, buf[:n])
		if err == nil {
			// Only then is the HTTP client surely done with the buffer: an
			// attempt cut off may still be sending from it for a moment.
			s.putBuf(buf)
		}
		return err
	}
	return w.multipart(ctx, buf[:n], src)
}

func (s *Store) getBuf() []byte {
	if b, ok := s.bufs().Get().(*[]byte); ok {
		return (*b)[:s.opts.PartSize]
	}
	return make([]byte, s.opts.PartSize)
}

func (s *Store) putBuf(b []byte) {
	if int64(cap(b)) == s.opts.PartSize {
		b = b[:0]
		s.bufs().Put(&b)
	}
}

var bufPools sync.Map // part size to *sync.Pool

func (s *Store) bufs() *sync.Pool {
	p, _ := bufPools.LoadOrStore(s.opts.PartSize, &sync.Pool{})
	return p.(*sync.Pool)
}

// partSource cuts a reader into parts, looking one byte ahead so that it
// knows whether a full part is the last one.
type partSource struct {
	r    io.Reader
	peek [1]byte
	has  bool
}

// next fills buf from the start.
func (p *partSource) next(buf []byte) (n int, more bool, err error) {
	return p.fill(buf, 0)
}

// fill fills buf[from:] and reports how much of buf holds data and
// whether the input goes on after it.
func (p *partSource) fill(buf []byte, from int) (n int, more bool, err error) {
	n = from
	if p.has && n < len(buf) {
		buf[n] = p.peek[0]
		n++
		p.has = false
	}
	m, err := io.ReadFull(p.r, buf[n:])
	n += m
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return n, false, nil
	case err != nil:
		return n, false, err
	}
	k, err := io.ReadFull(p.r, p.peek[:])
	switch {
	case k == 1:
		p.has = true
		return n, true, nil
	case err == io.EOF:
		return n, false, nil
	}
	return n, false, err
}

// upload is one Put or Create.
type upload struct {
	s      *Store
	op     string
	name   string
	key    string
	create bool
	id     string // metaWrite
}

// single writes data with one PUT.
func (w *upload) single(ctx context.Context, data []byte) error {
	s := w.s
	sum := crcString(crc32.Checksum(data, castagnoli))
	attempts, err := s.do(ctx, "PutObject", func(ctx context.Context) error {
		in := &s3.PutObjectInput{
			Bucket:         aws.String(s.opts.Bucket),
			Key:            aws.String(w.key),
			Body:           bytes.NewReader(data),
			ContentLength:  aws.Int64(int64(len(data))),
			ChecksumCRC32C: aws.String(sum),
			Metadata:       map[string]string{metaCRC: sum, metaWrite: w.id},
		}
		if w.create {
			in.IfNoneMatch = aws.String("*")
		}
		_, err := s.client.PutObject(ctx, in, unsignedPayload)
		return err
	})
	if err != nil {
		return w.failed(ctx, attempts, err)
	}
	return nil
}

// failed turns the error of the write's last request into the caller's
// error. After a retry, a refused condition (Create) or an upload that is
// gone (Put and Create: a completed upload no longer exists) may be our
// own earlier attempt that landed with its answer lost: the object's
// write id tells, and then the write succeeded.
func (w *upload) failed(ctx context.Context, attempts int, err error) error {
	code, status := apiCode(err)
	conflict := w.create && (status == http.StatusPreconditionFailed || code == "ConditionalRequestConflict")
	if conflict && status == http.StatusPreconditionFailed && attempts <= 1 {
		return fmt.Errorf("s3store: %s %s: %w", w.op, w.name, store.ErrExist)
	}
	if conflict || code == "NoSuchUpload" && attempts > 1 {
		head, herr := w.s.head(context.WithoutCancel(ctx), w.key)
		switch {
		case herr == nil && head.Metadata[metaWrite] == w.id:
			return nil
		case herr == nil && w.create:
			return fmt.Errorf("s3store: %s %s: %w", w.op, w.name, store.ErrExist)
		}
	}
	return w.s.fail(w.op, w.name, err)
}

// multipart writes first and the rest of src as a multipart upload. At
// most Concurrency parts are in flight, each in its own buffer; the
// object appears when CompleteMultipartUpload succeeds, and on any
// failure the upload is aborted.
func (w *upload) multipart(ctx context.Context, first []byte, src *partSource) error {
	s := w.s
	var created *s3.CreateMultipartUploadOutput
	_, err := s.do(ctx, "CreateMultipartUpload", func(ctx context.Context) error {
		var err error
		created, err = s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket:            aws.String(s.opts.Bucket),
			Key:               aws.String(w.key),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
			ChecksumType:      types.ChecksumTypeFullObject,
			Metadata:          map[string]string{metaWrite: w.id},
		})
		return err
	})
	if err != nil {
		s.putBuf(first)
		return s.fail(w.op, w.name, err)
	}
	uploadID := aws.ToString(created.UploadId)
	done := false
	defer func() {
		if !done {
			s.abort(ctx, w.key, uploadID)
		}
	}()

	// Concurrency workers each take the next part of the input, in
	// order, and upload it: at most Concurrency buffers are in use, one
	// per worker, whether it is filling or uploading.
	g, gctx := errgroup.WithContext(ctx)
	var (
		mu      sync.Mutex // guards the input side below and parts
		pending = first    // the part read before the upload began
		num     int32
		more    = true
		parts   []types.CompletedPart
	)
	full := crc32.New(castagnoli)
	next := func() (int32, []byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if pending != nil {
			buf := pending
			pending = nil
			num++
			full.Write(buf)
			return num, buf, nil
		}
		if !more {
			return 0, nil, nil
		}
		if err := gctx.Err(); err != nil {
			return 0, nil, err
		}
		if num == maxParts {
			return 0, nil, fmt.Errorf("the object has more than %d parts of %d bytes: raise part_size", maxParts, s.opts.PartSize)
		}
		buf := s.getBuf()
		n, m, err := src.next(buf[:s.opts.PartSize])
		if err != nil {
			s.putBuf(buf)
			return 0, nil, fmt.Errorf("read the input: %w", err)
		}
		more = m
		num++
		full.Write(buf[:n])
		return num, buf[:n], nil
	}
	for range s.opts.Concurrency {
		g.Go(func() error {
			for {
				n, buf, err := next()
				if err != nil || buf == nil {
					return err
				}
				part, err := w.part(gctx, uploadID, n, buf)
				if err != nil {
					// The HTTP transport may still read a body whose
					// request failed: the buffer is not reused.
					return err
				}
				s.putBuf(buf)
				mu.Lock()
				parts = append(parts, part)
				mu.Unlock()
			}
		})
	}
	err = g.Wait()
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("s3store: %s %s: %w", w.op, w.name, cerr)
	}
	if err != nil {
		// The first error; the parts it cancelled failed after it.
		return w.s.fail(w.op, w.name, err)
	}

	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber)) })
	sum := crcString(full.Sum32())
	attempts, err := s.do(ctx, "CompleteMultipartUpload", func(ctx context.Context) error {
		in := &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(s.opts.Bucket),
			Key:             aws.String(w.key),
			UploadId:        aws.String(uploadID),
			ChecksumCRC32C:  aws.String(sum),
			ChecksumType:    types.ChecksumTypeFullObject,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		}
		if w.create {
			in.IfNoneMatch = aws.String("*")
		}
		_, err := s.client.CompleteMultipartUpload(ctx, in)
		return err
	})
	if err != nil {
		if code, _ := apiCode(err); code == "NoSuchUpload" {
			done = true // nothing left to abort
		}
		err = w.failed(ctx, attempts, err)
		if err == nil {
			done = true
		}
		return err
	}
	done = true
	return nil
}

// part uploads one part with its CRC32C.
func (w *upload) part(ctx context.Context, uploadID string, num int32, data []byte) (types.CompletedPart, error) {
	s := w.s
	sum := crcString(crc32.Checksum(data, castagnoli))
	var out *s3.UploadPartOutput
	_, err := s.do(ctx, "UploadPart", func(ctx context.Context) error {
		var err error
		out, err = s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:         aws.String(s.opts.Bucket),
			Key:            aws.String(w.key),
			UploadId:       aws.String(uploadID),
			PartNumber:     aws.Int32(num),
			Body:           bytes.NewReader(data),
			ContentLength:  aws.Int64(int64(len(data))),
			ChecksumCRC32C: aws.String(sum),
		}, unsignedPayload)
		return err
	})
	if err != nil {
		return types.CompletedPart{}, fmt.Errorf("part %d: %w", num, err)
	}
	return types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumCRC32C: aws.String(sum)}, nil
}

// abort removes an incomplete upload, even when ctx is cancelled: the
// parts are invisible but take space. What fails here stays invisible
// until a lifecycle rule removes it.
func (s *Store) abort(ctx context.Context, key, uploadID string) {
	ctx = context.WithoutCancel(ctx)
	_, err := s.doN(ctx, "AbortMultipartUpload", 3, func(ctx context.Context) error {
		_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.opts.Bucket), Key: aws.String(key), UploadId: aws.String(uploadID),
		})
		if code, _ := apiCode(err); code == "NoSuchUpload" {
			return nil
		}
		return err
	})
	if err != nil {
		s.log.Warn("s3store: could not abort an incomplete upload; its parts stay invisible until a bucket lifecycle rule removes them",
			"key", key, "upload", uploadID, "err", describe(err))
	}
}

// head returns the metadata of key, or an error wrapping store.ErrNotFound.
func (s *Store) head(ctx context.Context, key string) (*s3.HeadObjectOutput, error) {
	var out *s3.HeadObjectOutput
	_, err := s.do(ctx, "HeadObject", func(ctx context.Context) error {
		var err error
		out, err = s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(key)})
		return err
	})
	if _, status := apiCode(err); status == http.StatusNotFound {
		return nil, fmt.Errorf("%s: %w", key, store.ErrNotFound)
	}
	return out, err
}

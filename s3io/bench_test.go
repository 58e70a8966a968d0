package s3io_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"hash"
	"hash/crc32"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/s3io"
	"github.com/ckptdev/ckpt/store/s3store"
)

// BenchmarkS3Output writes 128 MiB of lines (records of about 40 bytes)
// to an object through the S3 output, with a checkpoint at the end only
// and with one every 8 MiB, next to a plain multipart upload of the same
// bytes through the same client: the same part size (16 MiB), the same
// two parts in flight, the same CRC32C header on every part. The service
// is versitygw on loopback, with its posix backend on TMPDIR: the numbers
// show the sink's and the protocol's own cost, not a network's. The
// section "S3 output" of docs/BENCHMARKS.md (scripts/bench.sh s3io).
func BenchmarkS3Output(b *testing.B) {
	const size = 128 << 20
	bucket := testenv.S3(b)
	for _, kv := range bucket.Env() {
		k, v, _ := cutEnv(kv)
		b.Setenv(k, v)
	}
	data := text("bench", size)
	url := func(key string) string { return bucket.URL(key, "part_size=16MiB", "concurrency=2") }
	st, _, err := s3store.OpenObjectURL(context.Background(), url("x"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	del := func(key string) {
		st.Client().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket.Bucket), Key: aws.String(key)})
	}

	b.Run("way=plain", func(b *testing.B) {
		b.SetBytes(size)
		i := 0
		for b.Loop() {
			key := fmt.Sprintf("plain-%d", i)
			i++
			p, err := newPlainUpload(b.Context(), st, key, 16<<20)
			if err != nil {
				b.Fatal(err)
			}
			if err := writeRecords(data, p, 0, nil); err != nil {
				b.Fatal(err)
			}
			if err := p.complete(); err != nil {
				b.Fatal(err)
			}
			del(key)
		}
	})
	for _, every := range []int{0, 8 << 20} {
		name := "way=ckpt"
		if every > 0 {
			name = fmt.Sprintf("way=ckpt-every-%dMiB", every>>20)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(size)
			i := 0
			for b.Loop() {
				key := fmt.Sprintf("ckpt-%d-%d", every, i)
				i++
				w, err := s3io.Output{URL: url(key), Logger: slog.New(slog.DiscardHandler)}.Open(b.Context(), nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				err = writeRecords(data, w, every, func() error {
					if _, err := w.Flush(); err != nil {
						return err
					}
					return w.Sync(b.Context())
				})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Flush(); err != nil {
					b.Fatal(err)
				}
				if err := w.Sync(b.Context()); err != nil {
					b.Fatal(err)
				}
				if err := w.Complete(b.Context()); err != nil {
					b.Fatal(err)
				}
				w.Close()
				del(key)
			}
		})
	}
}

func cutEnv(kv string) (string, string, bool) {
	for i := range len(kv) {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// recordWriter is what writeRecords writes to.
type recordWriter interface {
	Buffered() []byte
	Commit([]byte) error
}

// writeRecords writes data a line at a time, as a conversion does, and
// calls checkpoint after every every bytes (never if every is 0).
func writeRecords(data []byte, w recordWriter, every int, checkpoint func() error) error {
	next := every
	for off := 0; off < len(data); {
		end := len(data)
		if j := bytes.IndexByte(data[off:min(len(data), off+4096)], '\n'); j >= 0 {
			end = off + j + 1
		}
		if err := w.Commit(append(w.Buffered(), data[off:end]...)); err != nil {
			return err
		}
		off = end
		if every > 0 && off >= next {
			next += every
			if err := checkpoint(); err != nil {
				return err
			}
		}
	}
	return nil
}

// plainUpload is a multipart upload as a program without ckpt would
// write its output: a buffer of partSize uploaded as a part whenever it
// is full, two parts in flight, each with its CRC32C, and the object
// completed at the end, created only if absent.
type plainUpload struct {
	ctx      context.Context
	c        *s3.Client
	bucket   *string
	key      string
	id       *string
	partSize int
	buf      []byte
	g        *errgroup.Group
	parts    []types.CompletedPart
	crc      hash.Hash32
}

func newPlainUpload(ctx context.Context, st *s3store.Store, key string, partSize int) (*plainUpload, error) {
	c := st.Client()
	bucket := aws.String(st.Bucket())
	created, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String(key),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c, ChecksumType: types.ChecksumTypeFullObject})
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	return &plainUpload{ctx: gctx, c: c, bucket: bucket, key: key, id: created.UploadId, partSize: partSize,
		buf: make([]byte, 0, partSize+partSize/8), g: g, crc: crc32.New(crc32.MakeTable(crc32.Castagnoli))}, nil
}

func (p *plainUpload) Buffered() []byte { return p.buf }

func (p *plainUpload) Commit(b []byte) error {
	p.buf = b
	if len(p.buf) >= p.partSize {
		p.upload()
	}
	return nil
}

func (p *plainUpload) upload() {
	part := p.buf
	p.buf = make([]byte, 0, p.partSize+p.partSize/8)
	i := len(p.parts)
	p.parts = append(p.parts, types.CompletedPart{})
	p.crc.Write(part) // the whole object's CRC32C, for the end
	p.g.Go(func() error {
		sum := s3store.CRC32C(part)
		out, err := p.c.UploadPart(p.ctx, &s3.UploadPartInput{Bucket: p.bucket, Key: aws.String(p.key), UploadId: p.id,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part))),
			ChecksumCRC32C: aws.String(sum)}, s3store.UnsignedPayload)
		if err != nil {
			return err
		}
		p.parts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag, ChecksumCRC32C: aws.String(sum)}
		return nil
	})
}

func (p *plainUpload) complete() error {
	if len(p.buf) > 0 {
		p.upload()
	}
	if err := p.g.Wait(); err != nil {
		return err
	}
	_, err := p.c.CompleteMultipartUpload(context.Background(), &s3.CompleteMultipartUploadInput{Bucket: p.bucket, Key: aws.String(p.key), UploadId: p.id,
		ChecksumType: types.ChecksumTypeFullObject, ChecksumCRC32C: aws.String(base64.StdEncoding.EncodeToString(p.crc.Sum(nil))),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: p.parts}, IfNoneMatch: aws.String("*")})
	return err
}

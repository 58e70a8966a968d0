package s3store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/s3store"
)

// options returns the options of a store in bucket b under prefix.
func options(b testenv.S3Bucket, prefix string) s3store.Options {
	return s3store.Options{
		Bucket:      b.Bucket,
		Prefix:      prefix,
		Endpoint:    b.Endpoint,
		Region:      b.Region,
		PathStyle:   true,
		Credentials: b.Credentials(),
		Logger:      slog.New(slog.DiscardHandler),
	}
}

// open opens a store with opts and closes it when the test ends.
func open(t testing.TB, opts s3store.Options) *s3store.Store {
	t.Helper()
	st, err := s3store.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("open the S3 store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// content returns n bytes derived from seed.
func content(seed string, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8(sha256.Sum256([]byte(seed))).Read(b)
	return b
}

// opaque hides a reader's length, as a stream from a pipe would.
func opaque(b []byte) io.Reader { return struct{ io.Reader }{bytes.NewReader(b)} }

func put(t *testing.T, st store.Store, name string, data []byte) {
	t.Helper()
	if err := st.Put(t.Context(), name, opaque(data)); err != nil {
		t.Fatalf("Put %s: %v", name, err)
	}
}

func read(ctx context.Context, st store.Store, name string) ([]byte, error) {
	rc, err := st.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func wantObject(t *testing.T, st store.Store, name string, want []byte) {
	t.Helper()
	got, err := read(t.Context(), st, name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get %s: %d bytes (sha256 %x), want the %d bytes written (sha256 %x)", name, len(got), sum(got), len(want), sum(want))
	}
}

func wantMissing(t *testing.T, st store.Store, name string) {
	t.Helper()
	if got, err := read(t.Context(), st, name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get %s: %d bytes, %v; want store.ErrNotFound", name, len(got), err)
	}
}

func sum(b []byte) []byte { s := sha256.Sum256(b); return s[:6] }

// crc32c renders the CRC32C of b as the S3 checksum headers do.
func crc32c(b []byte) string {
	var x [4]byte
	binary.BigEndian.PutUint32(x[:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	return base64.StdEncoding.EncodeToString(x[:])
}

// pendingUploads lists the incomplete multipart uploads in the bucket.
func pendingUploads(t *testing.T, b testenv.S3Bucket) []string {
	t.Helper()
	out, err := b.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(b.Bucket)})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

// logRecorder is a slog handler that keeps the messages logged, so that a
// test can wait for a retry or check that one happened.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
	seen  chan struct{} // signalled on every record
}

func newLogRecorder() *logRecorder { return &logRecorder{seen: make(chan struct{}, 1)} }

func (r *logRecorder) logger() *slog.Logger { return slog.New(r) }

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	select {
	case r.seen <- struct{}{}:
	default:
	}
	return nil
}

// count returns how many logged lines contain all of parts.
func (r *logRecorder) count(parts ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
next:
	for _, l := range r.lines {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		n++
	}
	return n
}

// waitFor waits until a line containing all of parts is logged, for at
// most 30 seconds.
func (r *logRecorder) waitFor(t *testing.T, parts ...string) {
	t.Helper()
	if !r.await(30*time.Second, parts...) {
		t.Fatalf("no log line with %q after 30s; the log:\n%s", parts, r)
	}
}

// await is waitFor for goroutines other than the test's, which must not
// call t.Fatal: it reports whether the line came within d.
func (r *logRecorder) await(d time.Duration, parts ...string) bool {
	deadline := time.After(d)
	for r.count(parts...) == 0 {
		select {
		case <-r.seen:
		case <-deadline:
			return false
		}
	}
	return true
}

func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/s3store"
)

// standIn is an S3 service of a few lines, for the behaviours of other
// services that no real server at hand shows: refusing conditional
// headers as S3 did before 2024, losing the answer to a
// CompleteMultipartUpload it applied, paging a listing wrongly. It keeps
// the metadata of objects and uploads, not their bytes.
type standIn struct {
	// refuseConditions answers 501 NotImplemented to every write with
	// If-None-Match or If-Match.
	refuseConditions bool
	// refuseChecksums answers 501 NotImplemented to every write with a
	// CRC32C checksum header.
	refuseChecksums bool
	// loseCompletion applies the first CompleteMultipartUpload and then
	// drops the connection instead of answering.
	loseCompletion bool
	// list answers ListObjectsV2, given the continuation token; nil
	// answers an empty listing.
	list func(token string) string

	mu          sync.Mutex
	objects     map[string]http.Header // key: its x-amz-meta-* headers
	uploads     map[string]http.Header // upload id: the same
	uploadSeq   int
	conditional int // writes seen with a condition
	completes   int // CompleteMultipartUpload requests seen
	refused     int // writes refused for their checksum
}

func (s *standIn) start(t *testing.T, mod func(*s3store.Options)) *s3store.Store {
	t.Helper()
	s.objects, s.uploads = map[string]http.Header{}, map[string]http.Header{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	o := s3store.Options{
		Bucket: "bkt", Endpoint: srv.URL, PathStyle: true, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""), Logger: slog.New(slog.DiscardHandler),
		PartSize: s3store.MinPartSize, RequestTimeout: 5 * time.Second, MaxRetryTime: 10 * time.Second,
	}
	if mod != nil {
		mod(&o)
	}
	return open(t, o)
}

func (s *standIn) counts() (conditional, completes, uploads int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conditional, s.completes, len(s.uploads)
}

func meta(h http.Header) http.Header {
	m := http.Header{}
	for k, v := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-meta-") {
			m[k] = v
		}
	}
	return m
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.WriteHeader(status)
	fmt.Fprintf(w, "<Error><Code>%s</Code><Message>%s</Message></Error>", code, code)
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	key, isObject := strings.CutPrefix(r.URL.Path, "/bkt/")
	q := r.URL.Query()
	cond := r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Match") != ""
	if cond && (r.Method == http.MethodPut || r.Method == http.MethodPost) {
		s.conditional++
		if s.refuseConditions {
			s3Error(w, http.StatusNotImplemented, "NotImplemented")
			return
		}
	}
	if s.refuseChecksums && r.Header.Get("X-Amz-Checksum-Crc32c") != "" {
		s.refused++
		s3Error(w, http.StatusNotImplemented, "NotImplemented")
		return
	}
	switch {
	case !isObject && r.Method == http.MethodGet && q.Get("list-type") == "2":
		body := "<ListBucketResult><Name>bkt</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>"
		if s.list != nil {
			body = s.list(q.Get("continuation-token"))
		}
		io.WriteString(w, body)
	case !isObject:
		w.WriteHeader(http.StatusOK) // the bucket exists
	case r.Method == http.MethodPut && q.Has("uploadId"):
		w.Header().Set("ETag", `"part"`)
	case r.Method == http.MethodPut:
		_, exists := s.objects[key]
		if exists && r.Header.Get("If-None-Match") == "*" || r.Header.Get("If-Match") != "" && (!exists || r.Header.Get("If-Match") != `"object"`) {
			s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		}
		s.objects[key] = meta(r.Header)
		w.Header().Set("ETag", `"object"`)
	case r.Method == http.MethodPost && q.Has("uploads"):
		s.uploadSeq++
		id := fmt.Sprint("upload-", s.uploadSeq)
		s.uploads[id] = meta(r.Header)
		fmt.Fprintf(w, "<InitiateMultipartUploadResult><Bucket>bkt</Bucket><Key>%s</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>", key, id)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		s.completes++
		m, ok := s.uploads[q.Get("uploadId")]
		if !ok {
			s3Error(w, http.StatusNotFound, "NoSuchUpload")
			return
		}
		if _, exists := s.objects[key]; exists && r.Header.Get("If-None-Match") == "*" {
			s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		}
		delete(s.uploads, q.Get("uploadId"))
		s.objects[key] = m
		if s.loseCompletion && s.completes == 1 {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		io.WriteString(w, `<CompleteMultipartUploadResult><ETag>"x-2"</ETag></CompleteMultipartUploadResult>`)
	case r.Method == http.MethodDelete:
		delete(s.uploads, q.Get("uploadId"))
		if !q.Has("uploadId") {
			delete(s.objects, key)
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodHead:
		m, ok := s.objects[key]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		for k, v := range m {
			w.Header()[k] = v
		}
		w.Header().Set("ETag", `"object"`)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// A service that answers conditional writes with 501 NotImplemented, as
// S3 did before 2024, lacks them: the store says so at once, without
// retrying an answer that cannot change, and remembers it. Told that the
// caller keeps to one writer (locking=external), it writes without
// conditions, which such a service accepts.
func TestConditionalWritesRefused(t *testing.T) {
	t.Parallel()
	big := content("big", s3store.MinPartSize+1000) // a multipart upload

	s := &standIn{refuseConditions: true}
	st := s.start(t, nil)
	for range 2 {
		err := st.Create(t.Context(), "obj", bytes.NewReader([]byte("x")))
		if !errors.Is(err, s3store.ErrNoConditionalWrites) || !strings.Contains(err.Error(), "locking=external") {
			t.Fatalf("Create on a service that refuses conditional writes: %v, want ErrNoConditionalWrites saying what to do", err)
		}
	}
	if _, err := st.Lock(t.Context(), "jobs/x/LOCK", owner(1)); !errors.Is(err, s3store.ErrNoConditionalWrites) {
		t.Fatalf("Lock on a service that refuses conditional writes: %v, want ErrNoConditionalWrites", err)
	}
	if n, _, _ := s.counts(); n != 1 {
		t.Errorf("the service got %d conditional writes, want 1: the first refusal is final and remembered", n)
	}

	s = &standIn{refuseConditions: true}
	st = s.start(t, func(o *s3store.Options) { o.ExternalLocking = true })
	if err := st.Create(t.Context(), "obj", bytes.NewReader([]byte("x"))); err != nil {
		t.Fatalf("Create with locking=external: %v", err)
	}
	if err := st.Create(t.Context(), "obj", bytes.NewReader([]byte("x"))); !errors.Is(err, store.ErrExist) {
		t.Fatalf("Create of an existing object with locking=external: %v, want store.ErrExist", err)
	}
	if err := st.Create(t.Context(), "big", opaque(big)); err != nil {
		t.Fatalf("multipart Create with locking=external: %v", err)
	}
	if n, _, _ := s.counts(); n != 0 {
		t.Errorf("the service got %d conditional writes with locking=external, want none", n)
	}

	// Any other feature the service lacks: one attempt, and a hint that
	// does not say to try again later.
	s = &standIn{refuseChecksums: true}
	st = s.start(t, nil)
	err := st.Put(t.Context(), "obj", bytes.NewReader([]byte("x")))
	if err == nil || !strings.Contains(err.Error(), "does not implement") || strings.Contains(err.Error(), "try again") {
		t.Fatalf("Put to a service that lacks checksum headers: %v, want an error saying it lacks a feature", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused != 1 {
		t.Errorf("the refused Put was sent %d times, want once", s.refused)
	}
}

// A multipart write whose CompleteMultipartUpload the service applied but
// whose answer was lost: the retry finds the upload gone. The object
// carries the write's id, so Put and Create both know they succeeded.
func TestLostCompletionAnswer(t *testing.T) {
	t.Parallel()
	data := content("lost answer", s3store.MinPartSize+1000)
	for _, op := range []string{"Put", "Create"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			s := &standIn{loseCompletion: true}
			st := s.start(t, nil)
			var err error
			if op == "Put" {
				err = st.Put(t.Context(), "obj", opaque(data))
			} else {
				err = st.Create(t.Context(), "obj", opaque(data))
			}
			if err != nil {
				t.Fatalf("%s whose completion landed with its answer lost: %v", op, err)
			}
			if _, completes, uploads := s.counts(); completes != 2 || uploads != 0 {
				t.Fatalf("%d completions and %d uploads left, want the lost one retried and none left", completes, uploads)
			}
		})
	}
}

// A listing the service says is truncated but gives no way to continue
// (no continuation token, or the same one again) fails: a partial list
// would hide the newest checkpoints and let retention delete blobs they
// use.
func TestListBrokenPaging(t *testing.T) {
	t.Parallel()
	page := func(truncated bool, token string) string {
		b := fmt.Sprintf("<ListBucketResult><Name>bkt</Name><KeyCount>1</KeyCount><IsTruncated>%t</IsTruncated><Contents><Key>a</Key></Contents>", truncated)
		if token != "" {
			b += "<NextContinuationToken>" + token + "</NextContinuationToken>"
		}
		return b + "</ListBucketResult>"
	}
	for _, tc := range []struct {
		name string
		list func(token string) string
	}{
		{"no token", func(string) string { return page(true, "") }},
		{"same token", func(string) string { return page(true, "t1") }},
		{"token of an earlier page", func(token string) string {
			return page(true, map[string]string{"": "t1", "t1": "t2", "t2": "t1"}[token])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := (&standIn{list: tc.list}).start(t, nil)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			names, err := st.List(ctx, "")
			if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "truncated") {
				t.Fatalf("List of a listing truncated with no way on: %d names, %v; want an error saying so", len(names), err)
			}
		})
	}
}

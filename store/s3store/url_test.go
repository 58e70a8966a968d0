package s3store_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/s3store"
)

func TestOptionsFromURL(t *testing.T) {
	t.Parallel()
	parse := func(raw string) (s3store.Options, error) {
		loc, err := store.ParseURL(raw)
		if err != nil {
			t.Fatalf("ParseURL %q: %v", raw, err)
		}
		return s3store.OptionsFromURL(loc)
	}
	got, err := parse("s3://bkt/a/b/?endpoint=http://h:9000&region=eu-west-1&path_style=true&profile=p" +
		"&request_timeout=5s&max_attempts=4&max_retry_time=1m&part_size=8MiB&concurrency=3" +
		"&lease_ttl=20s&lease_renew=5s&locking=external&instance_metadata=true")
	if err != nil {
		t.Fatal(err)
	}
	want := s3store.Options{
		Bucket: "bkt", Prefix: "a/b", Endpoint: "http://h:9000", Region: "eu-west-1", PathStyle: true, Profile: "p",
		RequestTimeout: 5 * time.Second, MaxAttempts: 4, MaxRetryTime: time.Minute, PartSize: 8 << 20, Concurrency: 3,
		LeaseTTL: 20 * time.Second, LeaseRenew: 5 * time.Second, ExternalLocking: true, InstanceMetadata: true,
	}
	if got != want {
		t.Fatalf("OptionsFromURL:\n got %+v\nwant %+v", got, want)
	}
	if got, err := parse("s3://bkt"); err != nil || got != (s3store.Options{Bucket: "bkt"}) {
		t.Fatalf("OptionsFromURL of a bare bucket: %+v, %v", got, err)
	}

	for _, tc := range []struct{ url, want string }{
		{"s3://bkt/p?bogus=1", `unknown parameter "bogus"`},
		{"s3://bkt/p?request_timeout=soon", "request_timeout"},
		{"s3://bkt/p?max_attempts=0", "max_attempts"},
		{"s3://bkt/p?part_size=lots", "part_size"},
		{"s3://bkt/p?path_style=maybe", "path_style"},
		{"s3://bkt/p?locking=none", "locking"},
		{"s3://bkt/p?instance_metadata=sometimes", "instance_metadata"},
		{"s3://AKIAEXAMPLE:hunter2secret@bkt/p", "credentials in the URL are not accepted"},
	} {
		_, err := parse(tc.url)
		if !errors.Is(err, s3store.ErrBadOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OptionsFromURL %q: %v, want ErrBadOptions mentioning %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("OptionsFromURL %q: the error %q shows the secret", tc.url, err)
		}
	}
}

// Options that cannot work are refused before anything is sent.
func TestOpenValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*s3store.Options)
		want string
	}{
		{"no bucket", func(o *s3store.Options) { o.Bucket = "" }, "no bucket"},
		{"small parts", func(o *s3store.Options) { o.PartSize = 1 << 20 }, "part_size"},
		{"renew after expiry", func(o *s3store.Options) { o.LeaseTTL, o.LeaseRenew = 2*time.Second, 3*time.Second }, "lease_renew"},
		{"sub-second lease", func(o *s3store.Options) { o.LeaseTTL = 500 * time.Millisecond }, "lease_ttl"},
		{"endpoint", func(o *s3store.Options) { o.Endpoint = "127.0.0.1:9000" }, "endpoint"},
		{"endpoint with credentials", func(o *s3store.Options) { o.Endpoint = "http://AKIAEXAMPLE:hunter2secret@h:9000" }, "credentials in the endpoint"},
		{"other endpoint with credentials", func(o *s3store.Options) { o.Endpoint = "ftp://AKIAEXAMPLE:hunter2secret@h:9000" }, "endpoint"},
		{"endpoint with credentials and no scheme", func(o *s3store.Options) { o.Endpoint = "AKIAEXAMPLE:hunter2secret@h:9000" }, "endpoint"},
		{"prefix", func(o *s3store.Options) { o.Prefix = "a/../b" }, "prefix"},
	} {
		o := s3store.Options{Bucket: "bkt", Endpoint: "http://127.0.0.1:9", Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}
		tc.mod(&o)
		_, err := s3store.Open(t.Context(), o)
		if !errors.Is(err, s3store.ErrBadOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Open: %v, want ErrBadOptions mentioning %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: Open: the error %q shows the secret", tc.name, err)
		}
	}
}

// A store that cannot work says so when opened, with what it tried and
// what to check, and never the secret key.
func TestOpenExplainsFailures(t *testing.T) {
	t.Parallel()
	b := testenv.S3(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now

	tests := []struct {
		name string
		mod  func(*s3store.Options)
		want []string
	}{
		{"unreachable", func(o *s3store.Options) { o.Endpoint = closed }, []string{closed, "connection refused", "check the endpoint"}},
		{"no such bucket", func(o *s3store.Options) { o.Bucket = "no-such-bucket" }, []string{`"no-such-bucket"`, "404", "check the bucket name"}},
		{"wrong secret", func(o *s3store.Options) {
			o.Credentials = credentials.NewStaticCredentialsProvider(b.AccessKey, "not-the-secret", "")
		}, []string{"SignatureDoesNotMatch", "check the secret key"}},
		{"unknown key", func(o *s3store.Options) {
			o.Credentials = credentials.NewStaticCredentialsProvider("nobody", "not-the-secret", "")
		}, []string{"the access key is unknown", "AWS_ACCESS_KEY_ID"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := options(b, "p")
			o.RequestTimeout, o.MaxRetryTime = time.Second, 3*time.Second
			tc.mod(&o)
			start := time.Now()
			st, err := s3store.Open(t.Context(), o)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range append(tc.want, "region "+b.Region) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, secret := range []string{b.SecretKey, "not-the-secret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a secret key", err)
				}
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Open took %s to fail", took)
			}
		})
	}
}

// ckpt.OpenStore opens s3:// addresses with credentials from the standard
// AWS environment variables.
func TestOpenStoreURL(t *testing.T) {
	b := testenv.S3(t)
	for _, kv := range b.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	log := slog.New(slog.DiscardHandler)
	st, err := ckpt.OpenStore(t.Context(), b.URL("via-url", "request_timeout=5s"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok := st.(*s3store.Store); !ok {
		t.Fatalf("OpenStore returned a %T", st)
	}
	put(t, st, "obj", []byte("through the URL"))
	direct := open(t, options(b, "via-url"))
	wantObject(t, direct, "obj", []byte("through the URL"))

	_, err = ckpt.OpenStore(t.Context(), "s3://AKIAEXAMPLE:hunter2secret@"+b.Bucket+"/p", log)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("OpenStore of a URL with credentials: %v, want an error that does not show them", err)
	}
}

// A service that ignores conditional writes would let two writers both
// commit. The store finds out before the first Create or Lock and
// refuses, unless told that a single writer is guaranteed by other means.
// (No real server at hand lacks them, so this one is a stand-in: it
// accepts every write, conditional or not.)
func TestNoConditionalWrites(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut:
			w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
		case r.Method == http.MethodPost && r.URL.Query().Has("uploads"):
			w.Write([]byte(`<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>`))
		case r.Method == http.MethodPost:
			w.Write([]byte(`<CompleteMultipartUploadResult><ETag>"x-1"</ETag></CompleteMultipartUploadResult>`))
		case r.Method == http.MethodHead && strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0:
			// the bucket exists
		case r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2":
			w.Write([]byte(`<ListBucketResult><KeyCount>0</KeyCount></ListBucketResult>`))
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	o := s3store.Options{
		Bucket: "bkt", Endpoint: srv.URL, PathStyle: true, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""), Logger: slog.New(slog.DiscardHandler),
	}
	st := open(t, o)
	err := st.Create(t.Context(), "obj", bytes.NewReader([]byte("x")))
	if !errors.Is(err, s3store.ErrNoConditionalWrites) || !strings.Contains(err.Error(), "locking=external") {
		t.Fatalf("Create on a service without conditional writes: %v, want ErrNoConditionalWrites saying what to do", err)
	}
	if _, err := st.Lock(t.Context(), "jobs/x/LOCK", owner(1)); !errors.Is(err, s3store.ErrNoConditionalWrites) {
		t.Fatalf("Lock on a service without conditional writes: %v, want ErrNoConditionalWrites", err)
	}

	o.ExternalLocking = true
	st = open(t, o)
	if err := st.Create(t.Context(), "obj", bytes.NewReader([]byte("x"))); err != nil {
		t.Fatalf("Create with locking=external: %v", err)
	}
	l, err := st.Lock(t.Context(), "jobs/x/LOCK", owner(1))
	if err != nil {
		t.Fatalf("Lock with locking=external: %v", err)
	}
	if _, ok := l.(store.FencedLease); ok {
		t.Error("a lease that fences nothing claims to be a store.FencedLease")
	}
	_, err = st.Lock(t.Context(), "jobs/x/LOCK", owner(2))
	wantLockedBy(t, err, owner(1))
	first := l.Token()
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	l, err = st.Lock(t.Context(), "jobs/x/LOCK", owner(2))
	if err != nil {
		t.Fatal(err)
	}
	if l.Token() <= first {
		t.Errorf("token %d after %d", l.Token(), first)
	}
	l.Release(t.Context())
}

// List follows the service's pages to the end.
func TestListPages(t *testing.T) {
	t.Parallel()
	st := open(t, options(testenv.S3(t), "pages"))
	s3store.SetListPageSize(st, 7)
	var want []string
	for i := range 40 {
		name := fmt.Sprintf("p/%03d", i)
		want = append(want, name)
		put(t, st, name, []byte(name))
	}
	put(t, st, "q", []byte("q"))
	if got, err := st.List(t.Context(), "p/"); err != nil || !slices.Equal(got, want) {
		t.Fatalf("List in pages of 7: %q, %v; want the %d names", got, err, len(want))
	}
	if got, err := st.List(t.Context(), "p/01"); err != nil || !slices.Equal(got, want[10:20]) {
		t.Fatalf("List p/01: %q, %v", got, err)
	}
}

// An address whose parameters nest credentials (an endpoint with a user
// and password, a token in the endpoint's own query) never shows them in
// the error of a store that cannot be opened.
func TestOpenErrorsHideNestedCredentials(t *testing.T) {
	noCredentials(t)
	for _, raw := range []string{
		"s3://bkt/p?endpoint=http://user:NESTEDSECRET@127.0.0.1:1",
		"s3://bkt/p?endpoint=" + url.QueryEscape("http://127.0.0.1:1/?token=NESTEDSECRET") + "&request_timeout=1s&max_retry_time=1s",
		"s3://bkt/p?endpoint=user:NESTEDSECRET@127.0.0.1:1",
	} {
		st, err := store.Open(t.Context(), raw, slog.New(slog.DiscardHandler))
		if err == nil {
			st.Close()
			t.Fatalf("Open %s succeeded", raw)
		}
		if strings.Contains(err.Error(), "NESTEDSECRET") {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}

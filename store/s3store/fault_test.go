package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
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

// These tests put a fault between the store and a real S3 server (a
// loopback proxy that resets, stalls or delays connections, or the server
// killed outright) and check the store's promise: an operation fails
// cleanly or succeeds after retries, and never leaves a partial object
// visible.

// viaProxy returns the options of a store in b that reaches the server
// through a new proxy, with short timeouts so that faults show quickly.
func viaProxy(t *testing.T, b testenv.S3Bucket, prefix string) (s3store.Options, *testenv.Proxy, *logRecorder) {
	proxy := testenv.NewProxy(t, strings.TrimPrefix(b.Endpoint, "http://"))
	o := options(b, prefix)
	o.Endpoint = proxy.Endpoint()
	o.RequestTimeout = 2 * time.Second
	o.MaxRetryTime = 20 * time.Second
	rec := newLogRecorder()
	o.Logger = rec.logger()
	return o, proxy, rec
}

// hookReader calls hook once, after n bytes have been read.
type hookReader struct {
	r    io.Reader
	n    int64
	hook func()
	once sync.Once
}

func (h *hookReader) Read(p []byte) (int, error) {
	if h.n <= 0 {
		h.once.Do(h.hook)
	} else if int64(len(p)) > h.n {
		p = p[:h.n]
	}
	n, err := h.r.Read(p)
	h.n -= int64(n)
	return n, err
}

func TestWriteRetriesDroppedConnection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		size     int
		partSize int64
		cutAt    int64
		create   bool
	}{
		{"single-put", 3 << 20, 0, 1 << 20, false},
		{"single-create", 3 << 20, 0, 2 << 20, true},
		{"multipart-put", 23 << 20, s3store.MinPartSize, 7 << 20, false},
		{"multipart-create", 17 << 20, s3store.MinPartSize, 12 << 20, true},
	}
	b := testenv.S3(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, proxy, rec := viaProxy(t, b, tc.name)
			o.PartSize = tc.partSize
			st := open(t, o)
			data := content(tc.name, tc.size)
			proxy.CutAfter(tc.cutAt)
			var err error
			if tc.create {
				err = st.Create(t.Context(), "obj", opaque(data))
			} else {
				err = st.Put(t.Context(), "obj", opaque(data))
			}
			if err != nil {
				t.Fatalf("write through a dropped connection: %v\nlog:\n%s", err, rec)
			}
			if rec.count("retrying") == 0 {
				t.Fatalf("nothing was retried: the connection was not cut; log:\n%s", rec)
			}
			wantObject(t, open(t, options(b, tc.name)), "obj", data)
			if up := pendingUploads(t, b); slices.ContainsFunc(up, func(k string) bool { return strings.HasPrefix(k, tc.name+"/") }) {
				t.Errorf("incomplete uploads left: %q", up)
			}
		})
	}
}

// The service becomes unreachable in the middle of an upload (its port
// closes, open connections are reset) for longer than the retries last:
// the write fails, naming what it tried and what to check; the previous
// object stays whole, no partial one appears, and writes succeed again
// once the service is back.
func TestWriteFailsCleanlyWhenUnreachable(t *testing.T) {
	t.Parallel()
	b := testenv.S3(t)
	o, proxy, _ := viaProxy(t, b, "down")
	o.PartSize = s3store.MinPartSize
	// Refused connections fail at once: the short retry budget ends the
	// write quickly; the long timeout lets it go through once back.
	o.RequestTimeout, o.MaxAttempts, o.MaxRetryTime = 10*time.Second, 3, 2*time.Second
	st := open(t, o)
	direct := open(t, options(b, "down"))
	want := map[string][]byte{"obj": content("old", 1000)} // the objects there should be
	put(t, direct, "obj", want["obj"])

	for _, op := range []string{"Put", "Create"} {
		name := map[string]string{"Put": "obj", "Create": "new"}[op]
		data := content(op, 12<<20)
		src := &hookReader{r: opaque(data), n: 6 << 20, hook: proxy.Down}
		var err error
		if op == "Put" {
			err = st.Put(t.Context(), name, src)
		} else {
			err = st.Create(t.Context(), name, src)
		}
		if err == nil {
			t.Fatalf("%s while the service is unreachable succeeded", op)
		}
		if testing.Verbose() {
			t.Logf("%s: %v", op, err)
		}
		for _, want := range []string{proxy.Addr(), b.Bucket, "region " + b.Region, "check the endpoint"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s error %q does not mention %q", op, err, want)
			}
		}
		if strings.Contains(err.Error(), b.SecretKey) {
			t.Errorf("%s error %q shows the secret key", op, err)
		}
		wantNames := slices.Sorted(maps.Keys(want))
		if names, err := direct.List(t.Context(), ""); err != nil || !slices.Equal(names, wantNames) {
			t.Fatalf("List after a failed %s: %q, %v; want %q as before", op, names, err, wantNames)
		}
		for name, data := range want {
			wantObject(t, direct, name, data)
		}
		if _, ok := want[name]; !ok {
			wantMissing(t, direct, name)
		}
		proxy.Up(t)
		if op == "Put" {
			err = st.Put(t.Context(), name, opaque(data))
		} else {
			err = st.Create(t.Context(), name, opaque(data))
		}
		if err != nil {
			t.Fatalf("%s once the service is back: %v", op, err)
		}
		wantObject(t, direct, name, data)
		want[name] = data
	}
}

// The server process dies mid-upload and comes back: the same.
func TestWriteFailsCleanlyWhenServerKilled(t *testing.T) {
	t.Parallel()
	srv := testenv.StartS3Server(t, testenv.S3ServerOptions{})
	b := srv.Bucket(t)
	o := options(b, "killed")
	o.PartSize = s3store.MinPartSize
	o.RequestTimeout, o.MaxAttempts, o.MaxRetryTime = 10*time.Second, 3, 2*time.Second
	st := open(t, o)
	old := content("old", 3000)
	put(t, st, "obj", old)

	data := content("new", 13<<20)
	err := st.Put(t.Context(), "obj", &hookReader{r: opaque(data), n: 7 << 20, hook: func() { srv.Kill(t) }})
	if err == nil || !strings.Contains(err.Error(), "check the endpoint") {
		t.Fatalf("Put while the server is dead: %v, want a failure saying what to check", err)
	}
	srv.Restart(t)
	wantObject(t, st, "obj", old)
	if names, err := st.List(t.Context(), ""); err != nil || !slices.Equal(names, []string{"obj"}) {
		t.Fatalf("List after the failed Put: %q, %v", names, err)
	}
	put(t, st, "obj", data)
	wantObject(t, st, "obj", data)
}

// A server slower than the request timeout: requests are cut and retried,
// and a Create whose first attempt landed but whose answer came too late
// recognises its own object on the retry instead of reporting
// store.ErrExist.
func TestSlowServer(t *testing.T) {
	t.Parallel()
	b := testenv.S3(t)

	t.Run("requests that never arrive fail", func(t *testing.T) {
		t.Parallel()
		o, proxy, _ := viaProxy(t, b, "slow-up")
		o.RequestTimeout, o.MaxAttempts = 300*time.Millisecond, 2
		st := open(t, o)
		proxy.SetDelay(2*time.Second, 0)
		start := time.Now()
		err := st.Put(t.Context(), "obj", opaque(content("x", 1000)))
		if err == nil || !strings.Contains(err.Error(), "no answer within the request timeout") || !strings.Contains(err.Error(), "2 attempts") {
			t.Fatalf("Put to a server that never gets the request: %v, want a timeout after 2 attempts", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("2 attempts of 300ms took %s", took)
		}
		proxy.SetDelay(0, 0)
		wantMissing(t, open(t, options(b, "slow-up")), "obj")
	})

	t.Run("a create whose answer is late", func(t *testing.T) {
		t.Parallel()
		o, proxy, rec := viaProxy(t, b, "slow-down")
		o.RequestTimeout = 500 * time.Millisecond
		st := open(t, o)
		data := content("late", 2000)
		// The probe of conditional writes runs first, at full speed.
		if err := st.Create(t.Context(), "warm", opaque([]byte("w"))); err != nil {
			t.Fatal(err)
		}
		proxy.SetDelay(0, time.Second)
		done := make(chan error, 1)
		go func() { done <- st.Create(t.Context(), "obj", opaque(data)) }()
		rec.waitFor(t, "retrying", "PutObject")
		proxy.SetDelay(0, 0)
		if err := <-done; err != nil {
			t.Fatalf("Create whose first answer came too late: %v\nlog:\n%s", err, rec)
		}
		wantObject(t, st, "obj", data)
		if err := st.Create(t.Context(), "obj", opaque(data)); !errors.Is(err, store.ErrExist) {
			t.Fatalf("Create again: %v, want store.ErrExist", err)
		}
	})
}

// A download whose connection breaks or stalls midway resumes where it
// stopped, from the same version of the object.
func TestGetResumes(t *testing.T) {
	t.Parallel()
	b := testenv.S3(t)
	data := content("download", 12<<20)
	put(t, open(t, options(b, "get")), "obj", data)

	for _, fault := range []string{"drop", "stall"} {
		t.Run(fault, func(t *testing.T) {
			t.Parallel()
			o, proxy, rec := viaProxy(t, b, "get")
			o.RequestTimeout = 300 * time.Millisecond
			st := open(t, o)
			rc, err := st.Get(t.Context(), "obj")
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			head := make([]byte, 1<<20)
			if _, err := io.ReadFull(rc, head); err != nil {
				t.Fatal(err)
			}
			switch fault {
			case "drop":
				proxy.Stall() // keep the rest from reaching the client's buffers
				proxy.DropAll()
				proxy.Resume()
			case "stall":
				proxy.Stall()
				// Resumed either way: if the line never comes, the
				// check below says so.
				go func() {
					rec.await(30*time.Second, "resuming a broken download")
					proxy.Resume()
				}()
			}
			rest, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("read after the connection was broken: %v\nlog:\n%s", err, rec)
			}
			if got := append(head, rest...); !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes (sha256 %x), want the %d written (sha256 %x)", len(got), sum(got), len(data), sum(data))
			}
			if rec.count("resuming a broken download") == 0 {
				t.Fatalf("the download did not break; log:\n%s", rec)
			}
		})
	}

	t.Run("replaced meanwhile", func(t *testing.T) {
		t.Parallel()
		o, proxy, _ := viaProxy(t, b, "get-replaced")
		st := open(t, o)
		put(t, st, "obj", data)
		rc, err := st.Get(t.Context(), "obj")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadFull(rc, make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		proxy.Stall()
		proxy.DropAll()
		proxy.Resume()
		put(t, st, "obj", content("other", 12<<20))
		// Resuming would mix two versions: the read must fail instead.
		if rest, err := io.ReadAll(rc); err == nil || !strings.Contains(err.Error(), "replaced") {
			t.Fatalf("read of an object replaced mid-read: %d more bytes, %v; want an error saying it was replaced", len(rest), err)
		}
	})
}

// Damage at rest is caught on read: a byte of the server's file flipped,
// in an object written with one PUT, one written in parts, and one written
// by another program that left only the checksum in the metadata.
func TestGetDetectsDamage(t *testing.T) {
	t.Parallel()
	b := testenv.S3(t)
	o := options(b, "damage")
	o.PartSize = s3store.MinPartSize
	st := open(t, o)
	single, multi := content("single", 100_000), content("multi", 11<<20)
	put(t, st, "single", single)
	put(t, st, "multi", multi)
	foreign := content("foreign", 5000)
	if _, err := b.Client().PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(b.Bucket), Key: aws.String("damage/foreign"), Body: bytes.NewReader(foreign),
		Metadata: map[string]string{"ckpt-crc32c": crc32c(foreign)},
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
	}{{"single", single}, {"multi", multi}, {"foreign", foreign}} {
		wantObject(t, st, c.name, c.data)
		flipByte(t, b.ObjectPath("damage/"+c.name), int64(len(c.data)/2))
		got, err := read(t.Context(), st, c.name)
		if !errors.Is(err, s3store.ErrChecksum) {
			t.Errorf("Get of the damaged %s: %d bytes, %v; want s3store.ErrChecksum", c.name, len(got), err)
		}
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// A throttling server answers 503 SlowDown to requests beyond its limit;
// the store retries them, so a burst of reads and writes all succeed.
func TestThrottled(t *testing.T) {
	t.Parallel()
	srv := testenv.StartS3Server(t, testenv.S3ServerOptions{MaxRequests: 1})
	b := srv.Bucket(t)
	o := options(b, "store")
	rec := newLogRecorder()
	o.Logger = rec.logger()
	st := open(t, o)
	const clients = 12
	datas := make([][]byte, clients)
	for i := range datas {
		datas[i] = content(fmt.Sprint("throttled ", i), 64<<10)
		put(t, st, fmt.Sprint("obj-", i), datas[i])
	}
	burst := func(op func(i int) error) []error {
		errs := make([]error, clients)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				<-start
				errs[i] = op(i)
			})
		}
		close(start)
		wg.Wait()
		return errs
	}

	// First show that the server does throttle: a plain client without
	// retries is refused with 503. Listings take the server longest, so
	// a burst of them overlaps best; a burst that happens to arrive in
	// single file proves nothing and is repeated.
	raw := b.Client()
	var errs []error
	for round := 1; !slices.ContainsFunc(errs, func(err error) bool { _, st := apiStatus(err); return st == http.StatusServiceUnavailable }); round++ {
		if round > 10 {
			t.Fatalf("%d bursts of %d requests to a server limited to one at a time were never throttled: %v", round-1, clients, errors.Join(errs...))
		}
		errs = burst(func(i int) error {
			_, err := raw.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(b.Bucket)},
				func(o *s3.Options) { o.RetryMaxAttempts = 1 })
			return err
		})
	}

	// Then the store, until it has been throttled at least once.
	for round := 1; rec.count("retrying", "SlowDown") == 0; round++ {
		if round > 10 {
			t.Fatalf("the store was never throttled in %d bursts; log:\n%s", round-1, rec)
		}
		errs = burst(func(i int) error {
			names, err := st.List(t.Context(), "")
			if err != nil {
				return err
			}
			if len(names) != clients {
				return fmt.Errorf("List: %d names, want %d", len(names), clients)
			}
			got, err := read(t.Context(), st, fmt.Sprint("obj-", i))
			if err == nil && !bytes.Equal(got, datas[i]) {
				err = fmt.Errorf("obj-%d: read %d bytes that differ from the %d written", i, len(got), len(datas[i]))
			}
			return err
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("reads from a throttling server: %v", err)
		}
	}
}

func apiStatus(err error) (string, int) {
	var re interface{ HTTPStatusCode() int }
	var ae interface{ ErrorCode() string }
	code, status := "", 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return code, status
}

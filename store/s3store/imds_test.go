package s3store_test

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/store/s3store"
)

// noCredentials empties every source of AWS credentials but the instance
// metadata service, which it points at a loopback server that counts the
// requests it gets: no test may send traffic to 169.254.169.254.
func noCredentials(t *testing.T) (requests func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path)
		mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(imds.Close)
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
		"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_S3": "",
		"AWS_EC2_METADATA_DISABLED": "", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.URL,
	} {
		t.Setenv(k, v)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// captureStderr returns what the process writes to os.Stderr while f runs.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	defer func() {
		os.Stderr = saved
	}()
	f()
	os.Stderr = saved
	w.Close()
	return string(<-done)
}

// closedEndpoint is a loopback address where nothing listens.
func closedEndpoint(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return "http://" + ln.Addr().String()
}

// With an endpoint of its own and no credentials, opening a store fails
// at once for want of credentials, without asking the instance metadata
// service for a role, and the SDK prints nothing of its own.
func TestOpenWithEndpointDoesNotAskInstanceMetadata(t *testing.T) {
	requests := noCredentials(t)
	var logs bytes.Buffer
	var err error
	stderr := captureStderr(t, func() {
		_, err = s3store.Open(t.Context(), s3store.Options{
			Bucket: "bkt", Endpoint: closedEndpoint(t), PathStyle: true, MaxRetryTime: time.Second,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
	})
	if err == nil {
		t.Fatal("Open succeeded without credentials")
	}
	if !strings.Contains(err.Error(), "no usable credentials") {
		t.Errorf("Open: %v; want it to say that there are no usable credentials", err)
	}
	if got := requests(); len(got) > 0 {
		t.Errorf("the instance metadata service was asked: %v", got)
	}
	if stderr != "" {
		t.Errorf("the SDK wrote to stderr: %q", stderr)
	}
}

// Asked to, the chain does ask the instance metadata service, and what
// the SDK says about it goes to the store's logger.
func TestOpenInstanceMetadataWhenAsked(t *testing.T) {
	requests := noCredentials(t)
	var logs bytes.Buffer
	var err error
	stderr := captureStderr(t, func() {
		_, err = s3store.Open(t.Context(), s3store.Options{
			Bucket: "bkt", Endpoint: closedEndpoint(t), PathStyle: true, MaxRetryTime: time.Second, InstanceMetadata: true,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
	})
	if err == nil {
		t.Fatal("Open succeeded without credentials")
	}
	if len(requests()) == 0 {
		t.Errorf("instance_metadata=true, yet the instance metadata service was not asked")
	}
	if !strings.Contains(err.Error(), "no usable credentials") {
		t.Errorf("Open: %v; want it to say that there are no usable credentials", err)
	}
	if stderr != "" {
		t.Errorf("the SDK wrote to stderr: %q", stderr)
	}
	if !strings.Contains(logs.String(), "AWS SDK") {
		t.Errorf("the SDK's messages did not reach the store's logger:\n%s", logs.String())
	}
}

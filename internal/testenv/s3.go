package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The S3-compatible server the tests run against is versitygw, a real S3
// gateway, with its posix backend on a temporary directory: every bucket is
// a directory and every object a file below it. scripts/tools.sh installs
// it into ./.bin; CKPT_VERSITYGW names another binary.

// S3 credentials of the test servers. They guard nothing: the servers
// listen on loopback only and live as long as a test.
const (
	s3AccessKey = "ckpt-test-access"
	s3SecretKey = "ckpt-test-secret-key"
	s3Region    = "us-east-1"
)

// S3Bucket is an empty bucket of its own on a running S3-compatible server,
// and what a client needs to reach it.
type S3Bucket struct {
	Endpoint  string // http://127.0.0.1:port
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
	Server    *S3Server
}

// URL returns the store address of prefix in the bucket, on the bucket's
// endpoint, with path-style addressing and any extra query parameters
// ("key=value"). Credentials are not part of it: see Env.
func (b S3Bucket) URL(prefix string, query ...string) string {
	return b.URLAt(b.Endpoint, prefix, query...)
}

// URLAt is URL with another endpoint, such as a Proxy's in front of the
// server.
func (b S3Bucket) URLAt(endpoint, prefix string, query ...string) string {
	q := url.Values{}
	q.Set("endpoint", endpoint)
	q.Set("region", b.Region)
	q.Set("path_style", "true")
	for _, kv := range query {
		k, v, _ := strings.Cut(kv, "=")
		q.Set(k, v)
	}
	u := url.URL{Scheme: "s3", Host: b.Bucket, Path: "/" + strings.Trim(prefix, "/"), RawQuery: q.Encode()}
	return u.String()
}

// Env returns the environment variables that give a child process the
// bucket's credentials through the standard AWS variables. It also turns
// off the EC2 metadata lookup, which would otherwise be tried if the
// variables were missing, and sends nothing to a shared AWS config.
func (b S3Bucket) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + b.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + b.SecretKey,
		"AWS_REGION=" + b.Region,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
	}
}

// Credentials returns the bucket's credentials as an AWS provider.
func (b S3Bucket) Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(b.AccessKey, b.SecretKey, "")
}

// Client returns a plain S3 client for the bucket's server, for tests that
// look at or change the bucket behind a store's back.
func (b S3Bucket) Client() *s3.Client {
	return b.Server.client()
}

// ObjectPath returns the file in which the server keeps the object key of
// the bucket, for tests that damage it.
func (b S3Bucket) ObjectPath(key string) string {
	return filepath.Join(b.Server.dir, b.Bucket, filepath.FromSlash(key))
}

// The shared server: started by the first test that needs one, stopped
// when the last test using it has ended, started again by the next.
var shared struct {
	mu    sync.Mutex
	srv   *S3Server
	users int
}

var bucketSeq atomic.Int64

// S3 returns a fresh bucket on a versitygw server shared by the tests of
// this test binary, starting the server if none runs. The server stops
// once no running test uses it. If versitygw is not installed, the test
// stops through Unavailable.
func S3(t testing.TB) S3Bucket {
	t.Helper()
	shared.mu.Lock()
	if shared.srv == nil || shared.srv.exited() {
		dir, err := os.MkdirTemp("", "ckpt-versitygw-")
		if err != nil {
			shared.mu.Unlock()
			t.Fatalf("testenv: %v", err)
		}
		srv, err := startS3Server(dir, S3ServerOptions{})
		if err != nil {
			shared.mu.Unlock()
			os.RemoveAll(dir)
			if errors.Is(err, errNoVersitygw) {
				Unavailable(t, "%v", err)
			}
			t.Fatalf("testenv: %v", err)
		}
		srv.ownDir = true
		shared.srv = srv
	}
	srv := shared.srv
	shared.users++
	shared.mu.Unlock()
	t.Cleanup(func() {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		if shared.users--; shared.users == 0 && shared.srv == srv {
			srv.stop()
			shared.srv = nil
		}
	})
	return srv.Bucket(t)
}

// S3ServerOptions configure a dedicated test server.
type S3ServerOptions struct {
	// MaxRequests caps the requests the server serves at once; one more is
	// answered 503 SlowDown. Zero means the server's default (no cap in
	// practice).
	MaxRequests int
}

// S3Server is a running versitygw process.
type S3Server struct {
	Endpoint string // http://127.0.0.1:port
	addr     string
	dir      string
	opts     S3ServerOptions
	ownDir   bool // remove dir when stopped (the shared server's)

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	output *syncWriter
}

// StartS3Server starts a versitygw server of the test's own, with its data
// in a temporary directory, and stops it when the test ends. Tests that
// stop, restart or throttle the server use one; others share one (S3).
func StartS3Server(t testing.TB, opts S3ServerOptions) *S3Server {
	t.Helper()
	srv, err := startS3Server(t.TempDir(), opts)
	if err != nil {
		if errors.Is(err, errNoVersitygw) {
			Unavailable(t, "%v", err)
		}
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(srv.stop)
	return srv
}

// Bucket creates a new, empty bucket on the server.
func (s *S3Server) Bucket(t testing.TB) S3Bucket {
	t.Helper()
	name := fmt.Sprintf("ckpt-%d-%d", os.Getpid(), bucketSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("testenv: create bucket %s on %s: %v", name, s.Endpoint, err)
	}
	return S3Bucket{Endpoint: s.Endpoint, Region: s3Region, AccessKey: s3AccessKey, SecretKey: s3SecretKey, Bucket: name, Server: s}
}

// clientTimeout bounds every request of the plain client, so that a test
// calling it with a context that has no deadline fails rather than hangs
// when the server stops answering.
const clientTimeout = 30 * time.Second

func (s *S3Server) client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s3Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s3AccessKey, s3SecretKey, ""),
		HTTPClient:   awshttp.NewBuildableClient().WithTimeout(clientTimeout),
	})
}

// Kill stops the server at once with SIGKILL, as a crash would, and waits
// for the process to be gone: its port refuses connections from then on.
func (s *S3Server) Kill(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	cmd.Process.Kill()
	<-done
}

// Restart starts the server again after Kill, on the same port and data.
func (s *S3Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("testenv: restart versitygw: %v", err)
	}
}

var errNoVersitygw = errors.New("versitygw not found")

// versitygw returns the path of the versitygw binary: $CKPT_VERSITYGW, else
// .bin/versitygw in the module root, else one on PATH.
func versitygw() (string, error) {
	if p := os.Getenv("CKPT_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: CKPT_VERSITYGW=%s: %v", errNoVersitygw, p, err)
		}
		return p, nil
	}
	var looked []string
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, ".bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
		looked = append(looked, p)
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	looked = append(looked, "$PATH")
	return "", fmt.Errorf("%w (looked in %s): run ./scripts/tools.sh to install it, or set CKPT_VERSITYGW", errNoVersitygw, strings.Join(looked, " and "))
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func startS3Server(dir string, opts S3ServerOptions) (*S3Server, error) {
	if _, err := versitygw(); err != nil {
		return nil, err
	}
	// The port is picked free, then handed to the server: another process
	// may take it in between, so a failed start is tried on a new port.
	var err error
	for range 3 {
		var addr string
		if addr, err = freeLoopbackAddr(); err != nil {
			return nil, err
		}
		s := &S3Server{Endpoint: "http://" + addr, addr: addr, dir: dir, opts: opts}
		if err = s.start(); err == nil {
			return s, nil
		}
	}
	return nil, err
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs the server process and waits until it answers HTTP.
func (s *S3Server) start() error {
	bin, err := versitygw()
	if err != nil {
		return err
	}
	args := []string{"--port", s.addr, "--keep-alive", "--quiet"}
	if s.opts.MaxRequests > 0 {
		args = append(args, "--max-requests", fmt.Sprint(s.opts.MaxRequests))
	}
	args = append(args, "posix", s.dir)
	cmd := exec.Command(bin, args...)
	// Credentials by environment, not on the command line where ps shows
	// them.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s3AccessKey, "ROOT_SECRET_KEY="+s3SecretKey)
	out := &syncWriter{}
	cmd.Stdout, cmd.Stderr = out, out
	// The server dies with the test binary, however that ends (a panic, a
	// timeout): the kernel signals it when the thread that started it
	// exits, and that thread is locked to a goroutine that lives exactly
	// as long as the server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			cmd.Wait()
		}
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	s.mu.Lock()
	s.cmd, s.done, s.output = cmd, done, out
	s.mu.Unlock()

	// Ready when it answers any HTTP request (an anonymous one is refused
	// with 403, which is an answer).
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("versitygw exited at start (%v):\n%s", cmd.ProcessState, s.output)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("versitygw did not answer on %s within 30s: %v\n%s", s.addr, err, s.output)
		}
	}
}

func (s *S3Server) exited() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *S3Server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd != nil {
		// Nothing on a test server is worth a graceful stop, which waits
		// for clients' idle keep-alive connections to close.
		cmd.Process.Kill()
		<-done
	}
	if s.ownDir {
		os.RemoveAll(s.dir)
	}
}

// syncWriter collects a process's output, written from two pipes.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

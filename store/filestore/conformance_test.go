package filestore_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/filestore"
	"github.com/ckptdev/ckpt/store/storetest"
)

// childEnv selects, in a re-executed test binary, the child process role
// (see child_test.go) instead of the tests.
const childEnv = "CKPT_FILESTORE_TEST_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openStore(t, t.TempDir(), nil)
	})
}

// The store creates its directory, parents included, on Open.
func TestConformanceInNewNestedDirectory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openStore(t, filepath.Join(t.TempDir(), "not", "yet", "there"), nil)
	})
}

// openStore opens the store at dir, logging to log (nil: nowhere).
func openStore(t *testing.T, dir string, log *slog.Logger) *filestore.Store {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := filestore.Open(dir, filestore.Options{Logger: log})
	if err != nil {
		t.Fatalf("open store %s: %v", dir, err)
	}
	return st
}

// tempFiles returns the temporary files of interrupted writes below dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var temps []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			temps = append(temps, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return temps
}

func wantNoTempFiles(t *testing.T, dir, after string) {
	t.Helper()
	if temps := tempFiles(t, dir); len(temps) > 0 {
		t.Fatalf("after %s, temporary files remain: %q", after, temps)
	}
}

// logBuffer collects JSON log records.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the records logged at level or above.
func (b *logBuffer) records(t *testing.T, level slog.Level) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var recs []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		var l slog.Level
		if err := l.UnmarshalText([]byte(rec["level"].(string))); err != nil {
			t.Fatalf("log line %q: level: %v", line, err)
		}
		if l >= level {
			recs = append(recs, rec)
		}
	}
	return recs
}

// child is this test binary re-executed in one of the roles of runChild.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr *logBuffer
}

func startChild(t *testing.T, role string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// A race-enabled child that exits by itself would otherwise sleep a
	// second first, waiting for late reports.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + role, "GORACE=" + gorace}, env...)...)
	c := &child{cmd: cmd, stderr: &logBuffer{}}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.lines = bufio.NewScanner(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", role, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return c
}

// line returns the child's next line of output; the child prints one at
// each point the parent waits for.
func (c *child) line(t *testing.T) string {
	t.Helper()
	if !c.lines.Scan() {
		c.stdin.Close()
		err := c.cmd.Wait()
		t.Fatalf("child %d ended (%v) before printing the expected line; its stderr:\n%s", c.cmd.Process.Pid, err, c.stderr.buf.String())
	}
	return c.lines.Text()
}

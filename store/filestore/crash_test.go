//go:build unix

package filestore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/store"
)

// TestCrashDuringWrites kills a writing process with SIGKILL at random
// instants, many times, and checks after each kill that every object the
// store lists is whole and correct and that every write the process saw
// return is there.
func TestCrashDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill loop: runs without -short")
	}
	kills := 20
	if os.Getenv("CKPT_LONG") == "1" {
		kills = 300
	}
	seed := rand.Uint64()
	if s := os.Getenv("CKPT_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CKPT_CRASH_SEED: %v", err)
		}
	}
	t.Logf("seed %d (set CKPT_CRASH_SEED to repeat this run)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	dir := t.TempDir()
	st := openStore(t, dir, nil)
	reported := map[string]int{} // name → newest version the writer saw written
	objects := crashObjects{}
	var lastToken uint64
	var lastPID, writes, killedMidWrite int
	for gen := 1; gen <= kills; gen++ {
		c := startChild(t, "writer", "CKPT_TEST_DIR="+dir,
			fmt.Sprintf("CKPT_TEST_GEN=%d", gen), fmt.Sprintf("CKPT_TEST_SEED=%d", seed))
		var token uint64
		if line := c.line(t); !scan(line, "ready %d", &token) {
			t.Fatalf("writer %d: unexpected line %q", gen, line)
		}
		if token <= lastToken {
			t.Fatalf("writer %d took the lock with token %d, not greater than its predecessor's %d", gen, token, lastToken)
		}
		lastToken, lastPID = token, c.cmd.Process.Pid

		out := make(chan []string, 1)
		go func() {
			var lines []string
			for c.lines.Scan() {
				lines = append(lines, c.lines.Text())
			}
			out <- lines
		}()
		// The wait chooses the instant of the kill; nothing waits on it.
		time.Sleep(time.Duration(rng.Int64N(int64(150 * time.Millisecond))))
		if err := c.cmd.Process.Kill(); err != nil {
			t.Fatalf("kill writer %d: %v", gen, err)
		}
		lines := <-out
		c.cmd.Wait()
		if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("writer %d ended by itself (%v) before it was killed; its stderr:\n%s", gen, c.cmd.ProcessState, c.stderr.buf.String())
		}
		for _, line := range lines {
			var name string
			var version int
			if !scan(line, "ok %s %d", &name, &version) {
				t.Fatalf("writer %d: unexpected line %q", gen, line)
			}
			reported[name] = max(reported[name], version)
		}
		writes += len(lines)
		if len(tempFiles(t, dir)) > 0 {
			killedMidWrite++
		}
		verifyAfterCrash(t, st, reported, objects, gen)
	}
	t.Logf("%d kills, %d writes returned before them, %d kills left a write unfinished", kills, writes, killedMidWrite)
	if writes == 0 {
		t.Fatal("the writers wrote nothing before being killed")
	}

	// The next holder takes the lock over, says so, and removes what the
	// interrupted writes left.
	var logs logBuffer
	st2 := openStore(t, dir, logs.logger())
	l, err := st2.Lock(t.Context(), "LOCK", store.Owner{ID: "parent", PID: os.Getpid()})
	if err != nil {
		t.Fatalf("Lock after the last kill: %v", err)
	}
	defer l.Release(t.Context())
	if l.Token() <= lastToken {
		t.Errorf("token %d after the last writer's %d", l.Token(), lastToken)
	}
	host, _ := os.Hostname()
	wantTakeoverWarning(t, &logs, lastPID, host)
	wantNoTempFiles(t, dir, "taking the lock over from a killed writer")
}

// verifyAfterCrash checks the store after the kill of writer gen, then
// deletes the objects of older generations to keep it small.
func verifyAfterCrash(t *testing.T, st store.Store, reported map[string]int, objects crashObjects, gen int) {
	t.Helper()
	names, err := st.List(t.Context(), "")
	if err != nil {
		t.Fatalf("after kill %d: List: %v", gen, err)
	}
	listed := map[string]bool{}
	for _, name := range names {
		listed[name] = true
		if name == "LOCK" {
			continue
		}
		if !strings.HasPrefix(name, "objs/") {
			t.Fatalf("after kill %d: List shows %q, which no writer wrote", gen, name)
		}
		rc, err := st.Get(t.Context(), name)
		if err != nil {
			t.Fatalf("after kill %d: List shows %s but Get fails: %v", gen, name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("after kill %d: read %s: %v", gen, name, err)
		}
		version, err := objects.check(name, b)
		if err != nil {
			t.Fatalf("after kill %d: %s is not a whole object: %v", gen, name, err)
		}
		// The newest reported version, or the next one if the kill came
		// after its write returned and before the writer said so.
		if want := reported[name]; version < want || version > want+1 {
			t.Fatalf("after kill %d: %s holds version %d, but version %d was the last reported written", gen, name, version, want)
		}
	}
	for name := range reported {
		if !listed[name] {
			t.Fatalf("after kill %d: %s was reported written but is missing", gen, name)
		}
	}
	for _, name := range names {
		var g, i int
		if scan(name, "objs/g%d/o%d", &g, &i) && g < gen-1 {
			if err := st.Delete(t.Context(), name); err != nil {
				t.Fatalf("Delete %s: %v", name, err)
			}
			delete(reported, name)
			delete(objects, name)
		}
	}
}

// crashObject is version version of object name: a header naming both and
// the body's size, then a body derived from them, so that a torn, stale or
// misplaced object cannot pass for a whole one.
func crashObject(name string, version, size int) []byte {
	header := fmt.Sprintf("ckpt-crash %s v%d %d\n", name, version, size)
	b := make([]byte, len(header)+size)
	copy(b, header)
	seed := sha256.Sum256(fmt.Appendf(nil, "%s#%d", name, version))
	rand.NewChaCha8(seed).Read(b[len(header):])
	return b
}

// crashObjects holds the expected bytes of the versions of objects seen so
// far (name → version → bytes): each object is checked after every kill,
// and generating it each time would dominate the test's time.
type crashObjects map[string]map[int][]byte

// check returns the version of name that b holds, or what is wrong with
// it.
func (objs crashObjects) check(name string, b []byte) (int, error) {
	header, _, ok := bytes.Cut(b, []byte("\n"))
	if !ok || len(header) > 200 {
		return 0, fmt.Errorf("no header in its %d bytes", len(b))
	}
	var gotName string
	var version, size int
	if !scan(string(header), "ckpt-crash %s v%d %d", &gotName, &version, &size) {
		return 0, fmt.Errorf("bad header %q", header)
	}
	if gotName != name {
		return 0, fmt.Errorf("holds object %s", gotName)
	}
	if objs[name] == nil {
		objs[name] = map[int][]byte{}
	}
	want, ok := objs[name][version]
	if !ok || len(want) != len(b) {
		want = crashObject(name, version, size)
		objs[name][version] = want
	}
	if !bytes.Equal(b, want) {
		return 0, fmt.Errorf("%d bytes are not the %d bytes of version %d", len(b), len(want), version)
	}
	return version, nil
}

func scan(s, format string, args ...any) bool {
	n, err := fmt.Sscanf(s, format, args...)
	return err == nil && n == len(args)
}

func reader(b []byte) io.Reader { return bytes.NewReader(b) }

// wantTakeoverWarning checks that the log holds exactly one warning, about
// the takeover of a lock from the holder with pid on host.
func wantTakeoverWarning(t *testing.T, logs *logBuffer, pid int, host string) {
	t.Helper()
	warnings := logs.records(t, slog.LevelWarn)
	if len(warnings) != 1 {
		t.Fatalf("logged %d warnings, want one about the takeover: %v", len(warnings), warnings)
	}
	rec, _ := json.Marshal(warnings[0])
	for _, part := range []string{"lock", fmt.Sprintf("pid %d", pid), " on " + host} {
		if !strings.Contains(string(rec), part) {
			t.Fatalf("the takeover warning %s does not mention %q", rec, part)
		}
	}
}

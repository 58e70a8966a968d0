//go:build linux

package ckpt_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/store"
)

// This file fails checkpoints while they are written: a full disk, a store
// gone read-only, a cancelled context, and a process killed with SIGKILL at
// random instants. In every case the checkpoint before stays the newest
// valid one, and nothing torn is ever read back.

// mountTmpfs mounts a tmpfs of size bytes on dir for the test's duration.
// A tmpfs is a real filesystem that really fills up and really goes
// read-only, and root cannot write past either (it can past permission
// bits).
func mountTmpfs(t *testing.T, dir string, size int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("ckpt-test", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			t.Skipf("cannot mount a tmpfs (%v): this test needs root or CAP_SYS_ADMIN to make a real filesystem fill up or turn read-only", err)
		}
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

func remount(t *testing.T, dir string, readOnly bool) {
	t.Helper()
	flags := uintptr(syscall.MS_REMOUNT)
	if readOnly {
		flags |= syscall.MS_RDONLY
	}
	if err := syscall.Mount("ckpt-test", dir, "tmpfs", flags, ""); err != nil {
		t.Fatalf("remount %s (read-only %v): %v", dir, readOnly, err)
	}
}

// fillDisk writes path until the filesystem is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	for {
		if _, err = f.Write(buf); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v, want ENOSPC", err)
	}
}

// noTempFiles fails if a failed write left a temporary file in dir.
func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

// checkLatest checks that the newest valid checkpoint of job is seq and
// holds want.
func checkLatest(t *testing.T, st store.Store, job string, seq uint64, want payloadState) {
	t.Helper()
	ctx := context.Background()
	cp, err := ckpt.Latest(ctx, st, job, quietLogger())
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	if cp.Seq != seq {
		t.Fatalf("Latest: checkpoint %d, want %d", cp.Seq, seq)
	}
	if err := ckpt.Verify(ctx, st, cp); err != nil {
		t.Fatalf("Verify checkpoint %d: %v", seq, err)
	}
	var got payloadState
	if err := ckpt.Load(ctx, st, cp, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("checkpoint %d holds the state of seq %d, want %d", seq, got.Seq, want.Seq)
	}
	entries, err := ckpt.List(ctx, st, job)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(entries); n == 0 || entries[n-1].Seq != seq {
		t.Fatalf("List: %+v, want checkpoint %d the newest", entries, seq)
	}
}

func openPayloadJob(t *testing.T, dir, job string) *ckpt.Job[payloadState] {
	t.Helper()
	j, err := ckpt.Open[payloadState](context.Background(), job, ckpt.Config{Store: dir, NoSignals: true, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	ckpt.SetChunkSize(j, 64<<10)
	return j
}

// storeFaultCases are the state sizes a failing store is tried with: one
// that fails at the commit point (the manifest) and one that fails at the
// first blob.
var storeFaultCases = []struct {
	name string
	size int
}{
	{"inline state", 64},
	{"state in several blobs", 300 << 10},
}

func TestCheckpointOnFullDisk(t *testing.T) {
	const job = "full"
	for _, tc := range storeFaultCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			disk := filepath.Join(t.TempDir(), "disk")
			mountTmpfs(t, disk, 16<<20)
			dir := filepath.Join(disk, "store")
			st := openFileStore(t, dir)
			s1, s2 := payloadFor(1, tc.size), payloadFor(2, tc.size)

			j := openPayloadJob(t, dir, job)
			j.State = s1
			if _, err := j.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			filler := filepath.Join(disk, "filler")
			fillDisk(t, filler)

			j.State = s2
			_, err := j.Checkpoint(ctx)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("checkpoint on a full disk: %v, want ENOSPC", err)
			}
			if !strings.Contains(err.Error(), "checkpoint 2") {
				t.Errorf("error %q does not say which checkpoint failed", err)
			}
			noTempFiles(t, dir)
			checkLatest(t, st, job, 1, s1)

			// A job reopened on the still-full disk resumes from 1 and
			// still cannot checkpoint.
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			j = openPayloadJob(t, dir, job)
			if r := j.Resumed(); r == nil || r.Seq != 1 || !reflect.DeepEqual(j.State, s1) {
				t.Fatalf("reopened job resumed from %+v with state of seq %d, want checkpoint 1", r, j.State.Seq)
			}
			j.State = s2
			if _, err := j.Checkpoint(ctx); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("checkpoint on a full disk after reopening: %v, want ENOSPC", err)
			}
			checkLatest(t, st, job, 1, s1)

			// Space freed: the same job checkpoints again.
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			cp, err := j.Checkpoint(ctx)
			if err != nil {
				t.Fatalf("checkpoint after freeing space: %v", err)
			}
			if cp.Seq != 2 {
				t.Fatalf("checkpoint after freeing space has seq %d, want 2", cp.Seq)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			checkLatest(t, st, job, 2, s2)
		})
	}
}

func TestCheckpointOnReadOnlyStore(t *testing.T) {
	const job = "ro"
	for _, tc := range storeFaultCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := filepath.Join(t.TempDir(), "store")
			// The job's checkpoints and blobs each live on a filesystem of
			// their own; the job's lock file stays writable (and open), as
			// when a disk holding only the data goes read-only on errors.
			mounts := []string{filepath.Join(dir, "jobs", job, "checkpoints"), filepath.Join(dir, "jobs", job, "blobs")}
			for _, m := range mounts {
				mountTmpfs(t, m, 16<<20)
			}
			st := openFileStore(t, dir)
			s1, s2 := payloadFor(1, tc.size), payloadFor(2, tc.size)

			j := openPayloadJob(t, dir, job)
			j.State = s1
			if _, err := j.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			for _, m := range mounts {
				remount(t, m, true)
			}
			j.State = s2
			if _, err := j.Checkpoint(ctx); !errors.Is(err, syscall.EROFS) {
				t.Fatalf("checkpoint on a read-only store: %v, want EROFS", err)
			}
			checkLatest(t, st, job, 1, s1)

			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			j = openPayloadJob(t, dir, job)
			if r := j.Resumed(); r == nil || r.Seq != 1 || !reflect.DeepEqual(j.State, s1) {
				t.Fatalf("reopened job resumed from %+v with state of seq %d, want checkpoint 1", r, j.State.Seq)
			}
			j.State = s2
			if _, err := j.Checkpoint(ctx); !errors.Is(err, syscall.EROFS) {
				t.Fatalf("checkpoint on a read-only store after reopening: %v, want EROFS", err)
			}

			for _, m := range mounts {
				remount(t, m, false)
			}
			cp, err := j.Checkpoint(ctx)
			if err != nil {
				t.Fatalf("checkpoint after remounting read-write: %v", err)
			}
			if cp.Seq != 2 {
				t.Fatalf("checkpoint after remounting read-write has seq %d, want 2", cp.Seq)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			checkLatest(t, st, job, 2, s2)
		})
	}
}

// cancellingCodec is a codec that cancels a context once it has encoded
// after bytes: a cancellation at a known point in the middle of a large
// checkpoint.
type cancellingCodec struct {
	codec.Codec
	after  int
	cancel context.CancelFunc // nil: do not cancel
}

func (c *cancellingCodec) Encode(w io.Writer, v any) error {
	if c.cancel == nil {
		return c.Codec.Encode(w, v)
	}
	return c.Codec.Encode(&cancelAfter{w: w, left: c.after, cancel: c.cancel}, v)
}

type cancelAfter struct {
	w      io.Writer
	left   int
	cancel context.CancelFunc
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	if c.left < 0 || c.left >= len(p) {
		c.left -= len(p)
		return c.w.Write(p)
	}
	n, err := c.w.Write(p[:c.left])
	if err != nil {
		return n, err
	}
	c.cancel()
	c.left = -1
	m, err := c.w.Write(p[n:])
	return n + m, err
}

// cancellingStore is a real store that cancels a context when a given
// number of blobs have been written: a cancellation while chunks are in
// flight on the writer's goroutines.
type cancellingStore struct {
	store.Store
	after  int32
	cancel context.CancelFunc // set and cleared while no checkpoint runs
	puts   atomic.Int32       // Put runs on several goroutines at once
}

func (s *cancellingStore) Put(ctx context.Context, name string, r io.Reader) error {
	if s.cancel != nil && strings.Contains(name, "/blobs/") && s.puts.Add(1) == s.after {
		s.cancel()
	}
	return s.Store.Put(ctx, name, r)
}

func TestCheckpointCancelled(t *testing.T) {
	const job = "cancel"
	const size = 512 << 10 // 512 KiB of state in 64 KiB chunks
	cases := []struct {
		name string
		arm  func(c *cancellingCodec, s *cancellingStore, cancel context.CancelFunc)
	}{
		{"while encoding", func(c *cancellingCodec, _ *cancellingStore, cancel context.CancelFunc) {
			c.after, c.cancel = size/2, cancel
		}},
		{"while writing blobs", func(_ *cancellingCodec, s *cancellingStore, cancel context.CancelFunc) {
			s.after, s.cancel = 3, cancel
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			st := openFileStore(t, dir)
			cst := &cancellingStore{Store: st}
			cc := &cancellingCodec{Codec: codec.JSON{}}
			j, err := ckpt.Open[payloadState](context.Background(), job, ckpt.Config{Backend: cst, Codec: cc, NoSignals: true, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			ckpt.SetChunkSize(j, 64<<10)
			s1, s2 := payloadFor(1, size), payloadFor(2, size)
			j.State = s1
			if _, err := j.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tc.arm(cc, cst, cancel)
			j.State = s2
			if _, err := j.Checkpoint(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled checkpoint: %v, want context.Canceled", err)
			}
			if ctx.Err() == nil {
				t.Fatal("the checkpoint ended before the cancellation: the test cancelled nothing")
			}
			checkLatest(t, st, job, 1, s1)

			// The job goes on: the next checkpoint is 2 and holds s2.
			cc.cancel, cst.cancel = nil, nil
			cp, err := j.Checkpoint(context.Background())
			if err != nil || cp.Seq != 2 {
				t.Fatalf("checkpoint after the cancelled one: %+v, %v; want seq 2", cp, err)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			checkLatest(t, st, job, 2, s2)
		})
	}
}

// The crash test. A child process (this test binary, selected by
// crashChildEnv) commits checkpoints in a loop, each holding a state that
// is a deterministic function of its sequence number, and reports every
// commit on stdout. The parent SIGKILLs it at random instants and checks
// what a restart would find.

const (
	crashChildEnv = "CKPT_CRASH_CHILD_STORE"
	crashJob      = "crash"
	crashChunk    = 320 << 10
)

// crashState is the child's state. Shared is the same in every checkpoint
// that has it, so its chunks are reused from earlier checkpoints rather
// than written again: retention and resume must keep them alive. It
// encodes itself (codec.Binary), so that the test spends its time on
// checkpoints rather than on JSON.
type crashState struct {
	Seq    uint64
	Shared []byte
	Data   []byte
}

// MarshalBinary writes Shared, Data, then seq and the length of Shared.
// Shared comes first so that it fills the first chunk on its own: a
// header in front would make that chunk differ between checkpoints, and
// nothing would be shared.
func (s *crashState) MarshalBinary() ([]byte, error) {
	b := append(slices.Clip(s.Shared), s.Data...)
	b = binary.LittleEndian.AppendUint64(b, s.Seq)
	return binary.LittleEndian.AppendUint64(b, uint64(len(s.Shared))), nil
}

// UnmarshalBinary reads what MarshalBinary wrote.
func (s *crashState) UnmarshalBinary(b []byte) error {
	if len(b) < 16 {
		return fmt.Errorf("crash state of %d bytes", len(b))
	}
	body, trailer := b[:len(b)-16], b[len(b)-16:]
	n := binary.LittleEndian.Uint64(trailer[8:])
	if n > uint64(len(body)) {
		return fmt.Errorf("crash state: shared part of %d bytes in %d", n, len(body))
	}
	s.Seq = binary.LittleEndian.Uint64(trailer[:8])
	s.Shared = nil
	if n > 0 {
		s.Shared = bytes.Clone(body[:n])
	}
	s.Data = bytes.Clone(body[n:])
	return nil
}

// crashStateFor returns the state of checkpoint seq: tiny (inline in the
// manifest), 400 KiB (two chunks), or 720 KiB (three chunks, the first
// one shared). Chunks are larger than the store's write buffer, so that a blob
// takes several writes: a kill can fall between them.
func crashStateFor(seq uint64) crashState {
	random := func(seed uint64, n int) []byte {
		b := make([]byte, n)
		rand.NewChaCha8(seedFor(seed)).Read(b)
		return b
	}
	switch seq % 3 {
	case 0:
		return crashState{Seq: seq, Data: random(seq, 16)}
	case 1:
		return crashState{Seq: seq, Data: random(seq, 400<<10)}
	}
	return crashState{Seq: seq, Shared: random(1<<62, 320<<10), Data: random(seq, 400<<10)}
}

// TestCrashChild is the child process of TestKilledJobResumes.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("the child process of TestKilledJobResumes; runs only as that")
	}
	fail := func(code int, format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		os.Exit(code)
	}
	// The parent holds our stdin open; when it goes, so do we.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	ctx := context.Background()
	j, err := ckpt.Open[crashState](ctx, crashJob, ckpt.Config{Store: dir, Codec: codec.Binary{}, NoSignals: true, Logger: quietLogger()})
	if err != nil {
		fail(2, "open: %v", err)
	}
	ckpt.SetChunkSize(j, crashChunk)
	var seq uint64
	if r := j.Resumed(); r != nil {
		seq = r.Seq
		if !reflect.DeepEqual(j.State, crashStateFor(seq)) {
			fail(3, "resumed from checkpoint %d with the state of seq %d", seq, j.State.Seq)
		}
	}
	fmt.Printf("open %d\n", seq)
	for {
		seq++
		j.State = crashStateFor(seq)
		fmt.Printf("begin %d\n", seq)
		cp, err := j.Checkpoint(ctx)
		if err != nil {
			fail(4, "checkpoint %d: %v", seq, err)
		}
		if cp.Seq != seq {
			fail(5, "checkpoint got seq %d, want %d", cp.Seq, seq)
		}
		fmt.Printf("committed %d\n", seq)
	}
}

// typical returns the median of the last few durations: a slow outlier
// on a busy machine must not stretch every later kill delay.
func typical(d []time.Duration) time.Duration {
	d = slices.Clone(d[max(0, len(d)-32):])
	if len(d) == 0 {
		return 20 * time.Millisecond
	}
	slices.Sort(d)
	return max(d[len(d)/2], time.Millisecond)
}

// crashChild is one run of the child process.
type crashChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr bytes.Buffer
}

func startCrashChild(t *testing.T, dir string) *crashChild {
	t.Helper()
	c := &crashChild{lines: make(chan string, 1024)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	c.cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	c.cmd.Stderr = &c.stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// If the test stops early, the child must not outlive it.
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		c.stdin.Close()
	})
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return c
}

// crashReport is what a child said before it died.
type crashReport struct {
	opened    bool   // it held the job's lock
	committed uint64 // the last seq it reported committed, 0 if none
	commits   int
	begun     uint64    // the last seq it began to checkpoint
	began     time.Time // when that was reported
	took      []time.Duration
}

func (r *crashReport) add(t *testing.T, line string) {
	t.Helper()
	word, n, _ := strings.Cut(line, " ")
	seq, err := strconv.ParseUint(n, 10, 64)
	switch {
	case err != nil:
		t.Fatalf("child printed %q", line)
	case word == "open":
		r.opened = true
	case word == "begin":
		r.begun, r.began = seq, time.Now()
	case word == "committed":
		if seq <= r.committed || seq != r.begun {
			t.Fatalf("child reported checkpoint %d after %d (begun %d)", seq, r.committed, r.begun)
		}
		r.committed = seq
		r.commits++
		r.took = append(r.took, time.Since(r.began))
	default:
		t.Fatalf("child printed %q", line)
	}
}

// killAfter waits until the child has reported commits commits and begun
// the next checkpoint (commits < 0: does not wait), then for delay(), then
// kills it and returns what it reported.
func (c *crashChild) killAfter(t *testing.T, commits int, delay func(*crashReport) time.Duration) crashReport {
	t.Helper()
	var rep crashReport
	if commits >= 0 {
		deadline := time.After(60 * time.Second)
		for !rep.opened || rep.commits < commits || rep.begun <= rep.committed {
			select {
			case line, ok := <-c.lines:
				if !ok {
					c.cmd.Wait()
					t.Fatalf("child exited (%v) before it was killed:\n%s", c.cmd.ProcessState, c.stderr.String())
				}
				rep.add(t, line)
			case <-deadline:
				t.Fatalf("child made no progress in 60s:\n%s", c.stderr.String())
			}
		}
	}
	time.Sleep(delay(&rep)) // picks the kill moment; nothing waits on it
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for line := range c.lines {
		rep.add(t, line)
	}
	c.cmd.Wait()
	c.stdin.Close()
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by SIGKILL:\n%s", c.cmd.ProcessState, c.stderr.String())
	}
	if strings.Contains(c.stderr.String(), "DATA RACE") {
		t.Fatalf("the race detector fired in the child:\n%s", c.stderr.String())
	}
	return rep
}

func TestKilledJobResumes(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child process")
	}
	if testing.Short() {
		t.Skip("a kill loop of 30 child processes; runs without -short")
	}
	kills := 30
	if os.Getenv("CKPT_LONG") == "1" {
		kills = 500
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CKPT_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CKPT_CRASH_SEED: %v", err)
		}
	}
	t.Logf("kill moments from seed %d (set CKPT_CRASH_SEED to repeat them)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	ctx := context.Background()
	dir := t.TempDir()
	st := openFileStore(t, dir)
	// The blob that every checkpoint with a shared part references.
	shared := sha256.Sum256(crashStateFor(2).Shared)
	sharedID := hex.EncodeToString(shared[:])
	var last uint64 // newest checkpoint known committed
	var lastToken uint64
	var took []time.Duration // how long the children's checkpoints took
	for kill := range kills {
		c := startCrashChild(t, dir)
		var rep crashReport
		if kill%4 == 0 {
			// Anywhere from start-up through opening to the first commits.
			rep = c.killAfter(t, -1, func(*crashReport) time.Duration { return time.Duration(rng.Int64N(int64(150 * time.Millisecond))) })
		} else {
			// Within a checkpoint: after it began, mostly before it ends.
			rep = c.killAfter(t, 1+rng.IntN(3), func(r *crashReport) time.Duration {
				took = append(took, r.took...)
				return time.Duration(rng.Int64N(int64(2 * typical(took))))
			})
		}
		committed := max(last, rep.committed)

		log, logs := newLogCapture()
		cp, err := ckpt.Latest(ctx, st, crashJob, log)
		if committed == 0 && errors.Is(err, ckpt.ErrNotFound) {
			continue // killed before its first commit
		}
		if err != nil {
			t.Fatalf("kill %d: Latest: %v", kill, err)
		}
		if cp.Seq < committed || cp.Seq > committed+1 {
			t.Fatalf("kill %d: newest checkpoint is %d; the child had committed %d", kill, cp.Seq, committed)
		}
		if strings.Contains(logs.String(), `"WARN"`) {
			t.Fatalf("kill %d: Latest warned:\n%s", kill, logs)
		}
		if err := ckpt.Verify(ctx, st, cp); err != nil {
			t.Fatalf("kill %d: Verify checkpoint %d: %v", kill, cp.Seq, err)
		}
		var got crashState
		if err := ckpt.Load(ctx, st, cp, &got); err != nil {
			t.Fatalf("kill %d: Load checkpoint %d: %v", kill, cp.Seq, err)
		}
		if !reflect.DeepEqual(got, crashStateFor(cp.Seq)) {
			t.Fatalf("kill %d: checkpoint %d holds the state of seq %d (%d bytes)", kill, cp.Seq, got.Seq, len(got.Data))
		}
		// Nothing torn is visible at all: every checkpoint kept verifies
		// (retention never removes a blob before the manifests naming
		// it), and every writer's fencing token exceeds the one before.
		entries, err := ckpt.List(ctx, st, crashJob)
		if err != nil {
			t.Fatal(err)
		}
		var token uint64
		for _, e := range entries {
			if e.Err != nil {
				t.Fatalf("kill %d: checkpoint %d: %v", kill, e.Seq, e.Err)
			}
			if err := ckpt.Verify(ctx, st, e.Checkpoint); err != nil {
				t.Fatalf("kill %d: kept checkpoint %d: %v", kill, e.Seq, err)
			}
			if chunks := e.Checkpoint.State[0].Chunks; e.Seq%3 == 2 && chunks[0].ID != sharedID {
				t.Fatalf("kill %d: the first chunk of checkpoint %d is %s, not the shared chunk %s: the test shares nothing", kill, e.Seq, chunks[0].ID, sharedID)
			}
			if e.Checkpoint.Token < token {
				t.Fatalf("kill %d: checkpoint %d has fencing token %d, below the %d of an earlier one", kill, e.Seq, e.Checkpoint.Token, token)
			}
			token = e.Checkpoint.Token
		}
		if token < lastToken {
			t.Fatalf("kill %d: newest checkpoint has fencing token %d, below the %d of an earlier writer", kill, token, lastToken)
		}
		lastToken = token

		// The job reopens, taking the dead child's lock over.
		log, logs = newLogCapture()
		j, err := ckpt.Open[crashState](ctx, crashJob, ckpt.Config{Store: dir, Codec: codec.Binary{}, NoSignals: true, Logger: log})
		if err != nil {
			t.Fatalf("kill %d: Open: %v", kill, err)
		}
		if r := j.Resumed(); r == nil || r.Seq != cp.Seq || !reflect.DeepEqual(j.State, got) {
			j.Close()
			t.Fatalf("kill %d: Open resumed from %+v, want checkpoint %d", kill, r, cp.Seq)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		if rep.opened && !strings.Contains(logs.String(), "taking over a lock") {
			t.Fatalf("kill %d: reopening did not report taking over the dead child's lock:\n%s", kill, logs)
		}
		last = cp.Seq
	}
	if last < uint64(kills)/2 {
		t.Fatalf("only %d checkpoints in %d runs: the kills came too early to test much", last, kills)
	}
	t.Logf("%d kills, %d checkpoints committed; a checkpoint took %v typically", kills, last, typical(took))
}

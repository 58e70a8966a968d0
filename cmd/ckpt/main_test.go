package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
)

// result is what one in-process run of ckpt produced.
type result struct {
	code           int
	stdout, stderr string
}

// ckptRun runs ckpt in-process with stdin (nil: empty, not a terminal).
func ckptRun(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), args, stdin, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// want fails the test unless the run ended with code.
func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// errLine returns the first stderr line, checking it is ckpt's error line.
func (r result) errLine(t *testing.T) string {
	t.Helper()
	line, _, _ := strings.Cut(r.stderr, "\n")
	if !strings.HasPrefix(line, "ckpt: ") {
		t.Fatalf("stderr does not start with a \"ckpt: \" error line:\n%s", r.stderr)
	}
	return line
}

// testState is the state of the jobs the tests write.
type testState struct {
	Seen  int      `json:"seen"`
	Notes []string `json:"notes"`
}

// offsetSource reports a byte offset in a file, as a real source would.
type offsetSource struct {
	file   string
	offset int64
}

func (s *offsetSource) Position() (json.RawMessage, error) {
	return json.Marshal(struct {
		File   string `json:"file"`
		Offset int64  `json:"offset"`
	}{s.file, s.offset})
}

// Steps of writeJob.
const (
	stepCheckpoint = "checkpoint"
	stepSavepoint  = "savepoint" // labelled "before-migration"
	stepFinish     = "finish"
)

// recordsPerStep and bytesPerStep are the input each step reads.
const (
	recordsPerStep = 100
	bytesPerStep   = 4096
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openJob opens job in the store dir, keeping every checkpoint.
func openJob(t *testing.T, dir, job string) *ckpt.Job[testState] {
	t.Helper()
	j, err := ckpt.Open[testState](context.Background(), job, ckpt.Config{
		Store:     dir,
		Retain:    -1,
		NoSignals: true,
		Logger:    quietLogger(),
		Metadata:  map[string]string{"input": job + ".csv"},
	})
	if err != nil {
		t.Fatalf("open job %s: %v", job, err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// writeJob runs job in the store dir through steps, each reading
// recordsPerStep records and adding a note of noteSize random hex
// characters to the state (notes above a few KiB make the state a blob of
// its own rather than inline in the manifest). It returns the checkpoints.
func writeJob(t *testing.T, dir, job string, noteSize int, steps ...string) []*ckpt.Checkpoint {
	t.Helper()
	ctx := context.Background()
	j := openJob(t, dir, job)
	defer j.Close()
	src := &offsetSource{file: job + ".csv"}
	j.Bind(src, nil)
	var cps []*ckpt.Checkpoint
	for _, step := range steps {
		j.State.Seen += recordsPerStep
		j.State.Notes = append(j.State.Notes, randomHex(t, noteSize))
		src.offset += bytesPerStep
		if err := j.Advance(ctx, recordsPerStep, bytesPerStep); err != nil {
			t.Fatal(err)
		}
		var cp *ckpt.Checkpoint
		var err error
		switch step {
		case stepCheckpoint:
			cp, err = j.Checkpoint(ctx)
		case stepSavepoint:
			cp, err = j.Savepoint(ctx, "before-migration")
		case stepFinish:
			cp, err = j.Finish(ctx)
		default:
			t.Fatalf("unknown step %q", step)
		}
		if err != nil {
			t.Fatalf("%s %s: %v", job, step, err)
		}
		cps = append(cps, cp)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return cps
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)[:n]
}

// ordersStore returns a store with the job "orders": checkpoints 1 and 2,
// savepoint 3, checkpoint 4 and final checkpoint 5, each with its state
// in a blob.
func ordersStore(t *testing.T) (string, []*ckpt.Checkpoint) {
	t.Helper()
	dir := t.TempDir()
	cps := writeJob(t, dir, "orders", 12000, stepCheckpoint, stepCheckpoint, stepSavepoint, stepCheckpoint, stepFinish)
	for _, cp := range cps {
		if blobOf(t, cp) == "" {
			t.Fatalf("checkpoint %d keeps its state inline; the tests need blobs", cp.Seq)
		}
	}
	return dir, cps
}

// blobOf returns the store object of cp's first state blob, or "".
func blobOf(t *testing.T, cp *ckpt.Checkpoint) string {
	t.Helper()
	for _, s := range cp.State {
		for _, c := range s.Chunks {
			if c.Data == nil {
				return "jobs/" + cp.Job + "/blobs/" + c.ID
			}
		}
	}
	return ""
}

// manifestObject is the store object of a checkpoint's manifest
// (docs/FORMAT.md).
func manifestObject(job string, seq uint64) string {
	return fmt.Sprintf("jobs/%s/checkpoints/%020d", job, seq)
}

// flipByte corrupts the object name of the store dir in place.
func flipByte(t *testing.T, dir, name string, at int) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at += len(b)
	}
	b[at] ^= 0x55
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// seqs returns the sequence numbers of job's checkpoints, read with the
// library.
func seqs(t *testing.T, dir, job string) []uint64 {
	t.Helper()
	ctx := context.Background()
	st, err := ckpt.OpenStore(ctx, dir, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	entries, err := ckpt.List(ctx, st, job)
	if err != nil {
		t.Fatal(err)
	}
	out := []uint64{}
	for _, e := range entries {
		out = append(out, e.Seq)
	}
	return out
}

// jobsIn returns the jobs of the store dir, read with the library.
func jobsIn(t *testing.T, dir string) []string {
	t.Helper()
	ctx := context.Background()
	st, err := ckpt.OpenStore(ctx, dir, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	jobs, err := ckpt.Jobs(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// parseTable cuts a tabwriter table into rows of named cells. Columns are
// found by their header names; tabwriter aligns by runes, so cells are cut
// at rune offsets.
func parseTable(t *testing.T, out string, cols ...string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	starts := make([]int, len(cols))
	for i, c := range cols {
		at := strings.Index(lines[0], c)
		if at < 0 {
			t.Fatalf("table header %q has no column %q", lines[0], c)
		}
		starts[i] = len([]rune(lines[0][:at]))
	}
	if !slices.IsSorted(starts) {
		t.Fatalf("columns %v out of order in header %q", cols, lines[0])
	}
	var rows []map[string]string
	for _, l := range lines[1:] {
		r := []rune(l)
		row := make(map[string]string, len(cols))
		for i, c := range cols {
			from, to := starts[i], len(r)
			if i+1 < len(cols) {
				to = min(starts[i+1], len(r))
			}
			if from > len(r) {
				from = len(r)
			}
			row[c] = strings.TrimSpace(string(r[from:to]))
		}
		rows = append(rows, row)
	}
	return rows
}

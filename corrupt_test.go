package ckpt_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store/filestore"
)

// This file damages checkpoints at rest, the way disks and people do, and
// checks that nothing damaged is ever restored: a corrupt newest checkpoint
// is reported (naming its sequence number and the bad object) and the
// previous valid one is used; when none is valid, or the format is newer
// than this ckpt, opening fails instead of starting over.

// payloadState is the state of the jobs in these tests. Data is
// pseudo-random, so it does not compress and its size is the blob's size.
type payloadState struct {
	Seq  int    `json:"seq"`
	Data []byte `json:"data"`
}

// payloadFor returns the state a job holds at checkpoint seq: a
// deterministic function of seq, so a test knows what each checkpoint
// must restore.
func payloadFor(seq, size int) payloadState {
	b := make([]byte, size)
	rand.NewChaCha8(seedFor(uint64(seq))).Read(b)
	return payloadState{Seq: seq, Data: b}
}

func seedFor(n uint64) [32]byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], n)
	return seed
}

// logCapture collects a logger's records as JSON lines.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newLogCapture() (*slog.Logger, *logCapture) {
	c := &logCapture{}
	return slog.New(slog.NewJSONHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug})), c
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCapture) records(t *testing.T) []map[string]any {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(c.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// warningsAbout returns the warnings whose "seq" attribute is seq.
func (c *logCapture) warningsAbout(t *testing.T, seq uint64) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range c.records(t) {
		if r["level"] == "WARN" && r["seq"] == float64(seq) {
			out = append(out, r)
		}
	}
	return out
}

func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// The store layout of docs/FORMAT.md, written out here independently of
// the code, so that a change to it fails these tests.
func manifestObject(job string, seq uint64) string {
	return fmt.Sprintf("jobs/%s/checkpoints/%020d", job, seq)
}

func blobObject(job, id string) string { return "jobs/" + job + "/blobs/" + id }

func objectPath(dir, object string) string { return filepath.Join(dir, filepath.FromSlash(object)) }

func openFileStore(t *testing.T, dir string) *filestore.Store {
	t.Helper()
	st, err := filestore.Open(dir, filestore.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// writePayloadCheckpoints commits one checkpoint per state in states (seq
// 1, 2, ...) into a job in dir and returns them.
func writePayloadCheckpoints(t *testing.T, dir, job string, cfg ckpt.Config, states []payloadState) []*ckpt.Checkpoint {
	t.Helper()
	cfg.Store = dir
	cfg.NoSignals = true
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	j, err := ckpt.Open[payloadState](context.Background(), job, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var cps []*ckpt.Checkpoint
	for i, s := range states {
		j.State = s
		cp, err := j.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if cp.Seq != uint64(i+1) {
			t.Fatalf("checkpoint %d got seq %d", i+1, cp.Seq)
		}
		cps = append(cps, cp)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return cps
}

// onlyBlob returns the id of the single stored (not inline) blob of cp.
func onlyBlob(t *testing.T, cp *ckpt.Checkpoint) string {
	t.Helper()
	var ids []string
	for _, s := range cp.State {
		for _, c := range s.Chunks {
			if c.Data == nil {
				ids = append(ids, c.ID)
			}
		}
	}
	if len(ids) != 1 {
		t.Fatalf("checkpoint %d has %d stored blobs, the test needs exactly one", cp.Seq, len(ids))
	}
	return ids[0]
}

func flipByte(t *testing.T, path string, at func(size int) int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at(len(b))] ^= 0x20
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func truncateFile(t *testing.T, path string, size func(int) int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(size(int(fi.Size())))); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path string, extra []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(extra); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// splitManifest returns a manifest file's header fields and body.
func splitManifest(t *testing.T, b []byte) ([]string, []byte) {
	t.Helper()
	header, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		t.Fatalf("manifest has no header line: %q", b)
	}
	return strings.Fields(string(header)), body
}

// writeManifestFile writes a manifest with a correct header for body,
// claiming format version.
func writeManifestFile(t *testing.T, path string, version int, body []byte) {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "ckpt-manifest %d %d %08x\n", version, len(body), crc32.Checksum(body, castagnoli))
	b.Write(body)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rewriteManifest decodes the manifest at path, lets edit change it and
// writes it back with a valid header: damage the checksum cannot see.
func rewriteManifest(t *testing.T, path string, edit func(cp *ckpt.Checkpoint)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	header, body := splitManifest(t, b)
	version, err := strconv.Atoi(header[1])
	if err != nil {
		t.Fatal(err)
	}
	var cp ckpt.Checkpoint
	if err := json.Unmarshal(body, &cp); err != nil {
		t.Fatal(err)
	}
	edit(&cp)
	body, err = json.Marshal(&cp)
	if err != nil {
		t.Fatal(err)
	}
	writeManifestFile(t, path, version, body)
}

// snapshotJob returns the content hash of every checkpoint and blob file of
// job in dir, to prove an operation changed nothing.
func snapshotJob(t *testing.T, dir, job string) map[string]string {
	t.Helper()
	out := map[string]string{}
	root := filepath.Join(dir, "jobs", job)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "LOCK" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(root, p)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCorruptNewestCheckpointFallsBackToPrevious(t *testing.T) {
	const job = "corrupt"
	type target struct {
		object     string // the object a CorruptError must name
		manifestOK bool   // the manifest still decodes; Verify finds the damage
	}
	cases := []struct {
		name         string
		size         int  // bytes of state: 64 is inline, 20 KiB a stored blob
		uncompressed bool // keep stored sizes equal for blobs of equal length
		corrupt      func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target
	}{
		{"manifest byte flipped", 20 << 10, false, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			m := manifestObject(job, 3)
			flipByte(t, objectPath(dir, m), func(n int) int { return n / 2 })
			return target{object: m}
		}},
		{"manifest header byte flipped", 20 << 10, false, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			m := manifestObject(job, 3)
			flipByte(t, objectPath(dir, m), func(int) int { return len("ckpt-manifest 1 ") })
			return target{object: m}
		}},
		{"manifest truncated", 20 << 10, false, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			m := manifestObject(job, 3)
			truncateFile(t, objectPath(dir, m), func(n int) int { return n - 1 })
			return target{object: m}
		}},
		{"manifest truncated to nothing", 20 << 10, false, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			m := manifestObject(job, 3)
			truncateFile(t, objectPath(dir, m), func(int) int { return 0 })
			return target{object: m}
		}},
		{"manifest with bytes appended", 20 << 10, false, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			m := manifestObject(job, 3)
			appendFile(t, objectPath(dir, m), []byte("\n{}"))
			return target{object: m}
		}},
		{"manifest naming another checkpoint", 20 << 10, false, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			m := manifestObject(job, 3)
			rewriteManifest(t, objectPath(dir, m), func(cp *ckpt.Checkpoint) { cp.Seq = 2 })
			return target{object: m}
		}},
		{"blob payload byte flipped", 20 << 10, false, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			b := blobObject(job, onlyBlob(t, cps[2]))
			flipByte(t, objectPath(dir, b), func(n int) int { return n / 2 })
			return target{object: b, manifestOK: true}
		}},
		{"blob header byte flipped", 20 << 10, false, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			b := blobObject(job, onlyBlob(t, cps[2]))
			flipByte(t, objectPath(dir, b), func(int) int { return 9 })
			return target{object: b, manifestOK: true}
		}},
		{"blob truncated", 20 << 10, false, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			b := blobObject(job, onlyBlob(t, cps[2]))
			truncateFile(t, objectPath(dir, b), func(n int) int { return n / 2 })
			return target{object: b, manifestOK: true}
		}},
		{"blob with bytes appended", 20 << 10, false, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			b := blobObject(job, onlyBlob(t, cps[2]))
			appendFile(t, objectPath(dir, b), []byte{0})
			return target{object: b, manifestOK: true}
		}},
		{"blob missing", 20 << 10, false, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			b := blobObject(job, onlyBlob(t, cps[2]))
			if err := os.Remove(objectPath(dir, b)); err != nil {
				t.Fatal(err)
			}
			return target{object: b, manifestOK: true}
		}},
		{"blob replaced by another valid blob", 20 << 10, true, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			b := blobObject(job, onlyBlob(t, cps[2]))
			other, err := os.ReadFile(objectPath(dir, blobObject(job, onlyBlob(t, cps[1]))))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(objectPath(dir, b), other, 0o644); err != nil {
				t.Fatal(err)
			}
			return target{object: b, manifestOK: true}
		}},
		{"inline chunk altered", 64, false, func(t *testing.T, dir string, cps []*ckpt.Checkpoint) target {
			m := manifestObject(job, 3)
			rewriteManifest(t, objectPath(dir, m), func(cp *ckpt.Checkpoint) {
				data := cp.State[0].Chunks[0].Data
				if data == nil {
					t.Fatal("state of checkpoint 3 is not inline")
				}
				data[len(data)-1] ^= 1
			})
			return target{object: m, manifestOK: true}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			want := []payloadState{payloadFor(1, tc.size), payloadFor(2, tc.size), payloadFor(3, tc.size)}
			cps := writePayloadCheckpoints(t, dir, job, ckpt.Config{Uncompressed: tc.uncompressed}, want)
			bad := tc.corrupt(t, dir, cps)
			st := openFileStore(t, dir)

			// List and Verify name the corrupt object; the others verify.
			entries, err := ckpt.List(ctx, st, job)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 3 {
				t.Fatalf("List: %d entries, want 3", len(entries))
			}
			for _, e := range entries[:2] {
				if e.Err != nil {
					t.Fatalf("List: checkpoint %d: %v", e.Seq, e.Err)
				}
				if err := ckpt.Verify(ctx, st, e.Checkpoint); err != nil {
					t.Fatalf("Verify checkpoint %d: %v", e.Seq, err)
				}
			}
			e := entries[2]
			err = e.Err
			if bad.manifestOK {
				if err != nil {
					t.Fatalf("List: checkpoint 3: %v, want a manifest that decodes", err)
				}
				err = ckpt.Verify(ctx, st, e.Checkpoint)
			} else if e.Checkpoint != nil {
				t.Fatalf("List returned the corrupt checkpoint 3: %+v", e.Checkpoint)
			}
			checkCorruptError(t, err, job, 3, bad.object)

			// Latest skips it, with a warning naming it.
			log, logs := newLogCapture()
			cp, err := ckpt.Latest(ctx, st, job, log)
			if err != nil {
				t.Fatalf("Latest: %v", err)
			}
			if cp.Seq != 2 {
				t.Fatalf("Latest returned checkpoint %d, want 2", cp.Seq)
			}
			if len(logs.warningsAbout(t, 3)) == 0 {
				t.Fatalf("Latest logged no warning naming checkpoint 3:\n%s", logs)
			}
			var got payloadState
			if err := ckpt.Load(ctx, st, cp, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want[1]) {
				t.Fatalf("Latest state is seq %d, want the state of checkpoint 2", got.Seq)
			}

			// Open resumes from checkpoint 2, with a warning naming 3.
			log, logs = newLogCapture()
			j, err := ckpt.Open[payloadState](ctx, job, ckpt.Config{Store: dir, NoSignals: true, Logger: log, Uncompressed: tc.uncompressed})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer j.Close()
			if r := j.Resumed(); r == nil || r.Seq != 2 {
				t.Fatalf("Open resumed from %+v, want checkpoint 2", r)
			}
			if !reflect.DeepEqual(j.State, want[1]) {
				t.Fatalf("Open restored the state of seq %d, want 2", j.State.Seq)
			}
			warnings := logs.warningsAbout(t, 3)
			if len(warnings) == 0 {
				t.Fatalf("Open logged no warning naming checkpoint 3:\n%s", logs)
			}
			if msg := fmt.Sprint(warnings[0]["err"]); !strings.Contains(msg, bad.object) {
				t.Errorf("warning %q does not name %s", msg, bad.object)
			}

			// A deterministic job recomputes the state of checkpoint 3. Its
			// new checkpoint must not lean on the damaged copy of it.
			j.State = want[2]
			cp4, err := j.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cp4.Seq != 4 {
				t.Fatalf("new checkpoint has seq %d, want 4", cp4.Seq)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			cp, err = ckpt.Latest(ctx, st, job, quietLogger())
			if err != nil {
				t.Fatalf("Latest after the new checkpoint: %v", err)
			}
			if cp.Seq != 4 {
				t.Fatalf("Latest after the new checkpoint: seq %d, want 4", cp.Seq)
			}
			got = payloadState{}
			if err := ckpt.Load(ctx, st, cp, &got); err != nil {
				t.Fatalf("Load checkpoint 4: %v", err)
			}
			if !reflect.DeepEqual(got, want[2]) {
				t.Fatalf("checkpoint 4 holds the state of seq %d, want 3", got.Seq)
			}
		})
	}
}

// checkCorruptError checks that err is a *CorruptError naming object of
// checkpoint seq.
func checkCorruptError(t *testing.T, err error, job string, seq uint64, object string) {
	t.Helper()
	var ce *ckpt.CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ckpt.ErrCorrupt) {
		t.Fatalf("got %v, want a *ckpt.CorruptError", err)
	}
	if ce.Job != job || ce.Seq != seq || !strings.HasPrefix(ce.Object, object) || ce.Err == nil {
		t.Fatalf("CorruptError names job %q seq %d object %q (%v), want job %q seq %d object %s", ce.Job, ce.Seq, ce.Object, ce.Err, job, seq, object)
	}
	if !strings.Contains(err.Error(), object) {
		t.Fatalf("error %q does not name %s", err, object)
	}
}

func TestAllCheckpointsCorruptIsAnError(t *testing.T) {
	const job = "allbad"
	cases := []struct {
		name    string
		corrupt func(t *testing.T, dir string, cps []*ckpt.Checkpoint)
	}{
		{"every manifest damaged", func(t *testing.T, dir string, cps []*ckpt.Checkpoint) {
			flipByte(t, objectPath(dir, manifestObject(job, 1)), func(n int) int { return n - 2 })
			truncateFile(t, objectPath(dir, manifestObject(job, 2)), func(n int) int { return n / 2 })
			appendFile(t, objectPath(dir, manifestObject(job, 3)), []byte(" "))
		}},
		{"every blob damaged", func(t *testing.T, dir string, cps []*ckpt.Checkpoint) {
			flipByte(t, objectPath(dir, blobObject(job, onlyBlob(t, cps[0]))), func(n int) int { return n - 1 })
			truncateFile(t, objectPath(dir, blobObject(job, onlyBlob(t, cps[1]))), func(n int) int { return 30 })
			if err := os.Remove(objectPath(dir, blobObject(job, onlyBlob(t, cps[2])))); err != nil {
				t.Fatal(err)
			}
		}},
		{"manifests and blobs damaged", func(t *testing.T, dir string, cps []*ckpt.Checkpoint) {
			flipByte(t, objectPath(dir, blobObject(job, onlyBlob(t, cps[0]))), func(n int) int { return 0 })
			flipByte(t, objectPath(dir, manifestObject(job, 2)), func(n int) int { return n / 3 })
			if err := os.Remove(objectPath(dir, blobObject(job, onlyBlob(t, cps[2])))); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			states := []payloadState{payloadFor(1, 10<<10), payloadFor(2, 10<<10), payloadFor(3, 10<<10)}
			cps := writePayloadCheckpoints(t, dir, job, ckpt.Config{}, states)
			tc.corrupt(t, dir, cps)
			before := snapshotJob(t, dir, job)

			// Twice: a failed Open must not leave the job looking fresh.
			for range 2 {
				log, logs := newLogCapture()
				j, err := ckpt.Open[payloadState](ctx, job, ckpt.Config{Store: dir, NoSignals: true, Logger: log})
				if err == nil {
					j.Close()
					t.Fatalf("Open succeeded (resumed from %+v) with every checkpoint corrupt", j.Resumed())
				}
				if !errors.Is(err, ckpt.ErrNoValidCheckpoint) {
					t.Fatalf("Open: %v, want ErrNoValidCheckpoint", err)
				}
				var ce *ckpt.CorruptError
				if !errors.As(err, &ce) || ce.Seq != 3 || !strings.Contains(err.Error(), ce.Object) {
					t.Fatalf("Open error %q does not name the newest corrupt checkpoint and its bad object", err)
				}
				for seq := uint64(1); seq <= 3; seq++ {
					if len(logs.warningsAbout(t, seq)) == 0 {
						t.Errorf("Open logged no warning about checkpoint %d", seq)
					}
				}
			}
			if after := snapshotJob(t, dir, job); !reflect.DeepEqual(before, after) {
				t.Fatalf("a failed Open changed the store:\nbefore %v\nafter  %v", before, after)
			}

			st := openFileStore(t, dir)
			_, err := ckpt.Latest(ctx, st, job, quietLogger())
			if !errors.Is(err, ckpt.ErrNoValidCheckpoint) || !errors.Is(err, ckpt.ErrCorrupt) {
				t.Fatalf("Latest: %v, want ErrNoValidCheckpoint naming the corruption", err)
			}
		})
	}
}

func TestNewerManifestFormatIsRefused(t *testing.T) {
	const job = "future"
	ctx := context.Background()
	dir := t.TempDir()
	states := []payloadState{payloadFor(1, 10<<10), payloadFor(2, 10<<10)}
	writePayloadCheckpoints(t, dir, job, ckpt.Config{}, states)
	// Checkpoint 2 as a newer ckpt might write it: a new version in an
	// otherwise well-formed header. Its body is whatever that version says.
	path := objectPath(dir, manifestObject(job, 2))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, body := splitManifest(t, b)
	body = append(body[:len(body)-1:len(body)-1], []byte(`,"incremental_base":1}`)...)
	writeManifestFile(t, path, ckpt.ManifestVersion+1, body)
	before := snapshotJob(t, dir, job)

	j, err := ckpt.Open[payloadState](ctx, job, ckpt.Config{Store: dir, NoSignals: true, Logger: quietLogger()})
	if err == nil {
		j.Close()
		t.Fatalf("Open resumed from %+v past a checkpoint in a newer format", j.Resumed())
	}
	if !errors.Is(err, ckpt.ErrFormat) || errors.Is(err, ckpt.ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrFormat (not corruption)", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "upgrade") || !strings.Contains(msg, "2") {
		t.Fatalf("Open error %q does not say which format it met and to upgrade", msg)
	}
	if after := snapshotJob(t, dir, job); !reflect.DeepEqual(before, after) {
		t.Fatalf("opening a newer-format job changed the store:\nbefore %v\nafter  %v", before, after)
	}

	st := openFileStore(t, dir)
	if _, err := ckpt.Latest(ctx, st, job, quietLogger()); !errors.Is(err, ckpt.ErrFormat) {
		t.Fatalf("Latest: %v, want ErrFormat", err)
	}
	entries, err := ckpt.List(ctx, st, job)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[1].Checkpoint != nil || !errors.Is(entries[1].Err, ckpt.ErrFormat) {
		t.Fatalf("List: %+v, want checkpoint 2 listed with an ErrFormat error", entries)
	}
	if _, err := ckpt.Get(ctx, st, job, 2); !errors.Is(err, ckpt.ErrFormat) {
		t.Fatalf("Get: %v, want ErrFormat", err)
	}
	// Retention by hand leaves a newer format's checkpoints and blobs to a
	// ckpt that reads them.
	if _, err := ckpt.Prune(ctx, st, job, 1, ckpt.AdminOptions{Logger: quietLogger()}); !errors.Is(err, ckpt.ErrFormat) {
		t.Fatalf("Prune: %v, want ErrFormat", err)
	}
	if after := snapshotJob(t, dir, job); !reflect.DeepEqual(before, after) {
		t.Fatalf("Prune changed a job with a newer-format checkpoint:\nbefore %v\nafter  %v", before, after)
	}
}

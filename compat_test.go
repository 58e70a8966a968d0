package ckpt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/store"
)

// Format compatibility. testdata/v1 holds a store written by the first
// format version (manifest format 1, blob format 1) and golden.json, the
// values it must decode to; testdata/v2 the same for format 2 (s2
// compression). They are kept forever: every later ckpt must read them
// exactly. They were made by
//
//	CKPT_WRITE_FIXTURES=1 go test -run TestWriteFixtures .
//
// which writes only the versions whose directory is missing. A new format
// version gets fixtures of its own beside these, never instead of them.

// fixtureDir holds the fixtures of format 1, which the tests of damaged
// and newer formats start from.
const fixtureDir = "testdata/v1"

// fixtureVersions are the format versions that have fixtures, and the
// jobs each holds. A version's jobs are never changed once written.
var fixtureVersions = []struct {
	version int
	dir     string
	jobs    []fixtureJob
}{
	{1, "testdata/v1", []fixtureJob{
		{"json-zstd", codec.JSON{}, codec.Zstd, []string{"inline", "chunks", "savepoint", "final"}},
		{"gob-none", codec.Gob{}, codec.None, []string{"chunks", "inline", "chunks"}},
	}},
	{2, "testdata/v2", []fixtureJob{
		{"json-s2", codec.JSON{}, codec.S2, []string{"inline", "chunks", "savepoint", "chunks"}},
	}},
}

// fixtureState is the state of the fixture jobs. Its field names are part
// of the fixtures (the JSON and gob encodings name them): never rename.
type fixtureState struct {
	Name    string
	Count   int64
	Ratio   float64
	Tags    []string
	Totals  map[string]int64
	Payload []byte
}

// golden is the content of golden.json. It spells every field out in its
// own schema, independent of the JSON tags of ckpt.Checkpoint, so that a
// change in how manifests are decoded cannot change the expected values
// with it.
type golden struct {
	ManifestVersion int
	Jobs            []goldenJob
}

type goldenJob struct {
	Name        string
	Codec       string
	Compression string
	Checkpoints []goldenCheckpoint
}

type goldenCheckpoint struct {
	Seq        uint64
	Time       time.Time
	Trigger    string
	Savepoint  bool
	Label      string
	Final      bool
	Token      uint64
	Writer     string // store.Owner.String()
	WriterID   string
	Source     string // the raw JSON
	Sink       string
	Records    int64
	Bytes      int64
	Metadata   map[string]string
	RawSize    int64
	StoredSize int64
	Chunks     []goldenChunk
	State      fixtureState
}

type goldenChunk struct {
	ID     string
	Raw    int64
	Stored int64
	Inline bool
}

func goldenOf(cp *ckpt.Checkpoint, state fixtureState) goldenCheckpoint {
	g := goldenCheckpoint{
		Seq: cp.Seq, Time: cp.Time, Trigger: cp.Trigger.String(), Savepoint: cp.Savepoint, Label: cp.Label,
		Final: cp.Final, Token: cp.Token, Writer: cp.Writer.String(), WriterID: cp.Writer.ID,
		Source: string(cp.Source), Sink: string(cp.Sink), Records: cp.Records, Bytes: cp.Bytes,
		Metadata: cp.Metadata, RawSize: cp.RawSize(), StoredSize: cp.StoredSize(), State: state,
	}
	for _, s := range cp.State {
		for _, c := range s.Chunks {
			g.Chunks = append(g.Chunks, goldenChunk{ID: c.ID, Raw: c.Raw, Stored: c.Stored, Inline: c.Data != nil})
		}
	}
	return g
}

// fixtureJob is a fixture job and the checkpoints it takes.
type fixtureJob struct {
	name  string
	codec codec.Codec
	comp  codec.Compression
	steps []string // "inline", "chunks": a checkpoint with such a state; "savepoint", "final"
}

// fixturePosition is a source and sink whose positions are recorded.
type fixturePosition struct{ offset int64 }

func (p *fixturePosition) Position() (json.RawMessage, error) {
	return json.RawMessage(fmt.Sprintf(`{"file":"in.csv","offset":%d}`, p.offset)), nil
}

func (p *fixturePosition) Flush() (json.RawMessage, error) {
	return json.RawMessage(fmt.Sprintf(`{"length":%d}`, 2*p.offset)), nil
}

func (p *fixturePosition) Sync(context.Context) error { return nil }

func fixtureStateFor(job string, step int, kind string) fixtureState {
	s := fixtureState{
		Name:   fmt.Sprintf("%s step %d", job, step),
		Count:  int64(step) * 1000,
		Ratio:  float64(step) / 3,
		Tags:   []string{job, kind},
		Totals: map[string]int64{"step": int64(step), "negative": -int64(step)},
	}
	if kind != "inline" {
		// 12 KiB of noise: several 4 KiB chunks, whatever the codec.
		var seed [32]byte
		binary.LittleEndian.PutUint64(seed[:], uint64(step))
		s.Payload = make([]byte, 12<<10)
		rand.NewChaCha8(seed).Read(s.Payload)
	}
	return s
}

func TestWriteFixtures(t *testing.T) {
	if os.Getenv("CKPT_WRITE_FIXTURES") != "1" {
		t.Skip("writes the format fixtures in testdata; set CKPT_WRITE_FIXTURES=1 to run")
	}
	wrote := 0
	for _, fv := range fixtureVersions {
		if _, err := os.Stat(fv.dir); err == nil {
			t.Logf("%s exists: fixtures of a released format are kept forever, not rewritten", fv.dir)
			continue
		}
		writeFixtures(t, fv.version, fv.dir, fv.jobs)
		wrote++
	}
	if wrote == 0 {
		t.Fatal("every version's fixtures exist; a new format version needs an entry in fixtureVersions")
	}
}

func writeFixtures(t *testing.T, version int, fixtureDir string, jobs []fixtureJob) {
	ctx := context.Background()
	dir := filepath.Join(fixtureDir, "store")
	g := golden{ManifestVersion: version}
	owner := store.Owner{ID: "fixture-writer", PID: 4242, Host: "fixture-host", Since: time.Now().UTC().Truncate(time.Second)}
	for _, fj := range jobs {
		j, err := ckpt.Open[fixtureState](ctx, fj.name, ckpt.Config{
			Store: dir, Codec: fj.codec, Compression: fj.comp, Uncompressed: fj.comp == codec.None, Retain: -1, NoSignals: true,
			Owner: owner, Logger: quietLogger(), Metadata: map[string]string{"fixture": fj.name, "format": fmt.Sprint(version)},
		})
		if err != nil {
			t.Fatal(err)
		}
		ckpt.SetChunkSize(j, 4<<10)
		pos := &fixturePosition{}
		j.Bind(pos, pos)
		gj := goldenJob{Name: fj.name, Codec: fj.codec.Name(), Compression: fj.comp.String()}
		for i, kind := range fj.steps {
			pos.offset += int64(100 * (i + 1))
			if err := j.Advance(ctx, int64(i+1), int64(100*(i+1))); err != nil {
				t.Fatal(err)
			}
			stateKind := kind
			if kind == "savepoint" || kind == "final" {
				stateKind = "chunks"
			}
			j.State = fixtureStateFor(fj.name, i+1, stateKind)
			var cp *ckpt.Checkpoint
			switch kind {
			case "savepoint":
				cp, err = j.Savepoint(ctx, fmt.Sprintf("v%d savepoint", version))
			case "final":
				cp, err = j.Finish(ctx)
			default:
				cp, err = j.Checkpoint(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			chunks := len(cp.State[0].Chunks)
			if inline := cp.State[0].Chunks[0].Data != nil; (stateKind == "inline") != inline || (stateKind == "chunks") != (chunks >= 3) {
				t.Fatalf("%s step %d (%s): %d chunks, inline %v", fj.name, i+1, kind, chunks, inline)
			}
			gj.Checkpoints = append(gj.Checkpoints, goldenOf(cp, j.State))
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		g.Jobs = append(g.Jobs, gj)
	}
	b, err := json.MarshalIndent(g, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fixtureDir, "golden.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", fixtureDir)
}

// copyFixtures copies the fixture store to a temporary directory: opening
// a job takes its lock, and checkpointing on top may prune.
func copyFixtures(t *testing.T) (string, golden) {
	t.Helper()
	return copyFixturesOf(t, fixtureDir)
}

func copyFixturesOf(t *testing.T, fixtureDir string) (string, golden) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, "golden.json"))
	if err != nil {
		t.Fatalf("%v (the fixtures are missing)", err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(fixtureDir, "store"))); err != nil {
		t.Fatal(err)
	}
	return dir, g
}

func TestFormatFixturesAreRead(t *testing.T) {
	for _, fv := range fixtureVersions {
		t.Run(fmt.Sprintf("v%d", fv.version), func(t *testing.T) {
			dir, g := copyFixturesOf(t, fv.dir)
			if g.ManifestVersion != fv.version || len(g.Jobs) != len(fv.jobs) {
				t.Fatalf("golden.json describes format %d with %d jobs", g.ManifestVersion, len(g.Jobs))
			}
			testFixturesAreRead(t, dir, g)
		})
	}
}

func testFixturesAreRead(t *testing.T, dir string, g golden) {
	ctx := context.Background()
	st := openFileStore(t, dir)

	jobs, err := ckpt.Jobs(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, gj := range g.Jobs {
		want = append(want, gj.Name)
	}
	slices.Sort(want)
	if !slices.Equal(jobs, want) {
		t.Fatalf("Jobs: %v, want %v", jobs, want)
	}

	for _, gj := range g.Jobs {
		t.Run(gj.Name, func(t *testing.T) {
			entries, err := ckpt.List(ctx, st, gj.Name)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != len(gj.Checkpoints) {
				t.Fatalf("List: %d checkpoints, want %d", len(entries), len(gj.Checkpoints))
			}
			for i, e := range entries {
				wantCP := gj.Checkpoints[i]
				if e.Err != nil {
					t.Fatalf("checkpoint %d: %v", e.Seq, e.Err)
				}
				cp := e.Checkpoint
				if err := ckpt.Verify(ctx, st, cp); err != nil {
					t.Fatalf("Verify checkpoint %d: %v", cp.Seq, err)
				}
				var state fixtureState
				if err := ckpt.Load(ctx, st, cp, &state); err != nil {
					t.Fatalf("Load checkpoint %d: %v", cp.Seq, err)
				}
				got := goldenOf(cp, state)
				if !reflect.DeepEqual(got, wantCP) {
					gb, _ := json.MarshalIndent(got, "", " ")
					wb, _ := json.MarshalIndent(wantCP, "", " ")
					t.Fatalf("checkpoint %d reads as\n%s\nwant\n%s", cp.Seq, gb, wb)
				}
				if s := cp.State[0]; s.Codec != gj.Codec || s.Compression != gj.Compression {
					t.Fatalf("checkpoint %d: codec %s, compression %s; want %s, %s", cp.Seq, s.Codec, s.Compression, gj.Codec, gj.Compression)
				}
			}
			newest := gj.Checkpoints[len(gj.Checkpoints)-1]
			cp, err := ckpt.Latest(ctx, st, gj.Name, quietLogger())
			if err != nil || cp.Seq != newest.Seq {
				t.Fatalf("Latest: %+v, %v; want checkpoint %d", cp, err, newest.Seq)
			}

			// The job resumes, and goes on checkpointing on top of v1.
			c, err := codec.ByName(gj.Codec)
			if err != nil {
				t.Fatal(err)
			}
			cfg := ckpt.Config{Store: dir, Codec: c, NoSignals: true, Logger: quietLogger()}
			j, err := ckpt.Open[fixtureState](ctx, gj.Name, cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer j.Close()
			if r := j.Resumed(); r == nil || r.Seq != newest.Seq || j.Done() != newest.Final {
				t.Fatalf("Open resumed from %+v (done %v), want checkpoint %d (final %v)", r, j.Done(), newest.Seq, newest.Final)
			}
			if !reflect.DeepEqual(j.State, newest.State) {
				t.Fatalf("Open restored %+v, want %+v", j.State, newest.State)
			}
			if j.Records() != newest.Records || j.Bytes() != newest.Bytes {
				t.Fatalf("Open restored counters %d, %d; want %d, %d", j.Records(), j.Bytes(), newest.Records, newest.Bytes)
			}
			if newest.Final {
				return
			}
			j.State.Count++
			next, err := j.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if err := ckpt.Verify(ctx, st, next); err != nil || next.Seq != newest.Seq+1 {
				t.Fatalf("checkpoint on top of v%d: seq %d, %v; want %d", g.ManifestVersion, next.Seq, err, newest.Seq+1)
			}
			var state fixtureState
			if err := ckpt.Load(ctx, st, next, &state); err != nil || state.Count != newest.State.Count+1 {
				t.Fatalf("checkpoint on top of v%d holds %+v, %v", g.ManifestVersion, state, err)
			}
		})
	}
}

// TestFormatFixturesAreOfTheirVersion pins the fixtures themselves: had
// they been regenerated by a later ckpt, the test above would prove
// nothing. Format 2 differs from 1 only with s2, so its fixtures are all
// of format 2, and format 1's all of format 1.
func TestFormatFixturesAreOfTheirVersion(t *testing.T) {
	for _, fv := range fixtureVersions {
		t.Run(fmt.Sprintf("v%d", fv.version), func(t *testing.T) {
			min := map[int][2]int{1: {7, 6}, 2: {4, 3}}[fv.version]
			testFixturesAreOfVersion(t, fv.dir, fv.version, min[0], min[1])
		})
	}
}

func testFixturesAreOfVersion(t *testing.T, fixtureDir string, version, minManifests, minBlobs int) {
	manifests, blobs := 0, 0
	err := filepath.WalkDir(filepath.Join(fixtureDir, "store"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch filepath.Base(filepath.Dir(p)) {
		case "checkpoints":
			manifests++
			if !bytes.HasPrefix(b, fmt.Appendf(nil, "ckpt-manifest %d ", version)) {
				t.Errorf("%s is not a format %d manifest: %.20q", p, version, b)
			}
		case "blobs":
			blobs++
			if !bytes.HasPrefix(b, []byte{'C', 'K', 'B', byte(version)}) {
				t.Errorf("%s is not a format %d blob: %.8q", p, version, b)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if manifests < minManifests || blobs < minBlobs {
		t.Fatalf("%d manifests and %d blobs in the fixtures; want at least %d and %d", manifests, blobs, minManifests, minBlobs)
	}
}

func TestNewerFormatIsRefusedNotMisread(t *testing.T) {
	const job = "json-zstd"
	cases := []struct {
		name    string
		future  func(t *testing.T, dir string, cp *ckpt.Checkpoint)
		upgrade bool // the message says to upgrade
	}{
		{"manifest format 3", func(t *testing.T, dir string, cp *ckpt.Checkpoint) {
			path := objectPath(dir, manifestObject(job, cp.Seq))
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, body := splitManifest(t, b)
			writeManifestFile(t, path, ckpt.ManifestVersion+1, body)
		}, true},
		{"manifest format 99 with a body this ckpt cannot parse", func(t *testing.T, dir string, cp *ckpt.Checkpoint) {
			writeManifestFile(t, objectPath(dir, manifestObject(job, cp.Seq)), 99, []byte("\x00binary manifest\x00"))
		}, true},
		{"blob format 3", func(t *testing.T, dir string, cp *ckpt.Checkpoint) {
			var id string
			for _, c := range cp.State[0].Chunks {
				if c.Data == nil {
					id = c.ID
				}
			}
			path := objectPath(dir, blobObject(job, id))
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[3] = 3
			binary.LittleEndian.PutUint32(b[20:24], crc32.Checksum(b[:20], castagnoli))
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir, g := copyFixtures(t)
			st := openFileStore(t, dir)
			entries, err := ckpt.List(ctx, st, job)
			if err != nil {
				t.Fatal(err)
			}
			newest := entries[len(entries)-1].Checkpoint
			tc.future(t, dir, newest)

			_, err = ckpt.Open[fixtureState](ctx, job, ckpt.Config{Store: dir, NoSignals: true, Logger: quietLogger()})
			if !errors.Is(err, ckpt.ErrFormat) || errors.Is(err, ckpt.ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrFormat and not a fallback to an older checkpoint", err)
			}
			if tc.upgrade && !strings.Contains(err.Error(), "upgrade") {
				t.Errorf("Open error %q does not say to upgrade", err)
			}
			if _, err := ckpt.Latest(ctx, st, job, quietLogger()); !errors.Is(err, ckpt.ErrFormat) {
				t.Fatalf("Latest: %v, want ErrFormat", err)
			}
			// The older checkpoints still read: the refusal is about the
			// newer one only.
			i := slices.IndexFunc(g.Jobs, func(gj goldenJob) bool { return gj.Name == job })
			older := g.Jobs[i].Checkpoints[len(g.Jobs[i].Checkpoints)-2]
			cp, err := ckpt.Get(ctx, st, job, older.Seq)
			if err != nil {
				t.Fatal(err)
			}
			if err := ckpt.Verify(ctx, st, cp); err != nil {
				t.Fatalf("Verify checkpoint %d: %v", cp.Seq, err)
			}
		})
	}
}

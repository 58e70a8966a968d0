package source_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/ckptdev/ckpt/source"
)

func gzipped(t *testing.T, parts ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range parts { // one member each: concatenated .gz files
		w := gzip.NewWriter(&b)
		w.Write([]byte(p))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func zstded(t *testing.T, parts ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range parts { // one frame each
		w, err := zstd.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(p))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// Compressed CSV reads as the same records, in the same places, as the
// plain file, and resumes at every record's position; positions are
// offsets in the decompressed text.
func TestCompressedCSV(t *testing.T) {
	var text strings.Builder
	text.WriteString("id,note\n")
	for i := range 300 {
		text.WriteString(strings.Repeat("x", i%7) + ",\"a, \"\"b\"\"\nc\"\n")
	}
	plain := text.String()
	half := len(plain) / 2
	dir := t.TempDir()
	files := map[string][]byte{
		"in.csv":      []byte(plain),
		"in.csv.gz":   gzipped(t, plain[:half], plain[half:]),
		"in.csv.zst":  zstded(t, plain[:half], plain[half:]),
		"in.csv.zstd": zstded(t, plain),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := mustReadCSV(t, []string{filepath.Join(dir, "in.csv")}, source.CSVOptions{})
	for _, name := range []string{"in.csv.gz", "in.csv.zst", "in.csv.zstd"} {
		t.Run(name, func(t *testing.T) {
			paths := []string{filepath.Join(dir, name)}
			got := mustReadCSV(t, paths, source.CSVOptions{})
			if !reflect.DeepEqual(goodRecords(got), goodRecords(want)) {
				t.Fatal("records differ from the plain file's")
			}
			for i := range got.events {
				if got.events[i].Offset != want.events[i].Offset || got.events[i].Line != want.events[i].Line {
					t.Fatalf("record %d at line %d offset %d, the plain file's at %d, %d", i, got.events[i].Line, got.events[i].Offset, want.events[i].Line, want.events[i].Offset)
				}
			}
			checkResume(t, got, func(pos json.RawMessage) (stream, error) { return readCSV(paths, pos, source.CSVOptions{}) })
		})
	}
}

// A compressed file cut short, or damaged, is an error that names it;
// never a shorter input read as if it were whole.
func TestCompressedDamage(t *testing.T) {
	plain := "a,b\n" + strings.Repeat("1,2\n", 5000)
	for name, b := range map[string][]byte{"cut.csv.gz": gzipped(t, plain), "cut.csv.zst": zstded(t, plain)} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b[:len(b)*2/3], 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := readCSV([]string{p}, nil, source.CSVOptions{})
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Fatalf("reading a cut %s: %v, want an error naming it", name, err)
			}
		})
	}
	dir := t.TempDir()
	// A compressed file of no bytes holds no records, as an empty plain
	// file does.
	empty, full := filepath.Join(dir, "a.csv.gz"), filepath.Join(dir, "b.csv.gz")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, gzipped(t, "x\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s := mustReadCSV(t, []string{empty, full}, source.CSVOptions{}); !reflect.DeepEqual(goodRecords(s), [][]string{{"1"}}) {
		t.Fatalf("records %q", goodRecords(s))
	}
	p := filepath.Join(dir, "garbage.csv.gz")
	if err := os.WriteFile(p, []byte("this is not gzip\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := source.OpenCSV([]string{p}, nil, source.CSVOptions{}); err == nil || !strings.Contains(err.Error(), "decompress") {
		t.Fatalf("a .gz that is not gzip: %v", err)
	}
	// A checkpoint offset past the decompressed end: the input changed.
	good := filepath.Join(dir, "good.csv.gz")
	if err := os.WriteFile(good, gzipped(t, "a\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := source.OpenCSV([]string{good}, nil, source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pos, err := c.Position()
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	var p2 source.Position
	json.Unmarshal(pos, &p2)
	p2.Offset = 1000
	far, _ := json.Marshal(p2)
	if _, err := source.OpenCSV([]string{good}, far, source.CSVOptions{}); !errors.Is(err, source.ErrInputChanged) {
		t.Fatalf("resume past the end: %v, want ErrInputChanged", err)
	}
}

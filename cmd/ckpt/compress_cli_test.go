package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/ckptdev/ckpt/internal/gen"
)

// decompressFile returns the text of a .gz or .zst file, every member or
// frame of it.
func decompressFile(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader
	switch {
	case strings.HasSuffix(path, ".gz"):
		z, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r = z
	case strings.HasSuffix(path, ".zst"):
		z, err := zstd.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer z.Close()
		r = z
	default:
		r = f
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decompress %s: %v", path, err)
	}
	return b
}

// toolTest checks a compressed file with gzip -t or zstd -t, where the
// command is installed.
func toolTest(t *testing.T, path string) {
	t.Helper()
	tool := "gzip"
	if strings.HasSuffix(path, ".zst") {
		tool = "zstd"
	}
	if _, err := exec.LookPath(tool); err != nil {
		return
	}
	if out, err := exec.Command(tool, "-t", "-q", path).CombinedOutput(); err != nil {
		t.Fatalf("%s -t %s: %v\n%s", tool, path, err, out)
	}
}

// Compressed inputs and outputs, killed with SIGKILL at random moments
// until the job completes. With checkpoints every N records only, they
// fall at the same records in every run, and the compressed output is
// byte for byte the uninterrupted run's; with a time trigger too, they
// fall anywhere, and the text is.
func TestCompressedCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill -9 loop: skipped with -short")
	}
	c := buildCLI(t)
	rows := int64(60_000)
	minKills := 8
	if longTests() {
		rows, minKills = 1_000_000, 40
	}
	dir := t.TempDir()
	writeSample(t, filepath.Join(dir, "in.csv"), gen.Options{Rows: rows, Seed: 14})
	plain, err := os.ReadFile(filepath.Join(dir, "in.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// One gzip member, as gzip writes.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	if err := os.WriteFile(filepath.Join(dir, "in.csv.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// Many members and frames, as ckpt writes.
	for _, name := range []string{"in.jsonl.gz", "in.jsonl.zst", "in.jsonl"} {
		if code, out := c.run(dir, "convert", "in.csv", name, "--every", "4000", "--interval", "0", "--job", "make-"+name); code != 0 {
			t.Fatalf("make %s: exit %d\n%s", name, code, out)
		}
	}
	if !bytes.Equal(decompressFile(t, filepath.Join(dir, "in.jsonl.gz")), decompressFile(t, filepath.Join(dir, "in.jsonl"))) ||
		!bytes.Equal(decompressFile(t, filepath.Join(dir, "in.jsonl.zst")), decompressFile(t, filepath.Join(dir, "in.jsonl"))) {
		t.Fatal("the compressed JSON Lines differ from the plain")
	}

	cases := []struct {
		name, input, out string
		args             []string
		// byText: checkpoints fall anywhere; the output's text is compared
		// with the plain output of an uninterrupted run.
		byText bool
	}{
		{name: "gzip-one-member-to-gzip", input: "in.csv.gz", out: "out.jsonl.gz", args: []string{"convert"}},
		{name: "gzip-members-to-zstd", input: "in.jsonl.gz", out: "out.csv.zst", args: []string{"convert"}},
		{name: "zstd-frames-to-gzip", input: "in.jsonl.zst", out: "out.csv.gz", args: []string{"convert"}},
		{name: "plain-to-zstd-any-time", input: "in.csv", out: "out.jsonl.zst", args: []string{"convert"}, byText: true},
		{name: "zstd-to-gzip-any-time", input: "in.jsonl.zst", out: "out.tsv.gz", args: []string{"convert"}, byText: true},
		{name: "aggregate-gzip-to-zstd", input: "in.csv.gz", out: "agg.csv.zst",
			args: []string{"aggregate", "--group-by", "city", "--agg", "count,sum:amount,max:qty"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			work := t.TempDir()
			args := func(out string, extra ...string) []string {
				a := append([]string{}, tc.args...)
				a = append(a, filepath.Join(dir, tc.input), out)
				return append(a, extra...)
			}
			triggers := []string{"--every", "3000", "--interval", "0", "--no-progress"}
			if tc.byText {
				triggers = []string{"--every", "3000", "--interval", "5ms", "--no-progress"}
			}
			ref := filepath.Join(work, "ref")
			os.Mkdir(ref, 0o755)
			if code, out := c.run(ref, args(tc.out, triggers...)...); code != 0 {
				t.Fatalf("uninterrupted run: exit %d\n%s", code, out)
			}
			crash := filepath.Join(work, "crash")
			os.Mkdir(crash, 0o755)
			kills := c.crashUntilDone(crash, uint64(len(tc.name)), 150*time.Millisecond, args(tc.out, triggers...)...)
			for kills < minKills {
				if err := os.Remove(filepath.Join(crash, tc.out)); err != nil {
					t.Fatal(err)
				}
				kills += c.crashUntilDone(crash, uint64(kills), 100*time.Millisecond, args(tc.out, append(triggers, "--restart")...)...)
			}
			t.Logf("%d kills", kills)
			got := filepath.Join(crash, tc.out)
			toolTest(t, got)
			if !bytes.Equal(decompressFile(t, got), decompressFile(t, filepath.Join(ref, tc.out))) {
				t.Fatalf("%s decompresses to another text than the uninterrupted run's", got)
			}
			if !tc.byText {
				sameFile(t, got, filepath.Join(ref, tc.out))
			}
			code, out := c.run(crash, args(tc.out)...)
			if code != 0 || !strings.Contains(out, "already finished") {
				t.Fatalf("rerun of a finished job: exit %d\n%s", code, out)
			}
		})
	}
}

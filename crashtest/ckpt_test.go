package crashtest_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/ckptdev/ckpt/crashtest"
	"github.com/ckptdev/ckpt/internal/crashpoint"
)

// awkwardCSV writes a CSV that exercises every corner of the format:
// quoted separators, doubled quotes, line breaks inside fields, CRLF, empty
// fields, non-ASCII text, and a long field.
func awkwardCSV(t *testing.T, path string, rows int) {
	t.Helper()
	regions := []string{"north", "south", `"east, coast"`, `"the ""west"""`, "zürich", `"multi` + "\n" + `line"`, ""}
	var b strings.Builder
	b.WriteString("id,region,amount,note\r\n")
	for i := range rows {
		note := ""
		switch i % 5 {
		case 1:
			note = `"a ""quoted"" note, with a comma"`
		case 2:
			note = "日本語 ✓"
		case 3:
			note = `"` + strings.Repeat("long ", 40) + `"`
		}
		eol := "\n"
		if i%3 == 0 {
			eol = "\r\n"
		}
		fmt.Fprintf(&b, "%d,%s,%d.%02d,%s%s", i, regions[i%len(regions)], i*37%5000, i%100, note, eol)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// compressInputs writes path.gz and path.zst beside path, each in two
// members or frames, as concatenated parts are.
func compressInputs(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	half := len(b) / 2
	var gz, zs bytes.Buffer
	for _, part := range [][]byte{b[:half], b[half:]} {
		zw := gzip.NewWriter(&gz)
		zw.Write(part)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		sw, err := zstd.NewWriter(&zs)
		if err != nil {
			t.Fatal(err)
		}
		sw.Write(part)
		if err := sw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path+".gz", gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".zst", zs.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func kills(short, long int) int {
	if testing.Short() {
		return short
	}
	return long
}

// `ckpt convert` and `ckpt aggregate` resume to the uninterrupted result
// after kills at any moment.
func TestCkptCommandsSurviveKills(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ckpt and kill-loops it")
	}
	ckpt := build(t, "../cmd/ckpt")
	work := t.TempDir()
	awkwardCSV(t, filepath.Join(work, "in.csv"), 40000)
	compressInputs(t, filepath.Join(work, "in.csv"))
	killedAt := map[string]int{}
	for _, tc := range []struct {
		name    string
		args    []string
		compare string
	}{
		{"convert", []string{"convert", "in.csv", "out.jsonl", "--every", "2000"}, "out.jsonl"},
		{"convert infer types", []string{"convert", "--infer-types", "in.csv", "{dir}/typed.jsonl", "--every", "1500", "--interval", "5ms"}, "typed.jsonl"},
		{"convert gzip input", []string{"convert", "in.csv.gz", "out.jsonl", "--every", "2000"}, "out.jsonl"},
		{"convert zstd input to tsv", []string{"convert", "in.csv.zst", "out.tsv", "--every", "2000"}, "out.tsv"},
		{"aggregate", []string{"aggregate", "in.csv", "by_region.csv", "--group-by", "region", "--agg", "count,sum:amount,min:amount,max:amount,mean:amount", "--every", "2000"}, "by_region.csv"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := run(t, crashtest.Config{
				Command: append([]string{ckpt, "--quiet"}, tc.args...),
				Workdir: work,
				Compare: []string{tc.compare},
				Kills:   kills(4, 12),
				Signal:  crashtest.SignalMixed,
				Shrink:  -1,
			})
			if rep.Failed() {
				t.Fatalf("ckpt %s failed its crash test:\n%s", tc.name, rep)
			}
			for p, n := range rep.Phases {
				killedAt[p] += n
			}
		})
	}
	// The engine announces every phase of its commit protocol, so across
	// the commands some trials were killed exactly at each boundary.
	for _, p := range crashpoint.Phases {
		if killedAt[p] == 0 {
			t.Errorf("no trial killed at phase %s: %v", p, killedAt)
		}
	}
}

// Go programs written with the library resume exactly: the tutorial
// (a checkpoint every 10,000 rows) and the crash-test example (every 50).
func TestLibraryProgramsSurviveKills(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs and kill-loops them")
	}
	work := t.TempDir()
	awkwardCSV(t, filepath.Join(work, "data.csv"), 30000)
	for _, pkg := range []string{"../examples/tutorial", "../examples/crashtest"} {
		t.Run(filepath.Base(pkg), func(t *testing.T) {
			bin := build(t, pkg)
			rep := run(t, crashtest.Config{
				Command: []string{bin, "data.csv", "processed.txt"},
				Workdir: work,
				Compare: []string{"processed.txt"},
				Kills:   10,
				Signal:  crashtest.SignalMixed,
				Shrink:  -1,
			})
			if rep.Failed() {
				t.Fatalf("%s failed its crash test:\n%s", pkg, rep)
			}
		})
	}
}

// A ckpt pipeline whose file sink skips the truncation on resume duplicates
// output after a crash, and the harness finds it; the same pipeline with
// the truncation passes.
func TestBrokenCkptSinkIsFound(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program with ckpt and kill-loops it")
	}
	bin := build(t, "./testdata/appendsink")
	work := t.TempDir()
	lines := []string{"id,name"}
	for i := range 20000 {
		lines = append(lines, fmt.Sprintf("%d,name-%d", i, i))
	}
	if err := os.WriteFile(filepath.Join(work, "in.csv"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, truncate := range []bool{true, false} {
		t.Run(fmt.Sprintf("truncate=%v", truncate), func(t *testing.T) {
			cmd := []string{bin, "in.csv", "out.txt"}
			if truncate {
				cmd = []string{bin, "-truncate", "in.csv", "out.txt"}
			}
			rep := run(t, crashtest.Config{Command: cmd, Workdir: work, Compare: []string{"out.txt"}, Kills: 10, Shrink: -1})
			if rep.Failed() == truncate {
				t.Fatalf("truncate=%v, failed=%v:\n%s", truncate, rep.Failed(), rep)
			}
			if !truncate {
				if d := rep.FirstFailure().Difference; d == nil || d.GotSize <= d.WantSize {
					t.Errorf("difference = %+v, want a longer output", d)
				}
			}
		})
	}
}

// The asset example resumes to the same values after kills: its data file,
// its content-addressed value blobs, and every asset's state (run ids left
// out) equal an uninterrupted run's. Temporary files a kill leaves in the
// value store are not compared: the store does not remove them (yet), which
// wastes space but changes no value.
func TestAssetExampleSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the asset example and kill-loops it")
	}
	bin := build(t, "../examples/assets")
	rep := run(t, crashtest.Config{
		Command: []string{bin, "assets", "materialize"},
		Compare: []string{"demo/assets/data"},
		Check: "find demo/assets/store/assets -type f ! -name '.tmp-*' | sort | xargs sha256sum && '" + bin +
			"' assets status | sed 's/[0-9]\\{8\\}T[0-9]\\{6\\}-[0-9a-f]*//'",
		Kills:  8,
		Signal: crashtest.SignalMixed,
		Shrink: -1,
	})
	if rep.Failed() {
		t.Fatalf("the asset example failed its crash test:\n%s", rep)
	}
}

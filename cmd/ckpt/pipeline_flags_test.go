package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"1048576", 1 << 20}, {"64KiB", 64 << 10}, {"64MiB", 64 << 20}, {" 2 GiB ", 2 << 30}, {"1TiB", 1 << 40},
		{"10MB", 10e6}, {"2GB", 2e9}, {"512B", 512}, {"64mib", 64 << 20}, {"1gb", 1e9},
	} {
		if got, err := parseSize(c.in); err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	// Read in part, these would be a checkpoint every few bytes.
	for _, in := range []string{"", "64M", "1.5GB", "64MiBx", "10 M", "-1", "lots", "0x10", "9223372036854775807KiB", "1e9"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

// writeInput writes content to name in dir and returns its path.
func writeInput(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// An output or dead-letter file that is an input file would be truncated
// before the input is read: refused, with the input left as it was.
func TestOutputThatIsAnInputIsRefused(t *testing.T) {
	dir := t.TempDir()
	const data = "region,amount\neu,1\nus,2\n"
	in := writeInput(t, dir, "sales.csv", data)
	store := filepath.Join(dir, "store")
	for _, args := range [][]string{
		{"aggregate", in, in, "--group-by", "region", "--agg", "count"},
		{"aggregate", "--from", "csv", dir, filepath.Join(dir, "sales.csv"), "--group-by", "region", "--agg", "count"},
		{"convert", "--to", "jsonl", in, in},
		{"convert", in, filepath.Join(dir, "out.jsonl"), "--dead-letter", in},
		{"convert", in, filepath.Join(dir, "out.jsonl"), "--dead-letter", filepath.Join(dir, ".", "out.jsonl")},
	} {
		r := ckptRun(t, nil, append(args, "--store", store, "--no-progress")...).want(t, exitUsage)
		if line := r.errLine(t); !strings.Contains(line, "sales.csv is the input file") && !strings.Contains(line, "same file") {
			t.Errorf("%v: %s", args, line)
		}
		if b, err := os.ReadFile(in); err != nil || string(b) != data {
			t.Fatalf("%v: the input is now %q (%v)", args, b, err)
		}
	}
	// An output beside the inputs, of another extension than a directory
	// input's, is not one of them.
	out := filepath.Join(dir, "by_region.jsonl")
	for range 2 { // the second run finds the first one's output in place
		ckptRun(t, nil, "aggregate", "--from", "csv", "--restart", dir, out, "--group-by", "region", "--agg", "count", "--store", store).want(t, exitOK)
	}
}

// A finished job on input that changed since is not "already finished":
// it says the input changed, and --restart takes the new input.
func TestFinishedJobOnChangedInput(t *testing.T) {
	dir := t.TempDir()
	in := writeInput(t, dir, "day.csv", "a\n1\n")
	out := filepath.Join(dir, "day.jsonl")
	ckptRun(t, nil, "convert", in, out).want(t, exitOK)
	if r := ckptRun(t, nil, "convert", in, out).want(t, exitOK); !strings.Contains(r.stdout, "already finished") {
		t.Fatalf("rerun: %s", r.stdout)
	}
	writeInput(t, dir, "day.csv", "a\n2\n3\n")
	r := ckptRun(t, nil, "convert", in, out).want(t, exitError)
	if line := r.errLine(t); !strings.Contains(line, "input changed") || !strings.Contains(line, "--restart") {
		t.Fatalf("rerun on new input: %s", line)
	}
	ckptRun(t, nil, "convert", in, out, "--restart").want(t, exitOK)
	if b, _ := os.ReadFile(out); string(b) != "{\"a\":\"2\"}\n{\"a\":\"3\"}\n" {
		t.Fatalf("output after --restart: %q", b)
	}
}

// A resume with other aggregations is refused with a hint, not a crash.
func TestResumeWithOtherOptions(t *testing.T) {
	dir := t.TempDir()
	in := writeInput(t, dir, "s.csv", "region,amount\neu,1\nus,2\neu,x\nus,4\n")
	out := filepath.Join(dir, "o.csv")
	ckptRun(t, nil, "aggregate", in, out, "--group-by", "region", "--agg", "sum:amount", "--every", "1").want(t, exitError)
	r := ckptRun(t, nil, "aggregate", in, out, "--group-by", "region", "--agg", "count,sum:amount", "--every", "1", "--on-error", "skip").want(t, exitError)
	if line := r.errLine(t); !strings.Contains(line, "aggs was") || !strings.Contains(line, "--restart") {
		t.Fatalf("resume with another --agg: %s", line)
	}
	ckptRun(t, nil, "aggregate", in, out, "--group-by", "region", "--agg", "sum:amount", "--on-error", "skip").want(t, exitOK)
	if b, _ := os.ReadFile(out); string(b) != "region,amount_sum\neu,1\nus,6\n" {
		t.Fatalf("output: %q", b)
	}
}

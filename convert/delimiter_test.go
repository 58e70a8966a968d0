package convert_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/source"
)

func delimOptions(dir, in, out string) convert.Options {
	return convert.Options{Input: filepath.Join(dir, in), Output: filepath.Join(dir, out),
		Pipeline: pipeline.Config{Job: "t", OnBadRecord: pipeline.Fail, Config: ckpt.Config{
			Store: filepath.Join(dir, "store"), NoSignals: true, Every: ckpt.Every{Records: 100},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}}
}

// TSV by extension and other separators by option, in and out, with
// fields that hold the separators quoted where needed.
func TestSeparators(t *testing.T) {
	for _, tc := range []struct {
		name, in, input, out string
		set                  func(*convert.Options)
		want                 string
	}{
		{"tsv to csv", "in.tsv", "a\tb\n1,2\t\"x\ty\"\n", "out.csv", nil, "a,b\n\"1,2\",x\ty\n"},
		{"csv to tsv", "in.csv", "a,b\n\"1,2\",\"x\ty\"\n", "out.tsv", nil, "a\tb\n1,2\t\"x\ty\"\n"},
		{"semicolons to jsonl", "in.csv", "a;b\n1;\"x;y\"\n", "out.jsonl", func(o *convert.Options) { o.Delimiter = ';' }, `{"a":"1","b":"x;y"}` + "\n"},
		{"jsonl to pipes", "in.jsonl", `{"a":"1|2","b":3}` + "\n", "out.csv", func(o *convert.Options) { o.OutDelimiter = '|' }, "a|b\n\"1|2\"|3\n"},
		{"headerless to csv", "in.txt", "1|x\n2|y\n", "out.csv", func(o *convert.Options) {
			o.From, o.Delimiter, o.Columns = convert.CSV, '|', []string{"n", "s"}
		}, "n,s\n1,x\n2,y\n"},
		{"headerless csv gets its header", "in.csv", "1,x\n", "out.csv", func(o *convert.Options) { o.Columns = []string{"n", "s"} }, "n,s\n1,x\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tc.in), []byte(tc.input), 0o644); err != nil {
				t.Fatal(err)
			}
			o := delimOptions(dir, tc.in, tc.out)
			if tc.set != nil {
				tc.set(&o)
			}
			if _, err := convert.Run(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(o.Output)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("output %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSeparatorErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, in, out string
		set           func(*convert.Options)
		want          string
	}{
		{"same separator", "in.csv", "out.csv", nil, "nothing to convert"},
		{"tsv to tsv", "in.tsv", "out.tab", nil, "nothing to convert"},
		{"delimiter for jsonl", "in.jsonl", "out.csv", func(o *convert.Options) { o.Delimiter = ';' }, "CSV and TSV input only"},
		{"columns for jsonl", "in.jsonl", "out.csv", func(o *convert.Options) { o.Columns = []string{"a"} }, "CSV and TSV input only"},
		{"out delimiter for jsonl", "in.csv", "out.jsonl", func(o *convert.Options) { o.OutDelimiter = ';' }, "CSV and TSV output only"},
		{"quote", "in.csv", "out.jsonl", func(o *convert.Options) { o.Delimiter = '"' }, "other than a quote"},
		{"empty column", "in.csv", "out.jsonl", func(o *convert.Options) { o.Columns = []string{"a", ""} }, "column 2 has an empty name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := delimOptions(dir, tc.in, tc.out)
			if tc.set != nil {
				tc.set(&o)
			}
			if err := o.Resolve(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Resolve: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// A header-less, semicolon-separated input stopped by a bad record and
// resumed ends as one uninterrupted run; a resume that reads it with
// other columns or another separator is refused.
func TestSeparatorResume(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "%d;x%d\n", i, i)
	}
	b.WriteString("bad;x\"y\n1000;end\n") // a bare quote stops the first run
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := func(d byte, cols ...string) convert.Options {
		o := delimOptions(dir, "in.txt", "out.tsv")
		o.From, o.Delimiter, o.Columns = convert.CSV, d, cols
		return o
	}
	var re *source.RecordError
	if _, err := convert.Run(context.Background(), opts(';', "n", "s")); !errors.As(err, &re) {
		t.Fatalf("first run: %v, want it stopped by the bad record", err)
	}
	for _, o := range []convert.Options{opts(';', "n", "t"), opts(',', "n", "s")} {
		if _, err := convert.Run(context.Background(), o); !errors.Is(err, pipeline.ErrParamsChanged) {
			t.Fatalf("resume with %q %q: %v, want ErrParamsChanged", o.Delimiter, o.Columns, err)
		}
	}
	o := opts(';', "n", "s")
	o.Pipeline.OnBadRecord = pipeline.Skip
	res, err := convert.Run(context.Background(), o)
	if err != nil || res.Resumed == nil {
		t.Fatalf("resume: %v, %+v", err, res)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	want.WriteString("n\ts\n")
	for i := range 1000 {
		fmt.Fprintf(&want, "%d\tx%d\n", i, i)
	}
	want.WriteString("1000\tend\n")
	if string(got) != want.String() {
		t.Fatalf("output of %d bytes differs from the %d expected", len(got), want.Len())
	}
}

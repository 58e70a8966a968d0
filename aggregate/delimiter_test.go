package aggregate_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/aggregate"
	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/pipeline"
)

// TSV by extension, header-less input with another separator, and a
// separator of the output's own.
func TestSeparators(t *testing.T) {
	specs, err := aggregate.ParseSpecs("count,sum:v")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in, input, out string
		set                  func(*aggregate.Options)
		want                 string
	}{
		{"tsv", "in.tsv", "g\tv\na\t1.5\nb\t2\na\t3\n", "out.tsv", nil, "g\tcount\tv_sum\na\t2\t4.5\nb\t1\t2\n"},
		{"headerless pipes to semicolons", "in.txt", "a|1\nb|2\na|3\n", "out.csv", func(o *aggregate.Options) {
			o.From, o.Delimiter, o.Columns, o.OutDelimiter = convert.CSV, '|', []string{"g", "v"}, ';'
		}, "g;count;v_sum\na;2;4\nb;1;2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tc.in), []byte(tc.input), 0o644); err != nil {
				t.Fatal(err)
			}
			o := aggregate.Options{Input: filepath.Join(dir, tc.in), Output: filepath.Join(dir, tc.out), GroupBy: []string{"g"}, Aggs: specs,
				Pipeline: pipeline.Config{Job: "t", Config: ckpt.Config{Store: filepath.Join(dir, "store"), NoSignals: true}}}
			if tc.set != nil {
				tc.set(&o)
			}
			if _, err := aggregate.Run(context.Background(), o); err != nil {
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

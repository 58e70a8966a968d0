package aggregate

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/gen"
	"github.com/ckptdev/ckpt/pipeline"
)

// sampleRecords returns n generated records as the values add takes for
// --group-by city --agg count,sum:amount,mean:amount,max:amount,sum:qty:
// money with two decimals and small integers, the common case.
func sampleRecords(tb testing.TB, n int64) [][][]byte {
	tb.Helper()
	var b bytes.Buffer
	if err := gen.Write(&b, gen.Options{Rows: n, Seed: 11}); err != nil {
		tb.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		tb.Fatal(err)
	}
	var out [][][]byte
	for _, r := range recs[1:] {
		out = append(out, [][]byte{[]byte(r[2]), nil, []byte(r[3]), []byte(r[3]), []byte(r[3]), []byte(r[4])})
	}
	return out
}

var benchAggs = []Spec{{Op: Count}, {Op: Sum, Column: "amount"}, {Op: Mean, Column: "amount"}, {Op: Max, Column: "amount"}, {Op: Sum, Column: "qty"}}

// BenchmarkAdd measures the per-record path: parse the values, find the
// group, fold them into its accumulators.
func BenchmarkAdd(b *testing.B) {
	recs := sampleRecords(b, 4096)
	a := &aggregator{opts: Options{GroupBy: []string{"city"}, Aggs: benchAggs}}
	st := &State{}
	bad := func(err error) error { return err }
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := a.add(st, recs[i%len(recs)], bad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRun measures a whole aggregation of a generated CSV file, from
// reading it to writing the groups, with one final checkpoint.
func BenchmarkRun(b *testing.B) {
	dir := b.TempDir()
	in := filepath.Join(dir, "in.csv")
	f, err := os.Create(in)
	if err != nil {
		b.Fatal(err)
	}
	if err := gen.Write(f, gen.Options{Rows: 200_000, Seed: 12}); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(in)
	b.SetBytes(fi.Size())
	for i := 0; b.Loop(); i++ {
		_, err := Run(context.Background(), Options{
			Input: in, Output: filepath.Join(dir, "out.csv"), GroupBy: []string{"city"}, Aggs: benchAggs,
			Pipeline: pipeline.Config{Job: "bench", Config: ckpt.Config{Restart: true,
				Store: filepath.Join(dir, "store"), NoSignals: true,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

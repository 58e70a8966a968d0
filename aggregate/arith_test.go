package aggregate_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/aggregate"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/source"
)

// Sums, minima, maxima and means are exact at the edges where float64 is
// not: ids past 2^53, sums past int64, decimals, mixed scales.
func TestArithmeticIsExact(t *testing.T) {
	in := "g,x\n" +
		"dec,0.1\ndec,0.2\n" +
		"ids,9007199254740993\nids,9007199254740992\nids,9007199254740995\n" +
		"big,9223372036854775807\nbig,1\n" +
		"neg,-9223372036854775808\nneg,-1\n" +
		"mix,1.5\nmix,2.25\nmix,-0.1\n" +
		"long,123456789012345678901234567890.123456789\nlong,0.000000000000000000001\n" +
		"zero,-0\nzero,-0.0\n" +
		"exp,1e3\nexp,2.5E-2\n" +
		"huge,1e300\nhuge,1e300\n"
	csvOut := "g,count,x_sum,x_min,x_max,x_mean\n" +
		"big,2,9223372036854775808,1,9223372036854775807,4611686018427388000\n" + // means are float64s +
		"dec,2,0.3,0.1,0.2,0.15\n" +
		"exp,2,1000.025,2.5E-2,1e3,500.0125\n" +
		"huge,2,2" + strings.Repeat("0", 300) + ",1e300,1e300,1e+300\n" +
		"ids,3,27021597764222980,9007199254740992,9007199254740995,9007199254740994\n" +
		"long,2,123456789012345678901234567890.123456789000000000001,0.000000000000000000001,123456789012345678901234567890.123456789,6.172839450617284e+28\n" +
		"mix,3,3.65,-0.1,2.25,1.2166666666666666\n" +
		"neg,2,-9223372036854775809,-9223372036854775808,-1,-4611686018427388000\n" +
		"zero,2,0,-0,-0,0\n"
	got, _, err := run(t, "in.csv", in, "out.csv", []string{"g"}, "count,sum:x,min:x,max:x,mean:x", pipeline.Fail)
	if err != nil {
		t.Fatal(err)
	}
	if got != csvOut {
		t.Fatalf("CSV: got\n%s\nwant\n%s", got, csvOut)
	}
	// JSON Lines: the same numbers, never null or a float rounding.
	got, _, err = run(t, "in.csv", in, "out.jsonl", []string{"g"}, "sum:x,max:x", pipeline.Fail)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`{"g":"big","x_sum":9223372036854775808,"x_max":9223372036854775807}`,
		`{"g":"dec","x_sum":0.3,"x_max":0.2}`,
		`{"g":"ids","x_sum":27021597764222980,"x_max":9007199254740995}`,
		`{"g":"neg","x_sum":-9223372036854775809,"x_max":-1}`,
		`{"g":"zero","x_sum":0,"x_max":-0}`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("JSON Lines output lacks %s:\n%s", want, got)
		}
	}
}

// Infinities, NaN and numbers past the exact range are bad records.
func TestNonFiniteValuesAreBadRecords(t *testing.T) {
	for _, v := range []string{"NaN", "Inf", "-Infinity", "1e5000", "0x1p9999"} {
		_, _, err := run(t, "in.csv", "g,x\na,1\na,"+v+"\n", "out.csv", []string{"g"}, "sum:x", pipeline.Fail)
		var re *source.RecordError
		if !errors.As(err, &re) || re.Line != 3 {
			t.Errorf("%s: %v, want a bad record at line 3", v, err)
		}
	}
}

// arithInput writes rows of values that float64 arithmetic gets wrong:
// money, mixed scales, sums past int64, ids past 2^53, and a bad record
// every so often.
func arithInput(rows int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 1))
	mixed := []string{"1.5", "2.25", "-0.1", "0.000000000000000000001", "1e3", "-0", "7", "0.1", "0.2", ""}
	bigs := []string{"9223372036854775807", "-9223372036854775808", "9223372036854775806", "1"}
	var b strings.Builder
	b.WriteString("g,money,mixed,big,id\n")
	for i := range rows {
		if i%997 == 500 {
			b.WriteString("g1,oops,1,1,1\n")
			continue
		}
		fmt.Fprintf(&b, "g%d,%d.%02d,%s,%s,%d\n", r.IntN(7), r.IntN(100000), r.IntN(100),
			mixed[r.IntN(len(mixed))], bigs[r.IntN(len(bigs))], 1<<53+r.IntN(1000))
	}
	return b.String()
}

const arithAggs = "count,sum:money,mean:money,sum:mixed,min:mixed,max:mixed,sum:big,mean:big,min:id,max:id"

func aggOptions(dir string, every int64) aggregate.Options {
	specs, err := aggregate.ParseSpecs(arithAggs)
	if err != nil {
		panic(err)
	}
	return aggregate.Options{
		Input: filepath.Join(dir, "in.csv"), Output: filepath.Join(dir, "out.csv"), GroupBy: []string{"g"}, Aggs: specs,
		Pipeline: pipeline.Config{Job: "agg", OnBadRecord: pipeline.Skip, Config: ckpt.Config{
			Store: filepath.Join(dir, "store"), NoSignals: true, Every: ckpt.Every{Records: every},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}},
	}
}

// The money sums of an uninterrupted run are the exact sums.
func TestMoneySumsMatchBigRat(t *testing.T) {
	in := arithInput(20000, 1)
	got, _, err := run(t, "in.csv", in, "out.csv", []string{"g"}, "sum:money", pipeline.Skip)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*big.Rat{}
	recs, _ := csv.NewReader(strings.NewReader(in)).ReadAll()
	for _, r := range recs[1:] {
		v, ok := new(big.Rat).SetString(r[1])
		if !ok {
			continue
		}
		if want[r[0]] == nil {
			want[r[0]] = new(big.Rat)
		}
		want[r[0]].Add(want[r[0]], v)
	}
	out, _ := csv.NewReader(strings.NewReader(got)).ReadAll()
	if len(out) != len(want)+1 {
		t.Fatalf("%d groups, want %d", len(out)-1, len(want))
	}
	for _, row := range out[1:] {
		w := strings.TrimRight(strings.TrimRight(want[row[0]].FloatString(2), "0"), ".")
		if row[1] != w {
			t.Errorf("group %s: sum %s, want %s", row[0], row[1], w)
		}
	}
}

// A run stopped anywhere and resumed writes the same bytes as one
// uninterrupted run: the checkpointed state holds the exact values.
func TestResumedRunIsByteIdentical(t *testing.T) {
	rows := 3000
	in := arithInput(rows, 2)
	ref := t.TempDir()
	if err := os.WriteFile(filepath.Join(ref, "in.csv"), []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := aggregate.Run(context.Background(), aggOptions(ref, 0)); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(ref, "out.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// A checkpoint for every record would be an fsync for every record;
	// the kill loop (crash_test.go) covers resumes at any record.
	for _, every := range []int64{25, 250} {
		t.Run(fmt.Sprint("every ", every), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "in.csv"), []byte(in), 0o644); err != nil {
				t.Fatal(err)
			}
			stops := 0
			for {
				// The first two runs are cancelled as they start
				// reading, so that each stops at its first check, 1,024
				// records in, with a shutdown checkpoint between two
				// record-count checkpoints: a stop decided by the
				// records read, not by a timer that a busy machine may
				// fire too late. The third runs to the end. The kill
				// loop (crash_test.go) stops runs at any record.
				o := aggOptions(dir, every)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if stops < 2 {
					o.Pipeline.OnStart = func(pipeline.Start) { cancel() }
				}
				res, err := aggregate.Run(ctx, o)
				if errors.Is(err, context.Canceled) {
					stops++
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if res.Resumed == nil {
					t.Fatal("the last run did not resume")
				}
				break
			}
			got, err := os.ReadFile(filepath.Join(dir, "out.csv"))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d stops", stops)
			if stops != 2 || !bytes.Equal(got, want) {
				t.Fatalf("%d stops; got\n%s\nwant\n%s", stops, got, want)
			}
		})
	}
}

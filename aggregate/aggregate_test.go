package aggregate_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/aggregate"
	"github.com/ckptdev/ckpt/internal/gen"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/source"
)

// run aggregates input with a checkpoint every 2 records (every 5000 for
// large inputs), so state goes through the codec many times.
func run(t *testing.T, inName, input, outName string, groupBy []string, aggs string, policy pipeline.Policy) (string, pipeline.Result, error) {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, inName), filepath.Join(dir, outName)
	if err := os.WriteFile(in, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	specs, err := aggregate.ParseSpecs(aggs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := aggregate.Run(context.Background(), aggregate.Options{
		Input: in, Output: out, GroupBy: groupBy, Aggs: specs,
		Pipeline: pipeline.Config{Job: "agg", OnBadRecord: policy, Config: ckpt.Config{
			Store: filepath.Join(dir, "store"), NoSignals: true, Every: ckpt.Every{Records: every(input)},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}},
	})
	b, _ := os.ReadFile(out)
	return string(b), res, err
}

func every(input string) int64 {
	if len(input) > 1<<16 {
		return 5000
	}
	return 2
}

func TestAggregateCSV(t *testing.T) {
	in := "g,h,x,y\n" +
		"b,1,10,1.5\n" +
		"a,1,,2\n" +
		"b,1,-3,\n" +
		"a,2,7,1e1\n" +
		"\"a,1\",1,5,0.1\n" +
		"b,1,9007199254740993,0.2\n"
	got, res, err := run(t, "in.csv", in, "out.csv", []string{"g", "h"}, "count,sum:x,min:x,max:x,mean:y,sum:y", pipeline.Fail)
	if err != nil {
		t.Fatal(err)
	}
	want := "g,h,count,x_sum,x_min,x_max,y_mean,y_sum\n" +
		"a,1,1,0,,,2,2\n" + // no x values: sum 0, min and max empty
		"a,2,1,7,7,7,10,10\n" + // sums and means computed; min and max as written
		"\"a,1\",1,1,5,5,5,0.1,0.1\n" +
		"b,1,3,9007199254741000,-3,9007199254740993,0.85,1.7\n" // integer sums exact beyond 2^53
	if got != want || res.Records != 6 {
		t.Fatalf("%d records, got\n%s\nwant\n%s", res.Records, got, want)
	}
}

func TestIntegerSumsAreExactPastInt64(t *testing.T) {
	got, _, err := run(t, "in.csv", "g,x\na,9007199254740993\na,1\nb,9223372036854775807\nb,1\n", "out.csv", []string{"g"}, "sum:x", pipeline.Fail)
	if err != nil {
		t.Fatal(err)
	}
	want := "g,x_sum\na,9007199254740994\nb,9223372036854775808\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestAggregateJSONLToJSONL(t *testing.T) {
	in := `{"k":"x","v":1}` + "\n" + `{"k":"x","v":null}` + "\n" + `{"k":"y"}` + "\n" + `{"k":"x","v":"2.5"}` + "\n"
	got, _, err := run(t, "in.jsonl", in, "out.jsonl", []string{"k"}, "count,mean:v,max:v", pipeline.Fail)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"k":"x","count":3,"v_mean":1.75,"v_max":2.5}` + "\n" + `{"k":"y","count":1,"v_mean":null,"v_max":null}` + "\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestNonNumbersAreBadRecordsAndLeaveStateUntouched(t *testing.T) {
	in := "g,x,y\na,1,2\na,3,oops\na,5,6\n"
	_, _, err := run(t, "in.csv", in, "out.csv", []string{"g"}, "count,sum:x,sum:y", pipeline.Fail)
	var re *source.RecordError
	if !errors.As(err, &re) || re.Line != 3 || !strings.Contains(err.Error(), `column "y": "oops" is not a number`) {
		t.Fatalf("err = %v", err)
	}
	// Skipped, the bad record counts nowhere: not in count, not in sum:x.
	got, res, err := run(t, "in.csv", in, "out.csv", []string{"g"}, "count,sum:x,sum:y", pipeline.Skip)
	if err != nil || res.Skipped != 1 || got != "g,count,x_sum,y_sum\na,2,6,8\n" {
		t.Fatalf("skip: %v, skipped %d, output %q", err, res.Skipped, got)
	}
}

func TestUnknownColumn(t *testing.T) {
	_, _, err := run(t, "in.csv", "g,x\na,1\n", "out.csv", []string{"nope"}, "count", pipeline.Fail)
	if err == nil || !strings.Contains(err.Error(), `no column "nope"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseSpecs(t *testing.T) {
	for _, bad := range []string{"", "median:x", "count:x", "sum", "sum:"} {
		if _, err := aggregate.ParseSpecs(bad); err == nil {
			t.Errorf("ParseSpecs(%q) accepted", bad)
		}
	}
	specs, err := aggregate.ParseSpecs("count, sum:a ,mean:b")
	if err != nil || len(specs) != 3 || specs[1].Name() != "a_sum" || specs[0].Name() != "count" {
		t.Fatalf("%+v, %v", specs, err)
	}
}

// The aggregation of generated data agrees with a direct computation.
func TestAgreesWithDirectComputation(t *testing.T) {
	var b bytes.Buffer
	if err := gen.Write(&b, gen.Options{Rows: 30000, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	type acc struct {
		count, qty int64
		amount     float64
		n          int64
	}
	want := map[string]*acc{}
	r := csv.NewReader(bytes.NewReader(b.Bytes()))
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs[1:] {
		a := want[rec[2]]
		if a == nil {
			a = &acc{}
			want[rec[2]] = a
		}
		a.count++
		q, _ := strconv.ParseInt(rec[4], 10, 64)
		a.qty += q
		if rec[3] != "" {
			f, _ := strconv.ParseFloat(rec[3], 64)
			a.amount += f
			a.n++
		}
	}
	got, _, err := run(t, "in.csv", b.String(), "out.csv", []string{"city"}, "count,sum:qty,mean:amount", pipeline.Fail)
	if err != nil {
		t.Fatal(err)
	}
	out, err := csv.NewReader(strings.NewReader(got)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(want)+1 {
		t.Fatalf("%d groups, want %d", len(out)-1, len(want))
	}
	var keys []string
	for _, row := range out[1:] {
		keys = append(keys, row[0])
		a := want[row[0]]
		mean, _ := strconv.ParseFloat(row[3], 64)
		if row[1] != fmt.Sprint(a.count) || row[2] != fmt.Sprint(a.qty) || math.Abs(mean-a.amount/float64(a.n)) > 1e-9*math.Abs(mean) {
			t.Errorf("group %q: got %v, want count %d, qty %d, mean %v", row[0], row[1:], a.count, a.qty, a.amount/float64(a.n))
		}
	}
	if !slices.IsSorted(keys) {
		t.Errorf("groups not sorted: %q", keys)
	}
}

// Every line of JSON Lines output is valid JSON, whatever form the input
// wrote its numbers in; CSV output keeps min and max as written.
func TestJSONOutputNumbersAreJSON(t *testing.T) {
	in := "g,x\na,+5\na,007\nb,.5\nb,1.\nc,-00\nc,0x1p-2\nd,1e2\n"
	got, _, err := run(t, "in.csv", in, "out.jsonl", []string{"g"}, "min:x,max:x,sum:x", pipeline.Fail)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"g":"a","x_min":5,"x_max":7,"x_sum":12}` + "\n" +
		`{"g":"b","x_min":0.5,"x_max":1,"x_sum":1.5}` + "\n" +
		`{"g":"c","x_min":0,"x_max":0.25,"x_sum":0.25}` + "\n" +
		`{"g":"d","x_min":1e2,"x_max":1e2,"x_sum":100}` + "\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	for line := range strings.Lines(got) {
		if !json.Valid([]byte(line)) {
			t.Errorf("not JSON: %s", line)
		}
	}
	got, _, err = run(t, "in.csv", in, "out.csv", []string{"g"}, "min:x,max:x", pipeline.Fail)
	if want := "g,x_min,x_max\na,+5,007\nb,.5,1.\nc,-00,0x1p-2\nd,1e2,1e2\n"; err != nil || got != want {
		t.Fatalf("CSV: %v, got\n%s\nwant\n%s", err, got, want)
	}
}

// A group key that JSON Lines output cannot hold is a bad record where it
// is read, not a failure after the whole input.
func TestInvalidUTF8GroupKeyIsABadRecord(t *testing.T) {
	in := "g,x\na,1\nb\xff,2\na,3\n"
	_, _, err := run(t, "in.csv", in, "out.jsonl", []string{"g"}, "count", pipeline.Fail)
	var re *source.RecordError
	if !errors.As(err, &re) || re.Line != 3 || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("err = %v, want a bad record at line 3", err)
	}
	got, res, err := run(t, "in.csv", in, "out.jsonl", []string{"g"}, "count", pipeline.Skip)
	if err != nil || res.Skipped != 1 || got != `{"g":"a","count":2}`+"\n" {
		t.Fatalf("skip: %v, %d skipped, output %q", err, res.Skipped, got)
	}
	// CSV output holds any bytes.
	if got, _, err := run(t, "in.csv", in, "out.csv", []string{"g"}, "count", pipeline.Fail); err != nil || got != "g,count\na,2\nb\xff,1\n" {
		t.Fatalf("CSV output: %v, %q", err, got)
	}
}

// A resume with other group-by columns or aggregations is refused: the
// groups in the checkpoint have the old layout.
func TestResumeWithOtherAggregationsIsRefused(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.csv")
	if err := os.WriteFile(in, []byte("g,x,y\na,1,2\nb,2,3\na,x,4\nb,5,6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runWith := func(groupBy []string, aggs string, policy pipeline.Policy) (pipeline.Result, error) {
		specs, err := aggregate.ParseSpecs(aggs)
		if err != nil {
			t.Fatal(err)
		}
		return aggregate.Run(context.Background(), aggregate.Options{Input: in, Output: out, GroupBy: groupBy, Aggs: specs,
			Pipeline: pipeline.Config{Job: "agg", OnBadRecord: policy, Config: ckpt.Config{
				Store: filepath.Join(dir, "store"), NoSignals: true, Every: ckpt.Every{Records: 1},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}})
	}
	var re *source.RecordError
	if _, err := runWith([]string{"g"}, "sum:x", pipeline.Fail); !errors.As(err, &re) || re.Line != 4 {
		t.Fatalf("first run: %v, want it stopped at line 4", err)
	}
	for _, c := range []struct {
		groupBy []string
		aggs    string
	}{
		{[]string{"g"}, "count,sum:x"},
		{[]string{"g"}, "sum:y"},
		{[]string{"g", "y"}, "sum:x"},
	} {
		if _, err := runWith(c.groupBy, c.aggs, pipeline.Skip); !errors.Is(err, pipeline.ErrParamsChanged) {
			t.Errorf("resume with --group-by %v --agg %s: %v, want ErrParamsChanged", c.groupBy, c.aggs, err)
		}
	}
	if res, err := runWith([]string{"g"}, "sum:x", pipeline.Skip); err != nil || res.Resumed == nil || res.Skipped != 1 {
		t.Fatalf("resume with the same options: %v, %+v", err, res)
	}
	if got, err := os.ReadFile(out); err != nil || string(got) != "g,x_sum\na,1\nb,7\n" {
		t.Fatalf("output %q, %v", got, err)
	}
}

// A bad CSV record reaches the dead-letter file as it was in the input.
func TestDeadLetterKeepsTheCSVRecord(t *testing.T) {
	dir := t.TempDir()
	in, dl := filepath.Join(dir, "in.csv"), filepath.Join(dir, "rejects.jsonl")
	if err := os.WriteFile(in, []byte("g,x\na,1\n\"b\",\"n/a\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	specs, _ := aggregate.ParseSpecs("sum:x")
	_, err := aggregate.Run(context.Background(), aggregate.Options{Input: in, Output: filepath.Join(dir, "out.csv"), GroupBy: []string{"g"}, Aggs: specs,
		Pipeline: pipeline.Config{Job: "agg", OnBadRecord: pipeline.DeadLetter, DeadLetterPath: dl, Config: ckpt.Config{
			Store: filepath.Join(dir, "store"), NoSignals: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dl)
	if err != nil {
		t.Fatal(err)
	}
	var letter struct {
		Line   int64  `json:"line"`
		Record string `json:"record"`
	}
	if err := json.Unmarshal(b, &letter); err != nil || letter.Line != 3 || letter.Record != `"b","n/a"` {
		t.Fatalf("dead letter %s", b)
	}
}

// An output that is not a local file is refused, not written to a local
// path spelled like an address.
func TestRemoteOutputIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.csv"), []byte("g,a\nx,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, out := range []string{"s3://bucket/out.csv", "postgres://u:secret@127.0.0.1/db?table=t", "nats://127.0.0.1:4222/S"} {
		opts := aggOptions(dir, 0)
		opts.Output = out
		_, err := aggregate.Run(context.Background(), opts)
		if err == nil || !strings.Contains(err.Error(), "writes a local file") || strings.Contains(err.Error(), "secret") {
			t.Errorf("output %s: %v", out, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("the refused runs left %d entries in the directory", len(ents))
	}
}

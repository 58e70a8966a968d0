package convert_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/internal/gen"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/source"
)

// run converts input (written to a file named in) and returns the output.
func run(t *testing.T, in, input, out string, infer bool, policy pipeline.Policy) (string, pipeline.Result, error) {
	t.Helper()
	dir := t.TempDir()
	inPath, outPath := filepath.Join(dir, in), filepath.Join(dir, out)
	if err := os.WriteFile(inPath, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := convert.Run(context.Background(), convert.Options{
		Input: inPath, Output: outPath, InferTypes: infer,
		Pipeline: pipeline.Config{Job: "t", OnBadRecord: policy, Config: ckpt.Config{
			Store: filepath.Join(dir, "store"), NoSignals: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}},
	})
	b, _ := os.ReadFile(outPath)
	return string(b), res, err
}

func TestCSVToJSONL(t *testing.T) {
	cases := []struct {
		name, in, want string
		infer          bool
	}{
		{"strings", "a,b\n1,x\n", `{"a":"1","b":"x"}` + "\n", false},
		{"quoting and escapes", "a,b\n\"x, \"\"y\"\"\",\"l1\r\nl2\ttab\"\n", `{"a":"x, \"y\"","b":"l1\r\nl2\ttab"}` + "\n", false},
		{"unicode and control bytes", "a\nZürich 東京 🙂\n\x01\n", `{"a":"Zürich 東京 🙂"}` + "\n" + `{"a":"\u0001"}` + "\n", false},
		{"duplicate and empty names", "a,a,,a\n1,2,3,4\n", `{"a":"1","a_2":"2","3":"3","a_3":"4"}` + "\n", false},
		{"infer types", "n,f,b,e,s,z\n-12,3.5e2,true,,007,0\n", `{"n":-12,"f":3.5e2,"b":true,"e":null,"s":"007","z":0}` + "\n", true},
		{"infer leaves non-JSON numbers as strings", "x\n1.\n.5\n+1\nNaN\nTrue\n", `{"x":"1."}` + "\n" + `{"x":".5"}` + "\n" + `{"x":"+1"}` + "\n" + `{"x":"NaN"}` + "\n" + `{"x":"True"}` + "\n", true},
		{"header only", "a,b\n", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := run(t, "in.csv", tc.in, "out.jsonl", tc.infer, pipeline.Fail)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestInvalidUTF8IsABadRecord(t *testing.T) {
	_, _, err := run(t, "in.csv", "a,b\n1,2\n3,x\xffy\n", "out.jsonl", false, pipeline.Fail)
	var re *source.RecordError
	if !errors.As(err, &re) || re.Line != 3 || !strings.Contains(err.Error(), "field 2") || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("err = %v, want a bad record at line 3, field 2, invalid UTF-8", err)
	}
	got, res, err := run(t, "in.csv", "a,b\n1,2\n3,x\xffy\n5,6\n", "out.jsonl", false, pipeline.Skip)
	if err != nil || res.Skipped != 1 || got != `{"a":"1","b":"2"}`+"\n"+`{"a":"5","b":"6"}`+"\n" {
		t.Fatalf("skip: %v, %d skipped, output %q", err, res.Skipped, got)
	}
}

func TestJSONLToCSV(t *testing.T) {
	in := `{"id":1,"name":"a, b","tags":["x", "y"],"meta":{"k": null},"ok":true,"none":null}` + "\n" +
		"\n" +
		`{"name":"q\"t\nnl","id":2.50}` + "\r\n" +
		`  {"id":-3,"ok":false,"name":"\u00fc\ud83d\ude42"}  ` + "\n"
	want := "id,name,tags,meta,ok,none\n" +
		`1,"a, b","[""x"",""y""]","{""k"":null}",true,` + "\n" +
		`2.50,"q""t` + "\n" + `nl",,,,` + "\n" +
		"-3,ü🙂,,,false,\n"
	got, res, err := run(t, "in.jsonl", in, "out.csv", false, pipeline.Fail)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if res.Records != 4 {
		t.Fatalf("%d records, want 4 (the blank line counts as read)", res.Records)
	}
}

func TestJSONLBadRecords(t *testing.T) {
	cases := []struct {
		name, line, msg string
		col             int64
	}{
		{"not an object", `[1,2]`, "not a JSON object", 1},
		{"syntax", `{"id":1,}`, "expected a key", 9},
		{"unknown column", `{"id":1,"x":2}`, `key "x" is not a column`, 0},
		{"duplicate key", `{"id":1,"id":2}`, `duplicate key "id"`, 0},
		{"trailing data", `{"id":1} x`, "data after the object", 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, "in.jsonl", `{"id":0}`+"\n"+tc.line+"\n", "out.csv", false, pipeline.Fail)
			var re *source.RecordError
			if !errors.As(err, &re) || re.Line != 2 || re.Column != tc.col || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v (column %d), want line 2 column %d: %s", err, colOf(re), tc.col, tc.msg)
			}
		})
	}
}

func colOf(re *source.RecordError) int64 {
	if re == nil {
		return -1
	}
	return re.Column
}

// CSV written with minimal quoting and LF line ends (as gen writes it)
// survives CSV -> JSON Lines -> CSV byte for byte.
func TestRoundTripIsLossless(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	if err := gen.Write(&b, gen.Options{Rows: 20000, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	orig := filepath.Join(dir, "orig.csv")
	if err := os.WriteFile(orig, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := pipeline.Config{Config: ckpt.Config{Store: filepath.Join(dir, "store"), NoSignals: true, Every: ckpt.Every{Records: 1000}}}
	cfg.Job = "there"
	if _, err := convert.Run(context.Background(), convert.Options{Input: orig, Output: filepath.Join(dir, "mid.jsonl"), Pipeline: cfg}); err != nil {
		t.Fatal(err)
	}
	cfg.Job = "back"
	if _, err := convert.Run(context.Background(), convert.Options{Input: filepath.Join(dir, "mid.jsonl"), Output: filepath.Join(dir, "back.csv"), Pipeline: cfg}); err != nil {
		t.Fatal(err)
	}
	back, err := os.ReadFile(filepath.Join(dir, "back.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, b.Bytes()) {
		t.Fatalf("round trip differs: %d bytes vs %d", len(back), b.Len())
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		ok      bool
	}{
		{"a.csv", "b.jsonl", true},
		{"a.CSV", "b.ndjson", true},
		{"a.jsonl", "b.csv", true},
		{"a.csv", "b.csv", false},
		{"a.txt", "b.csv", false},
		{"a.csv", "b", false},
	} {
		o := convert.Options{Input: tc.in, Output: tc.out}
		if err := o.Resolve(); (err == nil) != tc.ok {
			t.Errorf("%s -> %s: err = %v, want ok %v", tc.in, tc.out, err, tc.ok)
		}
	}
	for _, s := range []string{"csv", "jsonl", "ndjson", "JSONL"} {
		if _, err := convert.ParseFormat(s); err != nil {
			t.Errorf("ParseFormat(%q): %v", s, err)
		}
	}
	if _, err := convert.ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) accepted")
	}
}

func TestJSONLToCSVSingleColumnKeepsEmptyValues(t *testing.T) {
	got, _, err := run(t, "in.jsonl", `{"a":"x"}`+"\n"+`{"a":""}`+"\n"+`{"a":null}`+"\n"+`{}`+"\n", "out.csv", false, pipeline.Fail)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a\nx\n\"\"\n\"\"\n\"\"\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, _, err := run(t, "in.jsonl", "{}\n", "out.csv", false, pipeline.Fail); err == nil || !strings.Contains(err.Error(), "no keys") {
		t.Fatalf("first record {}: %v", err)
	}
}

// A record refused for invalid UTF-8 reaches the dead-letter file whole,
// as in the input: the file is where it is recovered from.
func TestInvalidUTF8DeadLetterKeepsTheRecord(t *testing.T) {
	dir := t.TempDir()
	in, out, dl := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "rejects.jsonl")
	if err := os.WriteFile(in, []byte("a,b\n1,2\n3,\"x\xffy\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := convert.Run(context.Background(), convert.Options{Input: in, Output: out,
		Pipeline: pipeline.Config{Job: "t", OnBadRecord: pipeline.DeadLetter, DeadLetterPath: dl, Config: ckpt.Config{
			Store: filepath.Join(dir, "store"), NoSignals: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}})
	if err != nil || res.DeadLettered != 1 {
		t.Fatalf("%v, %d dead letters", err, res.DeadLettered)
	}
	b, err := os.ReadFile(dl)
	if err != nil {
		t.Fatal(err)
	}
	var letter struct {
		Line   int64  `json:"line"`
		Record []byte `json:"record_base64"`
	}
	if err := json.Unmarshal(b, &letter); err != nil || letter.Line != 3 || string(letter.Record) != "3,\"x\xffy\"" {
		t.Fatalf("dead letter %s: line %d, record %q (%v)", b, letter.Line, letter.Record, err)
	}
}

// A header that is not UTF-8 is refused, even when bad records are
// skipped: re-encoding it by guess would rename the columns silently. The
// output is left untouched.
func TestLatin1HeaderIsRefused(t *testing.T) {
	got, _, err := run(t, "in.csv", "Gr\xf6\xdfe,b\n1,2\n", "out.jsonl", false, pipeline.Skip)
	if !errors.Is(err, source.ErrNotUTF8) || !strings.Contains(err.Error(), "Latin-1") {
		t.Fatalf("convert of a Latin-1 header: %v, want ErrNotUTF8", err)
	}
	if got != "" {
		t.Errorf("output %q, want none", got)
	}
}

// UTF-16 (Excel's "Unicode text") is refused with what it is and how to
// convert it, rather than turned into garbage with exit 0.
func TestUTF16IsRefused(t *testing.T) {
	b := []byte{0xff, 0xfe}
	for _, c := range []byte("a,b\n1,2\n") {
		b = append(b, c, 0)
	}
	_, _, err := run(t, "in.csv", string(b), "out.jsonl", false, pipeline.Skip)
	if !errors.Is(err, source.ErrNotUTF8) || !strings.Contains(err.Error(), "UTF-16 little-endian") || !strings.Contains(err.Error(), "iconv -f UTF-16 -t UTF-8") {
		t.Fatalf("convert of UTF-16: %v", err)
	}
}

// Compressed input is refused by name, not read as text.
func TestCompressedNames(t *testing.T) {
	// Compressions other than gzip and zstd are refused, and a compressed
	// name must tell the format inside.
	for _, tc := range []struct{ in, out string }{{"a.jsonl", "b.gz"}, {"a.jsonl", "b.csv.xz"}, {"a.csv.bz2", "b.jsonl"}, {"a.csv.xz", "b.jsonl"}, {"a.gz", "b.csv"}} {
		o := convert.Options{Input: tc.in, Output: tc.out}
		if err := o.Resolve(); err == nil || !strings.Contains(err.Error(), "compress") {
			t.Errorf("%s -> %s: %v, want an error about compression", tc.in, tc.out, err)
		}
	}
	for _, tc := range []struct {
		in   string
		from convert.Format
	}{{"a.csv.gz", convert.CSV}, {"logs/*.jsonl.zst", convert.JSONL}, {"a.tsv.zstd", convert.TSV}} {
		o := convert.Options{Input: tc.in, Output: "out.parquetless.csv"}
		if tc.from == convert.CSV || tc.from == convert.TSV {
			o.Output = "out.jsonl"
		}
		if err := o.Resolve(); err != nil || o.From != tc.from {
			t.Errorf("%s: %v, from %v; want %v", tc.in, err, o.From, tc.from)
		}
	}
	for _, tc := range []struct {
		out string
		to  convert.Format
	}{{"b.csv.gz", convert.CSV}, {"b.jsonl.zst", convert.JSONL}, {"b.tsv.zstd", convert.TSV}} {
		o := convert.Options{Input: "a.jsonl", Output: tc.out}
		if tc.to == convert.JSONL {
			o.Input = "a.csv"
		}
		if err := o.Resolve(); err != nil || o.To != tc.to {
			t.Errorf("-> %s: %v, to %v; want %v", tc.out, err, o.To, tc.to)
		}
	}
}

// A gzip or zstd input converts to the same bytes as the plain file, also
// when the job is stopped and resumed inside it.
func TestCompressedInputConverts(t *testing.T) {
	var b strings.Builder
	b.WriteString("n,s\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "%d,\"x, %d\"\n", i, i)
	}
	plain := b.String()
	want, _, err := run(t, "in.csv", plain, "out.jsonl", false, pipeline.Fail)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(plain))
	zw.Close()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv.gz"), filepath.Join(dir, "out.jsonl")
	if err := os.WriteFile(in, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stops := 0
	for {
		ctx, cancel := context.WithCancel(context.Background())
		o := convert.Options{Input: in, Output: out, Pipeline: pipeline.Config{Job: "gz", Config: ckpt.Config{
			Store: filepath.Join(dir, "store"), NoSignals: true, Every: ckpt.Every{Records: 700}, Logger: slog.New(slog.DiscardHandler)}}}
		if stops < 2 {
			o.Pipeline.OnStart = func(pipeline.Start) { cancel() } // stops at the first check, 1,024 records in
		}
		_, err := convert.Run(ctx, o)
		cancel()
		if errors.Is(err, context.Canceled) {
			stops++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if stops != 2 || string(got) != want {
		t.Fatalf("%d stops; output of %d bytes, want the plain file's %d", stops, len(got), len(want))
	}
}

// The options that shape the output are the job's: a resume with others
// would mix two kinds of lines in one file, and is refused.
func TestResumeWithOtherOptionsIsRefused(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.jsonl")
	var b strings.Builder
	b.WriteString("n,s\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "%d,x\n", i)
	}
	b.WriteString("bad,x\"y\n1000,x\n") // a bare quote stops the first run
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := func(infer bool, policy pipeline.Policy) convert.Options {
		return convert.Options{Input: in, Output: out, InferTypes: infer, Pipeline: pipeline.Config{Job: "t", OnBadRecord: policy, Config: ckpt.Config{
			Store: filepath.Join(dir, "store"), NoSignals: true, Every: ckpt.Every{Records: 100}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}}
	}
	var re *source.RecordError
	if _, err := convert.Run(context.Background(), opts(false, pipeline.Fail)); !errors.As(err, &re) {
		t.Fatalf("first run: %v, want it stopped by the bad record", err)
	}
	_, err := convert.Run(context.Background(), opts(true, pipeline.Skip))
	if !errors.Is(err, pipeline.ErrParamsChanged) || !strings.Contains(err.Error(), "infer_types") {
		t.Fatalf("resume with --infer-types: %v, want ErrParamsChanged naming infer_types", err)
	}
	res, err := convert.Run(context.Background(), opts(false, pipeline.Skip))
	if err != nil || res.Resumed == nil || res.Skipped != 1 {
		t.Fatalf("resume with the same options: %v, %+v", err, res)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), `{"n":"0","s":"x"}`) || !strings.HasSuffix(string(got), `{"n":"1000","s":"x"}`+"\n") || bytes.Count(got, []byte("\n")) != 1001 {
		t.Fatalf("output of %d lines", bytes.Count(got, []byte("\n")))
	}
}

// convert.Run called from Go refuses an output that is the input (here a
// hard link to it): the library, not only the CLI, keeps the input.
func TestOutputThatIsTheInputIsRefused(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.jsonl")
	const data = "a,b\n1,2\n3,4\n"
	if err := os.WriteFile(in, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(in, out); err != nil {
		t.Fatal(err)
	}
	_, err := convert.Run(context.Background(), convert.Options{Input: in, Output: out,
		Pipeline: pipeline.Config{Job: "t", Config: ckpt.Config{
			Store: filepath.Join(dir, "store"), NoSignals: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}})
	if !errors.Is(err, pipeline.ErrOutputIsInput) {
		t.Fatalf("convert.Run: %v, want ErrOutputIsInput", err)
	}
	if b, _ := os.ReadFile(in); string(b) != data {
		t.Fatalf("input now %q", b)
	}
}

// An S3 object named as compressed is refused before anything is read or
// written: the S3 output writes plain bytes, which that name would
// misdescribe.
func TestCompressedS3OutputIsRefused(t *testing.T) {
	for _, out := range []string{"s3://bucket/out.jsonl.gz?endpoint=http://127.0.0.1:1", "s3://bucket/out.csv.zst"} {
		o := convert.Options{Input: "in.csv", Output: out}
		err := o.Resolve()
		if err == nil || !strings.Contains(err.Error(), "uncompressed") {
			t.Errorf("Resolve of %s: %v, want a refusal", out, err)
		}
	}
}

// A Parquet file named as gzip- or zstd-compressed is refused as input
// and as output: Parquet compresses its own columns.
func TestCompressedParquetIsRefused(t *testing.T) {
	for _, name := range []string{"out.parquet.gz", "out.pq.zst"} {
		if f, err := convert.FormatOf(name); err == nil {
			t.Errorf("FormatOf(%s) = %v", name, f)
		}
		if f, err := convert.InputFormatOf(name); err == nil {
			t.Errorf("InputFormatOf(%s) = %v", name, f)
		}
	}
}

// Parquet in an S3 object, as input or output, is refused before anything
// is read or written (the S3 input and output handle text formats only),
// rather than converted as if it were text.
func TestParquetOnS3IsRefused(t *testing.T) {
	for _, c := range [][2]string{
		{"in.csv", "s3://bucket/out.parquet"},
		{"in.parquet", "s3://bucket/out.csv"},
		{"s3://bucket/in.parquet", "out.csv"},
	} {
		o := convert.Options{Input: c[0], Output: c[1]}
		if err := o.Resolve(); err == nil || !strings.Contains(err.Error(), "Parquet file is read and written as a local file") {
			t.Errorf("Resolve of %s to %s: %v, want a refusal", c[0], c[1], err)
		}
	}
}

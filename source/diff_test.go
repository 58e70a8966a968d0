package source_test

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/source"
)

// awkwardPieces are what generated fields are made of: every byte the
// parser treats specially, and multi-byte UTF-8.
var awkwardPieces = []string{"a", "b", "xyz", " ", ",", ";", "\t", `"`, `""`, "\r", "\n", "\r\n", "\n\r", "é", "日本", "😀", "\u2028", "0"}

// genCSV generates a CSV file of n records of cols fields and returns it
// and the fields it holds (the header first).
func genCSV(rng *rand.Rand, n, cols int, comma byte) (string, [][]string) {
	header := make([]string, cols)
	for c := range header {
		header[c] = "col" + string(rune('A'+c))
		if rng.IntN(4) == 0 {
			header[c] += ",\"h\"\n"
		}
	}
	recs := append([][]string{header}, genRecords(rng, n, cols)...)
	return encodeCSV(rng, recs, comma), recs
}

// genRecords generates n records of cols awkward fields.
func genRecords(rng *rand.Rand, n, cols int) [][]string {
	recs := make([][]string, n)
	for r := range recs {
		recs[r] = make([]string, cols)
		for c := range recs[r] {
			var f strings.Builder
			for range rng.IntN(6) {
				f.WriteString(awkwardPieces[rng.IntN(len(awkwardPieces))])
			}
			recs[r][c] = f.String()
		}
	}
	return recs
}

// encodeCSV writes recs as CSV. Fields are quoted when they must be, and
// sometimes when they need not; records end in LF or CRLF at random, with
// blank lines between some, and the last one sometimes has no line end.
func encodeCSV(rng *rand.Rand, recs [][]string, comma byte) string {
	var sb strings.Builder
	for r, rec := range recs {
		for c, f := range rec {
			if c > 0 {
				sb.WriteByte(comma)
			}
			// A record of one empty field must be quoted, or it is a blank
			// line.
			mustQuote := strings.ContainsAny(f, string(comma)+"\"\r\n") || (len(rec) == 1 && f == "")
			if mustQuote || rng.IntN(5) == 0 {
				sb.WriteString(`"` + strings.ReplaceAll(f, `"`, `""`) + `"`)
			} else {
				sb.WriteString(f)
			}
		}
		if r == len(recs)-1 && rng.IntN(3) == 0 {
			break
		}
		if rng.IntN(2) == 0 {
			sb.WriteString("\r\n")
		} else {
			sb.WriteString("\n")
		}
		for rng.IntN(8) == 0 {
			sb.WriteString([]string{"\n", "\r\n"}[rng.IntN(2)])
		}
	}
	return sb.String()
}

// stdCSV reads in with encoding/csv: every record, the header first, and
// the line each starts on.
func stdCSV(in string, comma byte) ([][]string, []int, error) {
	r := csv.NewReader(strings.NewReader(in))
	r.Comma = rune(comma)
	r.FieldsPerRecord = -1
	var recs [][]string
	var lines []int
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return recs, lines, nil
		}
		if err != nil {
			return recs, lines, err
		}
		line, _ := r.FieldPos(0)
		recs = append(recs, rec)
		lines = append(lines, line)
	}
}

// normalizeCRLF turns CR LF into LF, as encoding/csv does inside quoted
// fields (RFC 4180 leaves it open; ckpt keeps field bytes exactly, so the
// two differ there and only there).
func normalizeCRLF(recs [][]string) [][]string {
	out := make([][]string, len(recs))
	for i, rec := range recs {
		out[i] = make([]string, len(rec))
		for j, f := range rec {
			out[i][j] = strings.ReplaceAll(f, "\r\n", "\n")
		}
	}
	return out
}

// TestCSVAgainstEncodingCSV reads generated awkward CSV with source.CSV and
// with encoding/csv. source.CSV must give exactly the generated fields
// (CR LF inside quotes kept), encoding/csv the same with CR LF turned into
// LF, and both the same line numbers.
func TestCSVAgainstEncodingCSV(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	rounds := 200
	if os.Getenv("CKPT_LONG") == "1" {
		rounds = 5000
	}
	for round := range rounds {
		comma := []byte{',', ';', '\t'}[rng.IntN(3)]
		in, want := genCSV(rng, 1+rng.IntN(40), 1+rng.IntN(4), comma)
		if rng.IntN(4) == 0 {
			in = bom + in
		}
		paths := writeFiles(t, in)
		opts := source.CSVOptions{Comma: comma}
		// Small buffers: records straddle refills everywhere.
		restore := source.SetInitialBuffer([]int{5, 64, 4096}[rng.IntN(3)])
		defer restore()
		s, err := readCSV(paths, nil, opts)
		if err != nil {
			t.Fatalf("round %d: %v\ninput %q", round, err, in)
		}
		c, err := source.OpenCSV(paths, nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		got := append([][]string{c.Header()}, goodRecords(s)...)
		c.Close()
		if len(goodRecords(s)) != len(s.events) {
			t.Fatalf("round %d: bad records in valid input: %s\ninput %q", round, fmtEvents(s.events), in)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: source.CSV read\n%q\nwant\n%q\ninput %q", round, got, want, in)
		}
		std, stdLines, err := stdCSV(strings.TrimPrefix(in, bom), comma)
		if err != nil {
			t.Fatalf("round %d: encoding/csv: %v\ninput %q", round, err, in)
		}
		if !reflect.DeepEqual(std, normalizeCRLF(want)) {
			t.Fatalf("round %d: encoding/csv read\n%q\nwant\n%q\ninput %q", round, std, normalizeCRLF(want), in)
		}
		for i, e := range s.events {
			if int(e.Line) != stdLines[i+1] {
				t.Fatalf("round %d: record %d on line %d, encoding/csv says %d\ninput %q", round, i, e.Line, stdLines[i+1], in)
			}
		}
		checkPlaces(t, s, paths)
		if round%10 == 0 {
			checkResume(t, s, func(pos json.RawMessage) (stream, error) { return readCSV(paths, pos, opts) })
		}
	}
}

// TestCSVSyntaxErrorsAgree: on input with one kind of fault, encoding/csv
// and source.CSV both refuse it, on the same line. (For a quote that is
// never closed, source.CSV points at the opening quote, encoding/csv at the
// end of the input: the line to compare is the record's first.)
func TestCSVSyntaxErrorsAgree(t *testing.T) {
	for _, tt := range []struct {
		in       string
		unclosed bool
	}{
		{"a,b\nx,y\"z\n", false},
		{"a,b\n1,2\n\"x\"y,z\n", false},
		{"a,b\n\"1\n\n2\"x,3\n", false},
		{"a,b\n1,2\n\"x\"\ry,z\n", false},
		{"a,b\n1,2\n3,\"4\n5,6\n", true},
		{"a,b\n1,2\n\"3\r\n4,5", true},
	} {
		in := tt.in
		paths := writeFiles(t, in)
		s := mustReadCSV(t, paths, source.CSVOptions{})
		var bad *event
		for i := range s.events {
			if s.events[i].Err != "" {
				bad = &s.events[i]
				break
			}
		}
		_, _, stdErr := stdCSV(in, ',')
		var pe *csv.ParseError
		if !errors.As(stdErr, &pe) || bad == nil {
			t.Errorf("%q: encoding/csv %v, source.CSV %v: both must refuse it", in, stdErr, bad)
			continue
		}
		if want := pe.Line; int(bad.Line) != want && !(tt.unclosed && int(bad.Line) == pe.StartLine) {
			t.Errorf("%q: fault on line %d, encoding/csv says %d (%v)", in, bad.Line, pe.Line, pe)
		}
	}
}

package records_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ckptdev/ckpt/internal/records"
)

// field is one key and value of an object as Scan reports it.
type field struct {
	Key   string
	Kind  records.Kind
	Value string
}

func scanned(o *records.Object) []field {
	var fs []field
	for i := range o.Keys {
		fs = append(fs, field{string(o.Keys[i]), o.Kinds[i], string(o.Values[i])})
	}
	return fs
}

// stdObject decodes line with encoding/json, keeping key order and
// duplicate keys: the fields Scan must report. ok is false if line is not
// one JSON object.
func stdObject(line []byte) (fs []field, ok bool) {
	if !json.Valid(line) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			panic(err)
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			panic(err)
		}
		f := field{Key: key}
		switch raw[0] {
		case '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				panic(err)
			}
			f.Kind, f.Value = records.String, s
		case 't', 'f':
			f.Kind, f.Value = records.Bool, string(raw)
		case 'n':
			f.Kind = records.Null
		case '{', '[':
			var cb bytes.Buffer
			if err := json.Compact(&cb, raw); err != nil {
				panic(err)
			}
			f.Kind, f.Value = records.Nested, cb.String()
		default:
			f.Kind, f.Value = records.Number, string(raw)
		}
		fs = append(fs, f)
	}
	if _, err := dec.Token(); err != nil {
		panic(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		panic(fmt.Sprintf("data after the object: %v", err))
	}
	return fs, true
}

var objectSeeds = []string{
	`{}`,
	` { } `,
	`{"a":1,"b":"x","c":true,"d":false,"e":null}`,
	`{"a" : -1.5e+3 , "b":[1, {"c" : 2}], "c":{ }}`,
	`{"esc":"q\"b\\s\/n\nr\rt\tb\bf\fu\u00e9\ud83d\ude00"}`,
	`{"dup":1,"dup":2}`,
	`{"":""}`,
	`{"k\u0000":"v"}`,
	"\t{\"a\":1}\r\n",
	`{"a":"日本😀\u2028"}`,
	`{"n":[1,"]",{"}":"{"}]}`,
	`{"a":1,}`,
	`{"a":01}`,
	`{"a":.5}`,
	`{"a":tru}`,
	`{"a":nul}`,
	`{"a":truex}`,
	`{"a":"\x"}`,
	`{"a":"\u12"}`,
	`{"a":"\ud800"}`,
	`{"a":"\udc00\ud800"}`,
	"{\"a\":\"\x01\"}",
	"{\"a\":\"\xff\"}",
	`{"a":1}{"b":2}`,
	`{"a":1} x`,
	`{"a":[1,2}`,
	`{"a":{"b":1]}`,
	`{a:1}`,
	`{"a" 1}`,
	`[1,2]`,
	`"str"`,
	`1`,
	``,
	`{"a":"unterminated`,
	`{"a":[`,
	`{"a":1e}`,
	`{"a":-}`,
	`{"a":+1}`,
}

func TestScan(t *testing.T) {
	tests := []struct {
		line string
		want []field
	}{
		{`{}`, nil},
		{`{"a":1,"b":"x","c":true,"d":false,"e":null}`, []field{
			{"a", records.Number, "1"}, {"b", records.String, "x"}, {"c", records.Bool, "true"},
			{"d", records.Bool, "false"}, {"e", records.Null, ""}}},
		{`{"n":-1.50e+3}`, []field{{"n", records.Number, "-1.50e+3"}}},
		{`{"s":"a\"b\\c\/d\n\u00e9\ud83d\ude00"}`, []field{{"s", records.String, "a\"b\\c/d\né😀"}}},
		{`{"k\tey":"v"}`, []field{{"k\tey", records.String, "v"}}},
		{`{ "x" : [ 1 , { "y" : "z" } ] }`, []field{{"x", records.Nested, `[1,{"y":"z"}]`}}},
		{`{"dup":1,"dup":"two"}`, []field{{"dup", records.Number, "1"}, {"dup", records.String, "two"}}},
	}
	var o records.Object
	for _, tt := range tests {
		if err := o.Scan([]byte(tt.line)); err != nil {
			t.Errorf("Scan(%s): %v", tt.line, err)
			continue
		}
		if got := scanned(&o); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("Scan(%s) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestScanErrors(t *testing.T) {
	tests := []struct {
		line string
		at   int // 0-based offset the SyntaxError names
		msg  string
	}{
		{``, 0, "not a JSON object"},
		{`[1]`, 0, "not a JSON object"},
		{`  {"a":1,}`, 9, "expected a key"},
		{`{"a" 1}`, 5, "expected ':'"},
		{`{"a":1 "b":2}`, 7, "expected ',' or '}'"},
		{`{"a":01}`, 5, "invalid value"},
		{`{"a":tru}`, 5, "unknown literal"},
		{`{"a":"x\qy"}`, 9, "bad escape"},
		{`{"a":"\ud800"}`, 12, "unpaired"},
		{"{\"a\":\"x\x01\"}", 7, "control character"},
		{"{\"a\":\"x\xff\"}", 7, "invalid UTF-8"},
		{`{"a":"x`, 7, "unterminated string"},
		{`{"a":1} x`, 8, "data after the object"},
	}
	var o records.Object
	for _, tt := range tests {
		err := o.Scan([]byte(tt.line))
		var se *records.SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Scan(%q) = %v, want a *SyntaxError", tt.line, err)
			continue
		}
		if se.Offset != tt.at || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("Scan(%q): %q at %d, want %q at %d", tt.line, se.Msg, se.Offset, tt.msg, tt.at)
		}
		if want := fmt.Sprintf("byte %d", tt.at+1); !strings.Contains(err.Error(), want) {
			t.Errorf("Scan(%q): message %q does not name %s", tt.line, err, want)
		}
	}
}

// TestScanReuse: an Object scanned again holds only the new fields, and
// the earlier values' bytes are not needed.
func TestScanReuse(t *testing.T) {
	var o records.Object
	if err := o.Scan([]byte(`{"a":"long value","b":[1,2,3],"c":3}`)); err != nil {
		t.Fatal(err)
	}
	if err := o.Scan([]byte(`{"x":"y"}`)); err != nil {
		t.Fatal(err)
	}
	if got := scanned(&o); fmt.Sprint(got) != fmt.Sprint([]field{{"x", records.String, "y"}}) {
		t.Errorf("after a second Scan: %v", got)
	}
	if err := o.Scan([]byte(`{"x":`)); err == nil {
		t.Fatal("accepted a broken object")
	}
	if err := o.Scan([]byte(`{"p":1}`)); err != nil || len(o.Keys) != 1 || len(o.Kinds) != 1 || len(o.Values) != 1 {
		t.Errorf("after a failed Scan, Scan(%s): %v, %d keys", `{"p":1}`, err, len(o.Keys))
	}
}

// surrogateEscape finds a \u escape of a UTF-16 surrogate.
var surrogateEscape = regexp.MustCompile(`(?i)\\ud[89a-f][0-9a-f]{2}`)

// FuzzScan checks Scan against encoding/json: on any line encoding/json
// reads as one object, Scan gives the same keys (duplicates included) and
// values in the same order; on any line json.Valid rejects, Scan fails.
// Scan refuses two things encoding/json accepts by altering the text:
// invalid UTF-8 and unpaired UTF-16 surrogates, which encoding/json
// replaces with U+FFFD.
func FuzzScan(f *testing.F) {
	for _, s := range objectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var o records.Object
		err := o.Scan(line)
		if err != nil {
			var se *records.SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(line) {
				t.Fatalf("Scan(%q) = %v: want a SyntaxError within the line", line, err)
			}
		}
		want, ok := stdObject(line)
		if !ok {
			if err == nil {
				t.Fatalf("Scan(%q) accepted what encoding/json rejects as an object: %v", line, scanned(&o))
			}
			return
		}
		if err != nil {
			if !utf8.Valid(line) && strings.Contains(err.Error(), "invalid UTF-8") {
				return
			}
			if strings.Contains(err.Error(), "unpaired UTF-16 surrogate") && surrogateEscape.Match(line) {
				return
			}
			t.Fatalf("Scan(%q): %v; encoding/json reads %v", line, err, want)
		}
		if !utf8.Valid(line) {
			t.Fatalf("Scan(%q) accepted invalid UTF-8", line)
		}
		if got := scanned(&o); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Fatalf("Scan(%q) = %q, encoding/json reads %q", line, got, want)
		}
	})
}

package records_test

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/internal/records"
)

// readStd reads one CSV record with encoding/csv.
func readStd(t *testing.T, line []byte, comma byte) []string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(line))
	r.Comma = rune(comma)
	r.FieldsPerRecord = -1
	rec, err := r.Read()
	if err != nil {
		t.Fatalf("encoding/csv cannot read %q: %v", line, err)
	}
	if _, err := r.Read(); err == nil {
		t.Fatalf("encoding/csv reads more than one record from %q", line)
	}
	return rec
}

// roundTrip writes fields with AppendCSVField, reads them back with
// encoding/csv, and checks they are the same. encoding/csv turns CR LF
// inside a quoted field into LF, so that is what is expected back.
func roundTrip(t *testing.T, fields []string, comma byte) {
	t.Helper()
	var line []byte
	for i, f := range fields {
		if i > 0 {
			line = append(line, comma)
		}
		line = records.AppendCSVField(line, []byte(f), comma)
	}
	line = append(line, '\n')
	want := make([]string, len(fields))
	for i, f := range fields {
		want[i] = strings.ReplaceAll(f, "\r\n", "\n")
	}
	if got := readStd(t, line, comma); !slices.Equal(got, want) {
		t.Fatalf("fields %q written as %q read back as %q", fields, line, got)
	}
}

var csvFieldSeeds = []string{"", "plain", "a,b", "a;b", `say "hi"`, `"`, `""`, "line\nbreak", "cr\rlf", "crlf\r\n", " lead", "trail ", "é日本😀", "\t", "\\."}

func TestAppendCSVField(t *testing.T) {
	for _, comma := range []byte{',', ';', '\t', '|'} {
		for _, a := range csvFieldSeeds {
			roundTrip(t, []string{a, "x"}, comma)
			for _, b := range csvFieldSeeds {
				roundTrip(t, []string{a, b}, comma)
			}
		}
	}
	// Quoting only when needed.
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"", ""},
		{"a,b", `"a,b"`},
		{`x"y`, `"x""y"`},
		{"x\ny", "\"x\ny\""},
		{"x\ry", "\"x\ry\""},
		{" sp ", " sp "},
	}
	for _, tt := range tests {
		if got := records.AppendCSVField([]byte("p:"), []byte(tt.in), ','); string(got) != "p:"+tt.want {
			t.Errorf("AppendCSVField(%q) = %q, want %q", tt.in, got, "p:"+tt.want)
		}
	}
}

func FuzzAppendCSVField(f *testing.F) {
	for _, s := range csvFieldSeeds {
		f.Add(s, "x", byte(','))
	}
	f.Fuzz(func(t *testing.T, a, b string, comma byte) {
		if comma == '"' || comma == '\r' || comma == '\n' || comma >= 0x80 || comma == 0 || comma == 0xff {
			return // not a separator encoding/csv accepts as one byte
		}
		roundTrip(t, []string{a, b}, comma)
	})
}

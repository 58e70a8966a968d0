package records_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ckptdev/ckpt/internal/records"
)

// stdString is what encoding/json writes for s, with HTML escaping off and
// its escapes of U+2028 and U+2029 undone: what AppendString must write.
func stdString(s []byte) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(string(s)); err != nil {
		panic(err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			out = append(out, b[i])
			continue
		}
		// An escape: \u2028 and \u2029 become the characters, any other
		// is copied whole (so a "\\" followed by "u2028" stays as it is).
		if b[i+1] == 'u' && (string(b[i+2:i+6]) == "2028" || string(b[i+2:i+6]) == "2029") {
			out = utf8.AppendRune(out, map[string]rune{"2028": '\u2028', "2029": '\u2029'}[string(b[i+2:i+6])])
			i += 5
			continue
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}

var stringSeeds = []string{
	"", "plain", `quote " and \ backslash`, "<a href='x'>&amp;</a>", "line\nbreak\r\ttab",
	"\x00\x01\x08\x0b\x0c\x1f\x7f", "é日本😀", "\u2028\u2029", `\u2028`, "\ufffd", "\xef\xbf\xbd",
	"a\u0085b", "\U0010ffff",
}

func TestAppendString(t *testing.T) {
	for _, s := range stringSeeds {
		checkAppendString(t, []byte(s))
	}
	// Every single byte and every rune up to U+FFFF and a few beyond.
	for c := range 0x80 {
		checkAppendString(t, []byte{byte(c), 'x'})
	}
	for r := rune(0x80); r < 0x10000; r++ {
		if r >= 0xd800 && r < 0xe000 {
			continue
		}
		checkAppendString(t, utf8.AppendRune([]byte("x"), r))
	}
	// It appends.
	b, err := records.AppendString([]byte("prefix:"), []byte("v"))
	if err != nil || string(b) != `prefix:"v"` {
		t.Errorf("AppendString to a prefix = %q, %v", b, err)
	}
}

func checkAppendString(t *testing.T, s []byte) {
	t.Helper()
	got, err := records.AppendString(nil, s)
	if err != nil {
		t.Fatalf("AppendString(%q): %v", s, err)
	}
	if want := stdString(s); !bytes.Equal(got, want) {
		t.Fatalf("AppendString(%q) = %s, encoding/json writes %s", s, got, want)
	}
	var back string
	if err := json.Unmarshal(got, &back); err != nil || back != string(s) {
		t.Fatalf("AppendString(%q) = %s, which decodes to %q, %v", s, got, back, err)
	}
}

func TestAppendStringInvalidUTF8(t *testing.T) {
	for _, s := range []string{"\xff", "a\x80", "\xc3", "\xc3(", "\xe2\x82", "\xed\xa0\x80" /* a surrogate */, "\xf4\x90\x80\x80" /* > U+10FFFF */, "\xc0\xaf" /* overlong */} {
		_, err := records.AppendString(nil, []byte(s))
		if !errors.Is(err, records.ErrInvalidUTF8) {
			t.Errorf("AppendString(%q) = %v, want ErrInvalidUTF8", s, err)
		}
	}
	// The error says where.
	_, err := records.AppendString(nil, []byte("abc\xff"))
	if err == nil || !strings.Contains(err.Error(), "byte 4") {
		t.Errorf("error %v does not name byte 4", err)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		got, err := records.AppendString(nil, s)
		if !utf8.Valid(s) {
			if !errors.Is(err, records.ErrInvalidUTF8) {
				t.Fatalf("AppendString(%q) = %s, %v; want ErrInvalidUTF8", s, got, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("AppendString(%q): %v", s, err)
		}
		if want := stdString(s); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json writes %s", s, got, want)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != string(s) {
			t.Fatalf("AppendString(%q) = %s, which decodes to %q, %v", s, got, back, err)
		}
	})
}

var numberSeeds = []string{
	"0", "-0", "1", "-1", "10", "01", "-01", "1.5", "1.", ".5", "-.5", "1e5", "1E+5", "1e-5", "1e", "1e+", "-",
	"+1", "0x10", "1.5e3.2", "Infinity", "NaN", " 1", "1 ", "", "1_000", "00", "0.0e0", "123456789012345678901234567890",
}

// isJSONNumber is the reference: the bytes are one JSON value, a number
// (it starts with '-' or a digit), without space around it (it ends in a
// digit).
func isJSONNumber(s []byte) bool {
	digit := func(c byte) bool { return c >= '0' && c <= '9' }
	return json.Valid(s) && (s[0] == '-' || digit(s[0])) && digit(s[len(s)-1])
}

func TestIsNumber(t *testing.T) {
	valid := 0
	for _, s := range numberSeeds {
		if got, want := records.IsNumber([]byte(s)), isJSONNumber([]byte(s)); got != want {
			t.Errorf("IsNumber(%q) = %v, JSON says %v", s, got, want)
		} else if got {
			valid++
		}
	}
	if valid < 8 {
		t.Errorf("only %d of the cases are numbers", valid)
	}
}

func FuzzIsNumber(f *testing.F) {
	for _, s := range numberSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		if got, want := records.IsNumber(s), isJSONNumber(s); got != want {
			t.Fatalf("IsNumber(%q) = %v, JSON says %v", s, got, want)
		}
	})
}

func TestAppendInferred(t *testing.T) {
	tests := []struct {
		in   string
		kind string // the JSON type the output must decode to
	}{
		{"", "null"},
		{"true", "bool"},
		{"false", "bool"},
		{"True", "string"},
		{"null", "string"}, // only an empty value is null
		{"0", "number"},
		{"-12.5e3", "number"},
		{"12345678901234567890123", "number"},
		{"007", "string"},
		{"1,5", "string"},
		{" 1", "string"},
		{"NaN", "string"},
		{"a \"quoted\" <b>", "string"},
	}
	for _, tt := range tests {
		got, err := records.AppendInferred(nil, []byte(tt.in))
		if err != nil {
			t.Fatalf("AppendInferred(%q): %v", tt.in, err)
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(got))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("AppendInferred(%q) = %s: not JSON: %v", tt.in, got, err)
		}
		var kind string
		switch v := v.(type) {
		case nil:
			kind = "null"
		case bool:
			kind = "bool"
			if fmt.Sprint(v) != tt.in {
				t.Errorf("AppendInferred(%q) = %s", tt.in, got)
			}
		case json.Number:
			kind = "number"
			if string(got) != tt.in {
				t.Errorf("AppendInferred(%q) = %s: a number must be written as it is", tt.in, got)
			}
		case string:
			kind = "string"
			if v != tt.in {
				t.Errorf("AppendInferred(%q) = %s, decodes to %q", tt.in, got, v)
			}
		}
		if kind != tt.kind {
			t.Errorf("AppendInferred(%q) = %s, a %s; want a %s", tt.in, got, kind, tt.kind)
		}
	}
	if _, err := records.AppendInferred(nil, []byte("\xff")); !errors.Is(err, records.ErrInvalidUTF8) {
		t.Errorf("AppendInferred of invalid UTF-8: %v", err)
	}
}

// Package gen writes deterministic sample CSV with every awkward shape a
// real export has: quoted fields with separators, doubled quotes and line
// ends inside them, empty fields, non-ASCII text, CRLF line ends, a byte
// order mark. Tests, benchmarks and the demo use it.
package gen

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

// Options shape the generated file. The zero value writes plain LF CSV.
type Options struct {
	Rows int64
	Seed uint64
	CRLF bool // CRLF line ends
	BOM  bool // a UTF-8 byte order mark first
	// BadEvery, when > 0, makes about one row in BadEvery malformed (a bare
	// quote, or a missing field), for the bad-record policies.
	BadEvery int64
}

// Header is the generated file's header.
var Header = []string{"id", "name", "city", "amount", "qty", "note", "active", "day"}

var (
	cities = []string{"Berlin", "Paris", "Lyon", "São Paulo", "Zürich", "New York, NY", "Kraków", "東京", "Oslo", "Austin"}
	names  = []string{"Smith", "O'Brien", `Ann "Annie" Lee`, "Müller", "Dupont, Jean", "Ødegård", "Ng", "", "Nakamura 中村", "Doe"}
	notes  = []string{"", "ok", "call back, twice", "line one\nline two", "said \"no\"", "crlf\r\ninside", "  padded  ", "tab\there", "100%", "emoji 🙂"}
)

// Write writes the CSV to w.
func Write(w io.Writer, o Options) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	r := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	eol := "\n"
	if o.CRLF {
		eol = "\r\n"
	}
	if o.BOM {
		bw.WriteString("\xef\xbb\xbf")
	}
	for i, h := range Header {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString(h)
	}
	bw.WriteString(eol)
	var b []byte
	for id := int64(1); id <= o.Rows; id++ {
		b = b[:0]
		b = strconv.AppendInt(b, id, 10)
		b = append(b, ',')
		b = field(b, names[r.IntN(len(names))])
		b = append(b, ',')
		b = field(b, cities[r.IntN(len(cities))])
		b = append(b, ',')
		if r.IntN(50) != 0 {
			b = strconv.AppendFloat(b, float64(r.IntN(1_000_000))/100, 'f', 2, 64)
		}
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(r.IntN(100)), 10)
		b = append(b, ',')
		b = field(b, notes[r.IntN(len(notes))])
		b = append(b, ',')
		b = strconv.AppendBool(b, r.IntN(2) == 0)
		b = append(b, ',')
		b = fmt.Appendf(b, "2026-%02d-%02d", 1+r.IntN(12), 1+r.IntN(28))
		if o.BadEvery > 0 && r.Int64N(o.BadEvery) == 0 {
			if r.IntN(2) == 0 {
				b = append(b, `,x"y`...) // an extra field with a bare quote
			} else {
				b = b[:len(b)-11] // drop the last field
			}
		}
		b = append(b, eol...)
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// field appends s as a CSV field, quoted when needed.
func field(b []byte, s string) []byte {
	need := false
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ',' || c == '"' || c == '\n' || c == '\r' {
			need = true
			break
		}
	}
	if !need {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

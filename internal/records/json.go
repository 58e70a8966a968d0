// Package records holds the byte-level encoders and decoders that the
// conversions share: JSON strings and flat JSON objects, CSV fields. They
// append to caller-owned buffers and allocate nothing per record.
package records

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrInvalidUTF8: a value is not valid UTF-8, so it cannot become a JSON
// string without altering it.
var ErrInvalidUTF8 = errors.New("invalid UTF-8")

// safe[c] is true for bytes that need no escaping in a JSON string.
var safe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. It fails with ErrInvalidUTF8
// (and the byte offset) rather than replace invalid bytes, so conversion is
// lossless or refused.
func AppendString(b, s []byte) ([]byte, error) {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight bytes at a time while none needs a look.
		if i+8 <= len(s) && !special(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
			continue
		}
		c := s[i]
		if safe[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				return b, fmt.Errorf("%w at byte %d of the value", ErrInvalidUTF8, i+1)
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"'), nil
}

// special reports whether any byte of x is below 0x20, a quote, a
// backslash or non-ASCII: the bytes AppendString must look at. It uses
// the exact "has a byte less than n" and "has a zero byte" bit tricks.
func special(x uint64) bool {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	ctl := (x - 0x20*lsb) &^ x
	q := x ^ ('"' * lsb)
	quote := (q - lsb) &^ q
	bs := x ^ ('\\' * lsb)
	backslash := (bs - lsb) &^ bs
	return (ctl|quote|backslash|x)&msb != 0
}

// IsNumber reports whether s is a number in JSON's grammar, so that it can
// be written to JSON as it is, without rounding.
func IsNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i == len(s) {
		return false
	}
	if s[i] == '0' {
		i++
	} else if s[i] >= '1' && s[i] <= '9' {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(s)
}

// AppendInferred appends a CSV value as the JSON type it looks like: an
// empty value is null, true and false are booleans, a JSON number is
// written as it is; anything else is a string.
func AppendInferred(b, s []byte) ([]byte, error) {
	switch {
	case len(s) == 0:
		return append(b, "null"...), nil
	case string(s) == "true" || string(s) == "false" || IsNumber(s):
		return append(b, s...), nil
	}
	return AppendString(b, s)
}

// Kind is the JSON type of a value in an object.
type Kind uint8

// The kinds of JSON values.
const (
	String Kind = iota
	Number
	Bool
	Null
	Nested // an object or an array
)

// Object is a flat view of one JSON object: its keys and values in order.
// Scan fills it, reusing its memory; its slices are valid until the next
// Scan.
type Object struct {
	Keys   [][]byte
	Values [][]byte // strings unescaped; numbers, booleans, nested values as written
	Kinds  []Kind
	buf    []byte
	spans  []int
}

// SyntaxError is malformed JSON at a byte offset of the line.
type SyntaxError struct {
	Offset int // 0-based
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset+1, e.Msg)
}

// Scan parses line, which must hold exactly one JSON object.
func (o *Object) Scan(line []byte) error {
	o.Keys, o.Values, o.Kinds, o.buf, o.spans = o.Keys[:0], o.Values[:0], o.Kinds[:0], o.buf[:0], o.spans[:0]
	s := scanner{b: line}
	s.space()
	if !s.eat('{') {
		return s.fail("not a JSON object")
	}
	s.space()
	if !s.eat('}') {
		for {
			s.space()
			if s.peek() != '"' {
				return s.fail("expected a key")
			}
			if err := s.str(&o.buf); err != nil {
				return err
			}
			o.spans = append(o.spans, len(o.buf))
			s.space()
			if !s.eat(':') {
				return s.fail("expected ':'")
			}
			s.space()
			kind, err := s.value(&o.buf)
			if err != nil {
				return err
			}
			o.Kinds = append(o.Kinds, kind)
			o.spans = append(o.spans, len(o.buf))
			s.space()
			if s.eat(',') {
				continue
			}
			if s.eat('}') {
				break
			}
			return s.fail("expected ',' or '}'")
		}
	}
	s.space()
	if s.i != len(s.b) {
		return s.fail("data after the object")
	}
	start := 0
	for i, end := range o.spans {
		if i%2 == 0 {
			o.Keys = append(o.Keys, o.buf[start:end])
		} else {
			o.Values = append(o.Values, o.buf[start:end])
		}
		start = end
	}
	return nil
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(msg string) error { return &SyntaxError{Offset: s.i, Msg: msg} }

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str appends the unescaped string at s.i to out.
func (s *scanner) str(out *[]byte) error {
	s.i++ // the opening quote
	b := *out
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			*out = append(b, s.b[start:s.i]...)
			s.i++
			return nil
		case c == '\\':
			b = append(b, s.b[start:s.i]...)
			if s.i+1 >= len(s.b) {
				return s.fail("unfinished escape")
			}
			e := s.b[s.i+1]
			s.i += 2
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := s.hex4()
				if !ok {
					return s.fail("bad \\u escape")
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
						s.i += 2
						if r2, ok = s.hex4(); !ok {
							return s.fail("bad \\u escape")
						}
					}
					r = utf16.DecodeRune(r, r2)
					if r == utf8.RuneError {
						return s.fail("unpaired UTF-16 surrogate in \\u escape")
					}
				}
				b = utf8.AppendRune(b, r)
			default:
				return s.fail(fmt.Sprintf("bad escape \\%c", e))
			}
			start = s.i
		case c < 0x20:
			return s.fail("control character in a string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && size == 1 {
				return s.fail("invalid UTF-8")
			}
			s.i += size
		default:
			s.i++
		}
	}
	return s.fail("unterminated string")
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s.b[s.i:s.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	s.i += 4
	return rune(v), true
}

// value appends the value at s.i to out: unescaped if a string, as written
// (compacted, if nested) otherwise.
func (s *scanner) value(out *[]byte) (Kind, error) {
	switch c := s.peek(); {
	case c == '"':
		return String, s.str(out)
	case c == '{' || c == '[':
		start := s.i
		if err := s.skipNested(); err != nil {
			return Nested, err
		}
		var cb bytes.Buffer
		if err := json.Compact(&cb, s.b[start:s.i]); err != nil {
			return Nested, &SyntaxError{Offset: start, Msg: err.Error()}
		}
		*out = append(*out, cb.Bytes()...)
		return Nested, nil
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
				s.i += len(lit)
				if lit == "null" {
					return Null, nil
				}
				*out = append(*out, lit...)
				return Bool, nil
			}
		}
		return String, s.fail("unknown literal")
	default:
		start := s.i
		for s.i < len(s.b) && bytes.IndexByte([]byte("+-0123456789.eE"), s.b[s.i]) >= 0 {
			s.i++
		}
		if !IsNumber(s.b[start:s.i]) {
			s.i = start
			return Number, s.fail("invalid value")
		}
		*out = append(*out, s.b[start:s.i]...)
		return Number, nil
	}
}

// skipNested moves past the object or array at s.i, minding strings.
func (s *scanner) skipNested() error {
	depth := 0
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '"':
			var discard []byte
			if err := s.str(&discard); err != nil {
				return err
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.i++
				return nil
			}
		}
		s.i++
	}
	return s.fail("unterminated object or array")
}

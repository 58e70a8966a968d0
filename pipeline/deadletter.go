package pipeline

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"

	"github.com/ckptdev/ckpt/source"
)

// appendDeadLetter appends one dead-letter line: a JSON object with the
// record's place, the reason, and its raw bytes ("record" when they are
// UTF-8 text, else "record_base64", so nothing is altered).
func appendDeadLetter(b []byte, e *source.RecordError) []byte {
	b = append(b, `{"file":`...)
	b = strconv.AppendQuote(b, e.File)
	b = append(b, `,"line":`...)
	b = strconv.AppendInt(b, e.Line, 10)
	if e.Column > 0 {
		b = append(b, `,"column":`...)
		b = strconv.AppendInt(b, e.Column, 10)
	}
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, e.Offset, 10)
	b = append(b, `,"error":`...)
	b = appendJSONString(b, e.Err.Error())
	if utf8.Valid(e.Raw) {
		b = append(b, `,"record":`...)
		b = appendJSONString(b, string(e.Raw))
	} else {
		b = append(b, `,"record_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, e.Raw)
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

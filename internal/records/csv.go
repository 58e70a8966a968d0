package records

import "bytes"

// AppendCSVField appends v as one CSV field, quoted when it holds the
// separator, a quote, CR or LF (RFC 4180), with quotes doubled.
func AppendCSVField(b, v []byte, comma byte) []byte {
	if bytes.IndexByte(v, comma) < 0 && bytes.IndexByte(v, '"') < 0 && bytes.IndexByte(v, '\n') < 0 && bytes.IndexByte(v, '\r') < 0 {
		return append(b, v...)
	}
	b = append(b, '"')
	for {
		i := bytes.IndexByte(v, '"')
		if i < 0 {
			break
		}
		b = append(b, v[:i+1]...)
		b = append(b, '"')
		v = v[i+1:]
	}
	b = append(b, v...)
	return append(b, '"')
}

package pgsink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
)

// ColumnType is the PostgreSQL type of a column the sink fills. The zero
// value is text.
type ColumnType int

// The column types. WriteRow takes every value as text and converts it,
// so that a value the type cannot hold is an *InvalidValueError for that
// row, not a failed COPY.
const (
	Text        ColumnType = iota // text: any UTF-8 without NUL
	BigInt                        // bigint: a decimal integer
	Numeric                       // numeric: a decimal number, exactly
	Double                        // double precision
	Boolean                       // boolean: true/false, t/f, yes/no, on/off, 1/0
	Timestamptz                   // timestamptz: RFC 3339, with a zone
)

var typeNames = [...]string{"text", "bigint", "numeric", "double precision", "boolean", "timestamptz"}

// String returns the type's SQL name.
func (t ColumnType) String() string {
	if t < 0 || int(t) >= len(typeNames) {
		return fmt.Sprintf("ColumnType(%d)", int(t))
	}
	return typeNames[t]
}

// formatType is the name PostgreSQL's format_type gives the type.
func (t ColumnType) formatType() string {
	if t == Timestamptz {
		return "timestamp with time zone"
	}
	return t.String()
}

// ParseColumnType reads a type name: text, bigint (int8), numeric
// (decimal), double precision (double, float8), boolean (bool),
// timestamptz (timestamp with time zone).
func ParseColumnType(s string) (ColumnType, error) {
	switch strings.Join(strings.Fields(strings.ToLower(s)), " ") {
	case "text":
		return Text, nil
	case "bigint", "int8":
		return BigInt, nil
	case "numeric", "decimal":
		return Numeric, nil
	case "double precision", "double", "float8":
		return Double, nil
	case "boolean", "bool":
		return Boolean, nil
	case "timestamptz", "timestamp with time zone":
		return Timestamptz, nil
	}
	return Text, fmt.Errorf("unknown column type %q (use text, bigint, numeric, double precision, boolean or timestamptz)", s)
}

var (
	typeMap     = pgtype.NewMap()
	pgEpoch     = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	errNotValue = errors.New("not a value of the column's type")
)

// appendValue appends v, the text of a value of type t, to the binary
// COPY row b: its length, then its binary form.
func appendValue(b []byte, t ColumnType, v []byte) ([]byte, error) {
	switch t {
	case Text:
		if !utf8.Valid(v) {
			return b, errNotUTF8
		}
		if bytes.IndexByte(v, 0) >= 0 {
			return b, errNUL
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		return append(b, v...), nil
	case BigInt:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return b, fmt.Errorf("%q is not a bigint", v)
		}
		b = binary.BigEndian.AppendUint32(b, 8)
		return binary.BigEndian.AppendUint64(b, uint64(n)), nil
	case Double:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return b, fmt.Errorf("%q is not a double precision number", v)
		}
		if err != nil {
			return b, fmt.Errorf("%q is out of the range of double precision", v)
		}
		b = binary.BigEndian.AppendUint32(b, 8)
		return binary.BigEndian.AppendUint64(b, math.Float64bits(f)), nil
	case Boolean:
		x, ok := parseBool(v)
		if !ok {
			return b, fmt.Errorf("%q is not a boolean", v)
		}
		b = binary.BigEndian.AppendUint32(b, 1)
		if x {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case Timestamptz:
		ts, ok := ParseTimestamp(v)
		if !ok {
			return b, fmt.Errorf("%q is not a timestamp with a time zone (RFC 3339, as 2024-05-01T12:00:00Z)", v)
		}
		d := ts.Sub(pgEpoch) // saturates about 292 years away
		if d == math.MaxInt64 || d == math.MinInt64 {
			return b, fmt.Errorf("%q is out of the range this sink writes (years 1708 to 2292)", v)
		}
		us := d.Round(time.Microsecond).Microseconds()
		b = binary.BigEndian.AppendUint32(b, 8)
		return binary.BigEndian.AppendUint64(b, uint64(us)), nil
	case Numeric:
		n, ok := parseNumeric(v)
		if !ok {
			return b, fmt.Errorf("%q is not a decimal number", v)
		}
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		b, err := typeMap.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, n, b)
		if err != nil {
			return b[:at], fmt.Errorf("%q: %w", v, err)
		}
		binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
		return b, nil
	}
	return b, errNotValue
}

// parseBool reads the spellings of a boolean PostgreSQL accepts.
func parseBool(v []byte) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(string(v))) {
	case "true", "t", "yes", "y", "on", "1":
		return true, true
	case "false", "f", "no", "n", "off", "0":
		return false, true
	}
	return false, false
}

// ParseTimestamp reads an RFC 3339 time with a zone (a space may stand for
// the T): the forms a timestamptz column takes without guessing a zone.
func ParseTimestamp(v []byte) (time.Time, bool) {
	s := string(v)
	if len(s) < len("2006-01-02T15:04:05Z") {
		return time.Time{}, false
	}
	if s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// parseNumeric reads a decimal number exactly: an optional sign, digits
// with at most one point, an optional exponent; or NaN.
func parseNumeric(v []byte) (pgtype.Numeric, bool) {
	s := string(v)
	if strings.EqualFold(s, "nan") {
		return pgtype.Numeric{NaN: true, Valid: true}, true
	}
	mant, exp := s, int64(0)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.ParseInt(s[i+1:], 10, 32)
		if err != nil {
			return pgtype.Numeric{}, false
		}
		mant, exp = s[:i], e
	}
	neg := false
	if mant != "" && (mant[0] == '+' || mant[0] == '-') {
		neg, mant = mant[0] == '-', mant[1:]
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	if digits == "" {
		return pgtype.Numeric{}, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return pgtype.Numeric{}, false
		}
	}
	n, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return pgtype.Numeric{}, false
	}
	if neg {
		n.Neg(n)
	}
	exp -= int64(len(frac))
	if exp < math.MinInt32 || exp > math.MaxInt32 {
		return pgtype.Numeric{}, false
	}
	return pgtype.Numeric{Int: n, Exp: int32(exp), Valid: true}, true
}

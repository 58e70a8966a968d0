package convert

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink/pgsink"
	"github.com/ckptdev/ckpt/source"
	"github.com/ckptdev/ckpt/stream"
)

// InferSample is how many records of the input --infer-types reads to
// choose a table's column types. A later value its column's type cannot
// hold is a bad record, handled by the bad-record policy.
const InferSample = 10000

// typeGuess narrows a column's type as values are seen: each flag says
// whether every non-empty value so far could be of that kind.
type typeGuess struct {
	seen                        bool
	integer, decimal, exp, bool bool
	timestamp                   bool
}

func newGuesses(n int) []typeGuess {
	g := make([]typeGuess, n)
	for i := range g {
		g[i] = typeGuess{integer: true, decimal: true, bool: true, timestamp: true}
	}
	return g
}

// add takes one non-empty value into the guess.
func (g *typeGuess) add(v []byte) {
	g.seen = true
	isInt, isDec, hasExp := classifyNumber(string(v))
	g.integer = g.integer && isInt
	g.decimal = g.decimal && (isInt || isDec)
	g.exp = g.exp || hasExp
	g.bool = g.bool && (strings.EqualFold(string(v), "true") || strings.EqualFold(string(v), "false"))
	if g.timestamp {
		_, ok := pgsink.ParseTimestamp(v)
		g.timestamp = ok
	}
}

// column returns the narrowest type that holds every value seen: bigint,
// numeric (exact decimals), double precision (numbers written with an
// exponent), boolean, timestamptz; otherwise, or with no value, text.
func (g *typeGuess) column() pgsink.ColumnType {
	switch {
	case !g.seen:
		return pgsink.Text
	case g.integer && !g.exp:
		return pgsink.BigInt
	case g.decimal && !g.exp:
		return pgsink.Numeric
	case g.decimal:
		return pgsink.Double
	case g.bool:
		return pgsink.Boolean
	case g.timestamp:
		return pgsink.Timestamptz
	}
	return pgsink.Text
}

// classifyNumber says whether s is a decimal integer that fits a bigint,
// a decimal number (with a point or an exponent), and whether it has an
// exponent. A number with a leading zero ("007", "01.5") is neither: it is
// an identifier, a postal code, a phone number, whose zeros a number
// column would lose.
func classifyNumber(s string) (isInt, isDec, hasExp bool) {
	mant := s
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		exp := strings.TrimLeft(s[i+1:], "+-")
		if !digits(exp) || len(exp) > 4 || len(s[i+1:])-len(exp) > 1 {
			return false, false, false
		}
		mant, hasExp = s[:i], true
	}
	if mant != "" && (mant[0] == '-' || mant[0] == '+') {
		mant = mant[1:]
	}
	intPart, frac, point := strings.Cut(mant, ".")
	switch {
	case intPart == "" && !point,
		intPart != "" && !digits(intPart),
		point && !digits(frac),
		len(intPart) > 1 && intPart[0] == '0':
		return false, false, false
	}
	if !point && !hasExp {
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			return true, false, false
		}
		return false, true, false // too large for bigint: numeric
	}
	return false, true, hasExp
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// inferCSVTypes reads up to InferSample records of src, which is at its
// start, and returns the columns' types. Bad records are passed over:
// the load handles them by its policy.
func inferCSVTypes(src pipeline.Source[*source.Row], ncols int) ([]pgsink.ColumnType, error) {
	g := newGuesses(ncols)
	for n := 0; n < InferSample; n++ {
		row, err := src.Next()
		if err == io.EOF {
			break
		}
		var re *source.RecordError
		if errors.As(err, &re) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(row.Fields) != ncols {
			continue
		}
		for i, f := range row.Fields {
			if len(f) > 0 {
				g[i].add(f)
			}
		}
	}
	return columns(g), nil
}

// inferJSONLTypes does the same for JSON Lines, from the text of each
// value (a JSON string "42" counts as the number it spells).
func inferJSONLTypes(ctx context.Context, input string, keys []string) ([]pgsink.ColumnType, error) {
	src, err := LinesInput(input, stream.Until{})(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	g := newGuesses(len(keys))
	var row objectRow
	row.setColumns(keys)
	for n := 0; n < InferSample; n++ {
		line, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var re *source.RecordError
			if errors.As(err, &re) {
				continue
			}
			return nil, err
		}
		if ok, err := row.scan(line); !ok || err != nil {
			continue
		}
		if row.fill(line) != nil {
			continue
		}
		for i, v := range row.vals {
			if !row.null[i] && len(v) > 0 {
				g[i].add(v)
			}
		}
	}
	return columns(g), nil
}

func columns(g []typeGuess) []pgsink.ColumnType {
	out := make([]pgsink.ColumnType, len(g))
	for i := range g {
		out[i] = g[i].column()
	}
	return out
}

// recordTypes makes the chosen column types part of the job's
// parameters: a resume that would choose others is refused.
func recordTypes(cfg *pipeline.Config, types []pgsink.ColumnType) {
	if len(types) == 0 {
		return
	}
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = t.String()
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["types"] = strings.Join(names, ",")
}

// ParseSchema reads column types for a table output, one column a line:
// its input name, then its type (text, bigint, numeric, double precision,
// boolean, timestamptz), as
//
//	id        bigint
//	"unit price" numeric
//	# comments and blank lines are skipped
//
// A name with spaces is quoted as a Go string.
func ParseSchema(r io.Reader) (map[string]pgsink.ColumnType, error) {
	out := map[string]pgsink.ColumnType{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		var name, rest string
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, fmt.Errorf("schema line %d: bad quoted name: %w", n, err)
			}
			name, _ = strconv.Unquote(q)
			rest = line[len(q):]
		} else {
			name, rest, _ = strings.Cut(line, " ")
			if i := strings.IndexAny(name, "\t"); i >= 0 {
				name, rest = name[:i], name[i:]+" "+rest
			}
		}
		rest = strings.TrimSpace(rest)
		if name == "" || rest == "" {
			return nil, fmt.Errorf("schema line %d: want a column name and its type, as \"id bigint\"", n)
		}
		t, err := pgsink.ParseColumnType(rest)
		if err != nil {
			return nil, fmt.Errorf("schema line %d: %w", n, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("schema line %d: column %q is given twice", n, name)
		}
		out[name] = t
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("schema: no column in it")
	}
	return out, nil
}

// applySchema sets the types the schema gives the input's columns (by
// their names in the input) over types, which may be nil (all text).
func applySchema(types []pgsink.ColumnType, names []string, schema map[string]pgsink.ColumnType) ([]pgsink.ColumnType, error) {
	if len(schema) == 0 {
		return types, nil
	}
	if types == nil {
		types = make([]pgsink.ColumnType, len(names))
	}
	used := map[string]bool{}
	for i, n := range names {
		if t, ok := schema[n]; ok {
			types[i] = t
			used[n] = true
		}
	}
	var unknown []string
	for n := range schema {
		if !used[n] {
			unknown = append(unknown, strconv.Quote(n))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("the schema names columns the input does not have: %s (the input's: %s)", strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	return types, nil
}

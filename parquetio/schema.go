// Package parquetio reads and writes Apache Parquet files as resumable
// pipeline inputs and outputs.
//
// The output (Writer) ends a row group at every checkpoint: the file then
// holds the magic bytes and whole row groups, and the checkpoint records
// its length and the metadata of those row groups. A resumed job truncates
// the file back to that length and goes on writing row groups; the footer,
// listing every row group, is written once, when the input is exhausted.
// Each row group is encoded on its own by parquet-go into memory and its
// column chunks appended to the file with their offsets moved to where
// they land, so the library never needs to continue a file it did not
// start (see docs/PARQUET.md).
//
// The input (Source) reads flat Parquet files row group by row group; its
// position is the file, the row group and the row within it.
//
// Column types are those of a typed PostgreSQL table (pgsink.ColumnType):
// text is a UTF-8 string, bigint INT64, numeric DECIMAL(38, scale) in 16
// bytes, double precision DOUBLE, boolean BOOLEAN and timestamptz
// TIMESTAMP(MICROS, adjusted to UTC). Every column is optional.
package parquetio

import (
	"fmt"
	"reflect"
	"strconv"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/ckptdev/ckpt/sink/pgsink"
)

// DecimalPrecision is the precision of numeric columns: 38 digits, the
// most that 16 bytes hold, and what DuckDB, Spark and Arrow call
// DECIMAL(38, s).
const DecimalPrecision = 38

// Column is one column of an output file.
type Column struct {
	Name string
	Type pgsink.ColumnType
	// Scale is a numeric column's digits after the point (0 to 38).
	Scale int
}

func (c Column) node() parquet.Node {
	var n parquet.Node
	switch c.Type {
	case pgsink.BigInt:
		n = parquet.Encoded(parquet.Int(64), &parquet.DeltaBinaryPacked)
	case pgsink.Numeric:
		n = parquet.Decimal(c.Scale, DecimalPrecision, parquet.FixedLenByteArrayType(16))
	case pgsink.Double:
		n = parquet.Leaf(parquet.DoubleType)
	case pgsink.Boolean:
		n = parquet.Leaf(parquet.BooleanType)
	case pgsink.Timestamptz:
		n = parquet.Encoded(parquet.Timestamp(parquet.Microsecond), &parquet.DeltaBinaryPacked)
	default:
		n = parquet.Encoded(parquet.String(), &parquet.RLEDictionary)
	}
	return parquet.Optional(n)
}

// schemaOf returns the file schema of cols, in their order.
func schemaOf(cols []Column) (*parquet.Schema, error) {
	g := make(orderedGroup, len(cols))
	seen := make(map[string]bool, len(cols))
	for i, c := range cols {
		if c.Type == pgsink.Numeric && (c.Scale < 0 || c.Scale > DecimalPrecision) {
			return nil, fmt.Errorf("parquet: column %q: decimal scale %d is out of 0..%d", c.Name, c.Scale, DecimalPrecision)
		}
		if c.Name == "" || seen[c.Name] {
			return nil, fmt.Errorf("parquet: column %d: name %q is empty or repeated", i+1, c.Name)
		}
		seen[c.Name] = true
		g[i] = &orderedField{Node: c.node(), name: c.Name}
	}
	return parquet.NewSchema("schema", g), nil
}

// orderedGroup is a group node whose fields keep their order: parquet.Group
// sorts them by name, and a file's columns should be the input's, in its
// order.
type orderedGroup []*orderedField

type orderedField struct {
	parquet.Node
	name string
}

func (f *orderedField) Name() string                           { return f.name }
func (f *orderedField) Value(base reflect.Value) reflect.Value { return reflect.Value{} }

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) String() string              { return "group" }
func (g orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }

func (g orderedGroup) Fields() []parquet.Field {
	out := make([]parquet.Field, len(g))
	for i, f := range g {
		out[i] = f
	}
	return out
}

// GoType is a struct of one field per column. Rows are written as
// parquet.Row values, never from Go structs, so the names only need to
// be valid.
func (g orderedGroup) GoType() reflect.Type {
	fields := make([]reflect.StructField, len(g))
	for i, f := range g {
		fields[i] = reflect.StructField{Name: "C" + strconv.Itoa(i), Type: f.GoType()}
	}
	return reflect.StructOf(fields)
}

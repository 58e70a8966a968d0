package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ckptdev/ckpt/parquetio"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink/pgsink"
	"github.com/ckptdev/ckpt/source"
	"github.com/ckptdev/ckpt/stream"
)

// A Parquet output (.parquet, or --to parquet) ends a row group at every
// checkpoint and writes its footer when the input is exhausted (see
// package parquetio). Its columns are the input's, in its order, each
// optional:
//
//   - without types, every column is a UTF-8 string and every value its
//     text (an empty CSV field is an empty string; JSON null is null);
//   - with InferTypes or Schema, a column is INT64, DECIMAL(38, s), DOUBLE,
//     BOOLEAN, TIMESTAMP(MICROS, UTC) or a string, as a typed table's
//     would be, and an empty CSV field is null. A decimal column's scale
//     is the most digits after the point among the first InferSample
//     records. A value its column cannot hold is a bad record.

// Parquet is Apache Parquet (.parquet, .pq), see package parquetio. Its
// value stands apart from the formats above, so that a format added to
// them does not take it.
const Parquet Format = 16

// ParquetRowGroupRecords is the checkpoint spacing in records that a
// Parquet output is given by default (by the CLI): every checkpoint ends
// a row group, and Parquet readers work best with large ones.
const ParquetRowGroupRecords = 1_000_000

// ParquetRowGroupBytes is the checkpoint spacing in input bytes that a
// Parquet output is given by default, bounding the memory a row group of
// wide records takes while it is encoded.
const ParquetRowGroupBytes = 128 << 20

// toParquet converts CSV, TSV or JSON Lines into a Parquet file.
func toParquet(ctx context.Context, o Options) (pipeline.Result, error) {
	if o.From.IsCSV() {
		return csvToParquet(ctx, o)
	}
	return jsonlToParquet(ctx, o)
}

// parquetColumns makes the output's columns: names unique and non-empty
// (column_N for an empty one, name_2 for a repeated one), types as chosen
// (nil: all text), and decimal scales from scales.
func parquetColumns(names []string, types []pgsink.ColumnType, scales []int) []parquetio.Column {
	seen := make(map[string]bool, len(names))
	cols := make([]parquetio.Column, len(names))
	for i, n := range names {
		if n == "" {
			n = "column_" + strconv.Itoa(i+1)
		}
		name := n
		for k := 2; seen[name]; k++ {
			name = n + "_" + strconv.Itoa(k)
		}
		seen[name] = true
		cols[i].Name = name
		if types != nil {
			cols[i].Type = types[i]
		}
		if scales != nil {
			cols[i].Scale = scales[i]
		}
	}
	return cols
}

// recordScales makes the decimal columns' scales part of the job's
// parameters, as recordTypes does the types.
func recordScales(cfg *pipeline.Config, types []pgsink.ColumnType, scales []int) {
	var s []string
	for i, t := range types {
		if t == pgsink.Numeric {
			s = append(s, strconv.Itoa(scales[i]))
		} else {
			s = append(s, "")
		}
	}
	cfg.Params["scales"] = strings.Join(s, ",")
}

// scaleOf returns the digits after the point of the decimal number v.
func scaleOf(v []byte) int {
	s := string(v)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		// 1.25e1 has one digit after the point; 1e-3 three.
		exp, err := strconv.Atoi(s[i+1:])
		if err != nil {
			return 0
		}
		_, frac, _ := strings.Cut(s[:i], ".")
		return min(max(len(frac)-exp, 0), parquetio.DecimalPrecision)
	}
	_, frac, _ := strings.Cut(s, ".")
	return min(len(frac), parquetio.DecimalPrecision)
}

func hasNumeric(types []pgsink.ColumnType) bool {
	for _, t := range types {
		if t == pgsink.Numeric {
			return true
		}
	}
	return false
}

func csvToParquet(ctx context.Context, o Options) (pipeline.Result, error) {
	open := CSVInput(o.Input, o.csvOptions())
	src, err := open(ctx, nil)
	if err != nil {
		return pipeline.Result{}, err
	}
	header := src.(interface{ Header() []string }).Header()
	var types []pgsink.ColumnType
	if o.InferTypes {
		types, err = inferCSVTypes(src, len(header))
	}
	src.Close()
	if err != nil {
		return pipeline.Result{}, err
	}
	if types, err = applySchema(types, header, o.Schema); err != nil {
		return pipeline.Result{}, err
	}
	var scales []int
	if hasNumeric(types) {
		if scales, err = csvScales(ctx, open, types); err != nil {
			return pipeline.Result{}, err
		}
	}
	cfg := o.Pipeline
	recordTypes(&cfg, types)
	if scales != nil {
		recordScales(&cfg, types, scales)
	}
	out := parquetio.Output{Path: o.Output, Columns: parquetColumns(header, types, scales)}
	comma := o.From.Separator(o.Delimiter)
	var null []bool
	if types != nil {
		null = make([]bool, len(header))
	}
	return pipeline.Run(ctx, cfg, open, out,
		func(ctx context.Context, row *source.Row, _ *csvState, out *parquetio.Writer) error {
			if null != nil && len(row.Fields) == len(null) {
				// In typed columns an empty field is null.
				for i, f := range row.Fields {
					null[i] = len(f) == 0
				}
			}
			if err := out.WriteRow(row.Fields, null); err != nil {
				raw := appendCSVRecord(nil, row.Fields, comma)
				return badValue(row.File, row.Line, row.Offset, raw[:len(raw)-1], err)
			}
			return nil
		}, pipeline.AtEnd(finishParquet[csvState]))
}

// finishParquet writes the footer once the input is exhausted.
func finishParquet[S any](_ context.Context, _ *S, out *parquetio.Writer) error {
	return out.Finish()
}

// csvScales reads the sample that type inference reads, for the most
// digits after the point in each decimal column.
func csvScales(ctx context.Context, open pipeline.Opener[*source.Row], types []pgsink.ColumnType) ([]int, error) {
	src, err := open(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	scales := make([]int, len(types))
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
		for i, f := range row.Fields {
			if i < len(types) && types[i] == pgsink.Numeric && len(f) > 0 {
				scales[i] = max(scales[i], scaleOf(f))
			}
		}
	}
	return scales, nil
}

func jsonlToParquet(ctx context.Context, o Options) (pipeline.Result, error) {
	keys, err := firstObjectKeys(ctx, o.Input)
	if err != nil {
		return pipeline.Result{}, err
	}
	var types []pgsink.ColumnType
	if o.InferTypes {
		if types, err = inferJSONLTypes(ctx, o.Input, keys); err != nil {
			return pipeline.Result{}, err
		}
	}
	if types, err = applySchema(types, keys, o.Schema); err != nil {
		return pipeline.Result{}, err
	}
	var scales []int
	if hasNumeric(types) {
		if scales, err = jsonlScales(ctx, o.Input, keys, types); err != nil {
			return pipeline.Result{}, err
		}
	}
	cfg := o.Pipeline
	recordTypes(&cfg, types)
	if scales != nil {
		recordScales(&cfg, types, scales)
	}
	out := parquetio.Output{Path: o.Output, Columns: parquetColumns(keys, types, scales)}
	var row objectRow
	row.setColumns(keys)
	return pipeline.Run(ctx, cfg, LinesInput(o.Input, o.Until), out,
		func(ctx context.Context, line *source.Line, _ *csvState, out *parquetio.Writer) error {
			if ok, err := row.scan(line); !ok {
				return err // nil for a blank line, which holds no record
			}
			if err := row.fill(line); err != nil {
				return err
			}
			if err := out.WriteRow(row.vals, row.null); err != nil {
				return badValue(line.File, line.Line, line.Offset, line.Text, err)
			}
			return nil
		}, pipeline.AtEnd(finishParquet[csvState]))
}

func jsonlScales(ctx context.Context, input string, keys []string, types []pgsink.ColumnType) ([]int, error) {
	src, err := LinesInput(input, stream.Until{})(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	scales := make([]int, len(types))
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
		if ok, err := row.scan(line); !ok || err != nil || row.fill(line) != nil {
			continue
		}
		for i, v := range row.vals {
			if types[i] == pgsink.Numeric && !row.null[i] && len(v) > 0 {
				scales[i] = max(scales[i], scaleOf(v))
			}
		}
	}
	return scales, nil
}

// checkParquetOptions refuses what a Parquet input or output cannot take.
func (o *Options) checkParquetOptions() error {
	if o.From == Parquet && (o.InferTypes || len(o.Schema) > 0) {
		return errors.New("the input is Parquet, whose columns have types: --infer-types and a schema do not apply")
	}
	if o.From == Parquet && source.CompressionSuffix(o.Input) != "" {
		return fmt.Errorf("%s: a Parquet file is compressed inside: read it as it is (decompress it first)", o.Input)
	}
	return nil
}

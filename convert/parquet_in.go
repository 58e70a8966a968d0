package convert

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ckptdev/ckpt/internal/records"
	"github.com/ckptdev/ckpt/parquetio"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/sink/pgsink"
	"github.com/ckptdev/ckpt/source"
)

// A Parquet input (.parquet, or --from parquet; a directory's .parquet
// files, or a glob) is read row group by row group, and resumes at the
// row of the row group its checkpoint recorded. Its columns must be flat
// (no groups, lists or maps). Values are written as text: integers and
// decimals exactly, floats in the shortest form that reads back the same,
// timestamps in RFC 3339 (with Z when they are UTC instants), dates as
// 2006-01-02, binary that is not UTF-8 as \x and hex digits; null as an
// empty CSV field or JSON null. Into JSON Lines, numbers and booleans are
// JSON numbers and booleans.

// ParquetInput opens Parquet files (a file, a directory's .parquet files,
// or a glob pattern).
func ParquetInput(paths ...string) pipeline.Opener[*parquetio.Row] {
	return func(_ context.Context, pos json.RawMessage) (pipeline.Source[*parquetio.Row], error) {
		var files []string
		for _, p := range paths {
			f, err := source.Expand(p, ".parquet", ".pq")
			if err != nil {
				return nil, err
			}
			files = append(files, f...)
		}
		return parquetio.OpenSource(files, pos)
	}
}

// fromParquet converts Parquet into CSV, TSV or JSON Lines.
func fromParquet(ctx context.Context, o Options) (pipeline.Result, error) {
	if o.To.IsCSV() {
		comma := o.To.Separator(o.OutDelimiter)
		return pipeline.Run(ctx, o.Pipeline, ParquetInput(o.Input), pipeline.File(o.Output),
			func(ctx context.Context, row *parquetio.Row, st *csvToCSVState, out *sink.File) error {
				b := out.Buffered()
				if !st.Header {
					st.Header = true
					b = appendCSVRecord(b, stringsAsBytes(row.Header), comma)
				}
				return out.Commit(appendCSVRecord(b, row.Fields, comma))
			}, pipeline.AtEnd(func(ctx context.Context, st *csvToCSVState, out *sink.File) error {
				// A file of no rows still has its columns: the header.
				if st.Header {
					return nil
				}
				st.Header = true
				src, err := ParquetInput(o.Input)(ctx, nil)
				if err != nil {
					return err
				}
				header := src.(*parquetio.Source).Header()
				src.Close()
				return out.Commit(appendCSVRecord(out.Buffered(), stringsAsBytes(header), comma))
			}))
	}
	var prefixes [][]byte
	return pipeline.Run(ctx, o.Pipeline, ParquetInput(o.Input), pipeline.File(o.Output),
		func(ctx context.Context, row *parquetio.Row, _ *csvState, out *sink.File) error {
			if prefixes == nil {
				prefixes = jsonKeyPrefixes(row.Header)
			}
			b := out.Buffered()
			var err error
			for i, f := range row.Fields {
				b = append(b, prefixes[i]...)
				switch kind := row.Columns[i].Kind; {
				case row.Null[i]:
					b = append(b, "null"...)
				case kind == parquetio.KindBool, kind == parquetio.KindNumber && parquetio.IsFinite(f):
					b = append(b, f...)
				default:
					if b, err = records.AppendString(b, f); err != nil {
						return &source.RecordError{File: row.File, Line: row.Row + 1, Err: fmt.Errorf("row group %d, row %d, column %s: %w", row.RowGroup, row.Row, row.Header[i], err)}
					}
				}
			}
			if len(row.Fields) == 0 {
				b = append(b, '{')
			}
			b = append(b, "}\n"...)
			return out.Commit(b)
		})
}

// parquetToTable loads Parquet into a table whose columns have the
// Parquet columns' types.
func parquetToTable(ctx context.Context, o Options, cfg pipeline.Config, sc pgsink.Config) (pipeline.Result, error) {
	src, err := ParquetInput(o.Input)(ctx, nil)
	if err != nil {
		return pipeline.Result{}, err
	}
	cols := src.(*parquetio.Source).Columns()
	src.Close()
	names := make([]string, len(cols))
	sc.Types = make([]pgsink.ColumnType, len(cols))
	for i, c := range cols {
		names[i], sc.Types[i] = c.Name, c.Type
	}
	sc.Columns = tableColumns(names, sc.RowColumn)
	recordTypes(&cfg, sc.Types)
	return pipeline.Run(ctx, cfg, ParquetInput(o.Input), pgsink.Output(sc),
		func(ctx context.Context, row *parquetio.Row, _ *csvState, out *pgsink.Sink) error {
			if err := out.WriteRow(row.Fields, row.Null); err != nil {
				return badValue(row.File, row.Row+1, 0, nil, err)
			}
			return nil
		})
}

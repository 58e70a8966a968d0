// Package convert is the library behind `ckpt convert`: resumable,
// exactly-once conversion of CSV to JSON Lines and JSON Lines to CSV, and
// loading of either into a PostgreSQL table (see postgres.go).
package convert

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ckptdev/ckpt/internal/records"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink/pgsink"
	"github.com/ckptdev/ckpt/source"
	"github.com/ckptdev/ckpt/stream"
)

// Format is a record file format.
type Format int

// The formats.
const (
	Auto  Format = iota // from the file extension
	CSV                 // RFC 4180 CSV with a header line
	JSONL               // JSON Lines, one object per line
	TSV                 // CSV separated by tabs (.tsv, .tab)
)

// String returns the format's name.
func (f Format) String() string {
	switch f {
	case CSV:
		return "csv"
	case JSONL:
		return "jsonl"
	case TSV:
		return "tsv"
	case Parquet:
		return "parquet"
	}
	return "auto"
}

// IsCSV reports whether f is CSV with a separator: CSV or TSV.
func (f Format) IsCSV() bool { return f == CSV || f == TSV }

// Separator returns the field separator of a CSV-like format: d if set,
// else the format's own.
func (f Format) Separator(d byte) byte {
	switch {
	case d != 0:
		return d
	case f == TSV:
		return '\t'
	}
	return ','
}

// ParseFormat reads a format name: csv, tsv, jsonl (or ndjson).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "csv":
		return CSV, nil
	case "tsv", "tab":
		return TSV, nil
	case "jsonl", "ndjson", "jsonlines":
		return JSONL, nil
	case "", "auto":
		return Auto, nil
	case "parquet", "pq":
		return Parquet, nil
	}
	return 0, fmt.Errorf("unknown format %q (use csv, tsv, jsonl or parquet)", s)
}

// InputFormatOf is FormatOf for an input, which may be compressed: the
// extension before .gz, .zst or .zstd decides.
func InputFormatOf(path string) (Format, error) {
	path = objectName(path)
	if s := source.CompressionSuffix(path); s != "" {
		f, err := FormatOf(path[:len(path)-len(s)])
		if err != nil {
			return 0, fmt.Errorf("%w (%s is compressed: the name before %s tells its format)", err, path, s)
		}
		if f == Parquet {
			return 0, fmt.Errorf("%q: a Parquet file compresses its own columns: ckpt reads and writes it without %s", path, s)
		}
		return f, nil
	}
	return FormatOf(path)
}

// FormatOf guesses a file's format from its extension (.csv; .tsv, .tab;
// .jsonl, .ndjson). For a directory or a glob, the extension of the
// pattern decides. A name compressed with gzip or zstd (out.csv.gz,
// out.jsonl.zst) is told by the extension before: outputs so named are
// written compressed (see sink.Compression).
func FormatOf(path string) (Format, error) {
	path = objectName(path)
	if s := source.CompressionSuffix(path); s != "" {
		return InputFormatOf(path)
	}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".csv":
		return CSV, nil
	case ".tsv", ".tab":
		return TSV, nil
	case ".jsonl", ".ndjson":
		return JSONL, nil
	case ".parquet", ".pq":
		return Parquet, nil
	case ".bz2", ".xz", ".zip", ".lz4", ".br":
		return 0, fmt.Errorf("%q names a compressed file (%s): ckpt reads and writes plain, gzip (.gz) and zstd (.zst) files only (recompress it, or decompress it first)", path, ext)
	}
	return 0, fmt.Errorf("cannot tell the format of %q from its extension (.csv, .tsv, .jsonl, .ndjson, .parquet): name it with --from/--to", path)
}

// Options configure a conversion.
type Options struct {
	Input  string // a file, a directory or a glob pattern
	Output string // the output file
	From   Format // Auto: from Input's extension
	To     Format // Auto: from Output's extension
	// InferTypes makes CSV to JSON write numbers, booleans and null (for
	// empty fields) as JSON types; otherwise every value is a string.
	InferTypes bool
	// Delimiter is the field separator of CSV or TSV input, and
	// OutDelimiter of CSV or TSV output; 0 is the format's own (a comma,
	// or a tab for TSV).
	Delimiter, OutDelimiter byte
	// Columns names the columns of CSV or TSV input that has no header
	// line: every line is a record. A CSV output gets a header line
	// from these names.
	Columns []string
	// Schema gives a table output's column types by input column name
	// (see ParseSchema); a column it does not name is text, or inferred
	// with InferTypes.
	Schema map[string]pgsink.ColumnType
	// Until bounds a run over a stream (see stream.ParseUntil); the zero
	// value reads until stopped.
	Until stream.Until
	// WithMeta makes a stream into JSON Lines write every message as
	// {"subject","seq","time","headers","data"}, data its JSON payload.
	WithMeta bool
	// Pipeline names the job and sets store, triggers, bad-record policy
	// and progress.
	Pipeline pipeline.Config
}

// Resolve fills in the formats from the file names.
func (o *Options) Resolve() error {
	if IsS3(o.Output) && IsStream(o.Input) {
		return errors.New("an S3 output is written from CSV, TSV or JSON Lines files or objects, not from a stream")
	}
	if IsStream(o.Input) {
		return o.resolveStream()
	}
	if IsStream(o.Output) {
		return errors.New("the output is a stream: the input must be a stream too (nats://HOST:PORT/STREAM)")
	}
	if o.WithMeta || !o.Until.IsZero() {
		return errors.New("--with-meta and --until apply to a stream input only")
	}
	if IsPostgres(o.Output) {
		return o.resolvePostgres()
	}
	var err error
	if o.From == Auto {
		if fi, serr := statDir(o.Input); serr == nil && fi {
			return errors.New("the input is a directory: name its format with --from")
		}
		if o.From, err = InputFormatOf(o.Input); err != nil {
			return fmt.Errorf("input: %w", err)
		}
	}
	if o.To == Auto {
		if o.To, err = FormatOf(o.Output); err != nil {
			return fmt.Errorf("output: %w", err)
		}
	}
	if IsS3(o.Input) && o.From == Parquet || IsS3(o.Output) && (o.From == Parquet || o.To == Parquet) {
		return errors.New("a Parquet file is read and written as a local file only (CSV or JSON Lines objects on S3 may be converted into one): copy the object to or from S3 around the conversion")
	}
	if IsS3(o.Output) {
		if ext := source.CompressionSuffix(objectName(o.Output)); ext != "" {
			return fmt.Errorf("output %s: S3 objects are written uncompressed: name the object without %s, or write a local %s file", objectName(o.Output), ext, ext)
		}
	}
	if err := o.checkCSVOptions(); err != nil {
		return err
	}
	if err := o.checkParquetOptions(); err != nil {
		return err
	}
	if len(o.Schema) > 0 && o.To != Parquet {
		return errors.New("column types (a schema) apply to a PostgreSQL table or Parquet output only")
	}
	if o.To.IsCSV() && o.OutDelimiter != 0 {
		if err := CheckSeparator("output", o.OutDelimiter); err != nil {
			return err
		}
	} else if o.OutDelimiter != 0 {
		return fmt.Errorf("the output is %s: an output delimiter applies to CSV and TSV output only", o.To)
	}
	switch {
	case o.From.IsCSV() && o.To.IsCSV():
		if o.From.Separator(o.Delimiter) == o.To.Separator(o.OutDelimiter) && len(o.Columns) == 0 {
			return fmt.Errorf("input and output are both %s separated by %q: nothing to convert", o.From, o.From.Separator(o.Delimiter))
		}
	case o.From == o.To:
		return fmt.Errorf("input and output are both %s: nothing to convert", o.From)
	}
	return nil
}

// checkCSVOptions refuses a delimiter or column names for input that is
// not CSV, and a separator no CSV reader could use.
func (o *Options) checkCSVOptions() error {
	if !o.From.IsCSV() {
		if o.Delimiter != 0 || len(o.Columns) > 0 {
			return fmt.Errorf("the input is %s: a delimiter and column names apply to CSV and TSV input only", o.From)
		}
		return nil
	}
	if o.Delimiter != 0 {
		if err := CheckSeparator("input", o.Delimiter); err != nil {
			return err
		}
	}
	for i, c := range o.Columns {
		if c == "" {
			return fmt.Errorf("column %d has an empty name: name every column of the input", i+1)
		}
	}
	return nil
}

// CheckSeparator refuses a field separator that CSV cannot use; side
// ("input", "output") names it in the message.
func CheckSeparator(side string, d byte) error {
	if d == '"' || d == '\n' || d == '\r' || d >= 0x80 {
		return fmt.Errorf("%s delimiter %q: use one ASCII character other than a quote or a line end, such as ';', '|' or a tab", side, d)
	}
	return nil
}

// csvOptions are the source options of CSV or TSV input.
func (o *Options) csvOptions() source.CSVOptions {
	return source.CSVOptions{Comma: o.From.Separator(o.Delimiter), Columns: o.Columns}
}

// params are what a resume must find unchanged: the formats, the type
// inference, and the separators and column names where they are not the
// defaults (so that jobs that never set them keep their parameters).
func (o *Options) params() map[string]string {
	p := map[string]string{"from": o.From.String(), "to": o.To.String(), "infer_types": strconv.FormatBool(o.InferTypes)}
	if o.Delimiter != 0 {
		p["delimiter"] = string(o.Delimiter)
	}
	if o.OutDelimiter != 0 {
		p["out_delimiter"] = string(o.OutDelimiter)
	}
	if len(o.Columns) > 0 {
		p["columns"] = strings.Join(o.Columns, ",")
	}
	return p
}

// Run converts Input to Output as the job o.Pipeline.Job. The formats
// and InferTypes are the job's pipeline.Params: a resume with others is
// refused, as it would mix two kinds of output in one file.
func Run(ctx context.Context, o Options) (pipeline.Result, error) {
	if IsStream(o.Input) {
		return fromStream(ctx, o)
	}
	if IsPostgres(o.Output) {
		return toPostgres(ctx, o)
	}
	if err := o.Resolve(); err != nil {
		return pipeline.Result{}, err
	}
	o.Pipeline.Params = o.params()
	if IsS3(o.Output) {
		return runToS3(ctx, o)
	}
	switch {
	case o.From == Parquet:
		return fromParquet(ctx, o)
	case o.To == Parquet:
		return toParquet(ctx, o)
	case o.From.IsCSV() && o.To.IsCSV():
		return csvToCSV(ctx, o, pipeline.File(o.Output))
	case o.From.IsCSV():
		return csvToJSONL(ctx, o, pipeline.File(o.Output))
	}
	return jsonlToCSV(ctx, o, pipeline.File(o.Output))
}

// csvState is empty: conversion keeps no state besides the positions.
type csvState struct{}

func csvToJSONL[W recordOutput](ctx context.Context, o Options, output pipeline.SinkOpener[W]) (pipeline.Result, error) {
	var prefixes [][]byte // `{"name":` and `,"name":` per column
	infer := o.InferTypes
	return pipeline.Run(ctx, o.Pipeline, CSVInput(o.Input, o.csvOptions()), output,
		func(ctx context.Context, row *source.Row, _ *csvState, out W) error {
			if prefixes == nil {
				prefixes = jsonKeyPrefixes(row.Header)
			}
			b := out.Buffered()
			var err error
			for i, f := range row.Fields {
				b = append(b, prefixes[i]...)
				if infer {
					b, err = records.AppendInferred(b, f)
				} else {
					b, err = records.AppendString(b, f)
				}
				if err != nil {
					return &source.RecordError{File: row.File, Line: row.Line, Offset: row.Offset,
						Raw: slices.Clone(row.Raw), Err: fmt.Errorf("field %d: %w", i+1, err)}
				}
			}
			if len(row.Fields) == 0 {
				b = append(b, '{')
			}
			b = append(b, "}\n"...)
			return out.Commit(b)
		})
}

// jsonKeyPrefixes returns `{"k1":`, `,"k2":`, ... for the CSV header,
// making duplicate names unique (a, a_2, a_3) and naming empty ones by
// their column number, so every row is a valid JSON object.
func jsonKeyPrefixes(header []string) [][]byte {
	seen := make(map[string]int, len(header))
	out := make([][]byte, len(header))
	for i, h := range header {
		name := h
		if name == "" {
			name = strconv.Itoa(i + 1)
		}
		if n := seen[name]; n > 0 {
			for {
				n++
				cand := name + "_" + strconv.Itoa(n)
				if seen[cand] == 0 {
					seen[name] = n
					name = cand
					break
				}
			}
		}
		seen[name]++
		sep := byte(',')
		if i == 0 {
			sep = '{'
		}
		b := []byte{sep}
		// The source refuses a header that is not UTF-8, so the key is
		// valid JSON.
		b, _ = records.AppendString(b, []byte(name))
		out[i] = append(b, ':')
	}
	return out
}

// jsonlState holds the CSV header, fixed by the first object.
type jsonlState struct {
	Header []string `json:"header,omitempty"`
}

// csvToCSVState records whether the output's header line was written.
type csvToCSVState struct {
	Header bool `json:"header,omitempty"`
}

// csvToCSV rewrites CSV with another separator, or gives header-less
// input its header line.
func csvToCSV[W recordOutput](ctx context.Context, o Options, output pipeline.SinkOpener[W]) (pipeline.Result, error) {
	comma := o.To.Separator(o.OutDelimiter)
	return pipeline.Run(ctx, o.Pipeline, CSVInput(o.Input, o.csvOptions()), output,
		func(ctx context.Context, row *source.Row, st *csvToCSVState, out W) error {
			b := out.Buffered()
			if !st.Header {
				st.Header = true
				b = appendCSVRecord(b, stringsAsBytes(row.Header), comma)
			}
			return out.Commit(appendCSVRecord(b, row.Fields, comma))
		})
}

// appendCSVRecord appends one CSV record and its line end. A lone empty
// field is quoted: a blank line is no record to CSV readers.
func appendCSVRecord(b []byte, fields [][]byte, comma byte) []byte {
	for i, f := range fields {
		if i > 0 {
			b = append(b, comma)
		}
		b = records.AppendCSVField(b, f, comma)
	}
	if len(fields) == 1 && len(fields[0]) == 0 {
		b = append(b, `""`...)
	}
	return append(b, '\n')
}

func stringsAsBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func jsonlToCSV[W recordOutput](ctx context.Context, o Options, output pipeline.SinkOpener[W]) (pipeline.Result, error) {
	comma := o.To.Separator(o.OutDelimiter)
	var row objectRow
	return pipeline.Run(ctx, o.Pipeline, LinesInput(o.Input, o.Until), output,
		func(ctx context.Context, line *source.Line, st *jsonlState, out W) error {
			if ok, err := row.scan(line); !ok {
				return err // nil for a blank line, which holds no record
			}
			b := out.Buffered()
			if st.Header == nil {
				// The first object fixes the columns, in its key order.
				if len(row.obj.Keys) == 0 {
					return lineError(line, 0, errors.New("the first record fixes the CSV columns and has no keys"))
				}
				st.Header = make([]string, 0, len(row.obj.Keys))
				for _, k := range row.obj.Keys {
					st.Header = append(st.Header, string(k))
				}
				b = appendCSVRecord(b, stringsAsBytes(st.Header), comma)
			}
			if row.cols == nil {
				row.setColumns(st.Header) // also after a resume, from the state
			}
			if err := row.fill(line); err != nil {
				return err
			}
			return out.Commit(appendCSVRecord(b, row.vals, comma))
		})
}

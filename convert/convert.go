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
	"github.com/ckptdev/ckpt/sink"
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
)

// String returns the format's name.
func (f Format) String() string {
	switch f {
	case CSV:
		return "csv"
	case JSONL:
		return "jsonl"
	}
	return "auto"
}

// ParseFormat reads a format name: csv, jsonl (or ndjson).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "csv":
		return CSV, nil
	case "jsonl", "ndjson", "jsonlines":
		return JSONL, nil
	case "", "auto":
		return Auto, nil
	}
	return 0, fmt.Errorf("unknown format %q (use csv or jsonl)", s)
}

// FormatOf guesses a file's format from its extension (.csv; .jsonl,
// .ndjson). For a directory or a glob, the extension of the pattern
// decides. Compressed files are refused: ckpt reads and writes plain text.
func FormatOf(path string) (Format, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".csv":
		return CSV, nil
	case ".jsonl", ".ndjson":
		return JSONL, nil
	case ".gz", ".zst", ".bz2", ".xz", ".zip":
		return 0, fmt.Errorf("%q names a compressed file (%s): ckpt reads and writes plain CSV and JSON Lines only (decompress an input first)", path, ext)
	}
	return 0, fmt.Errorf("cannot tell the format of %q from its extension (.csv, .jsonl, .ndjson): name it with --from/--to", path)
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
		if o.From, err = FormatOf(o.Input); err != nil {
			return fmt.Errorf("input: %w", err)
		}
	}
	if o.To == Auto {
		if o.To, err = FormatOf(o.Output); err != nil {
			return fmt.Errorf("output: %w", err)
		}
	}
	if o.From == o.To {
		return fmt.Errorf("input and output are both %s: nothing to convert", o.From)
	}
	return nil
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
	o.Pipeline.Params = map[string]string{"from": o.From.String(), "to": o.To.String(), "infer_types": strconv.FormatBool(o.InferTypes)}
	if o.From == CSV {
		return csvToJSONL(ctx, o)
	}
	return jsonlToCSV(ctx, o)
}

// csvState is empty: conversion keeps no state besides the positions.
type csvState struct{}

func csvToJSONL(ctx context.Context, o Options) (pipeline.Result, error) {
	var prefixes [][]byte // `{"name":` and `,"name":` per column
	infer := o.InferTypes
	return pipeline.Run(ctx, o.Pipeline, pipeline.CSV(o.Input), pipeline.File(o.Output),
		func(ctx context.Context, row *source.Row, _ *csvState, out *sink.File) error {
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

func jsonlToCSV(ctx context.Context, o Options) (pipeline.Result, error) {
	var row objectRow
	return pipeline.Run(ctx, o.Pipeline, LinesInput(o.Input, o.Until), pipeline.File(o.Output),
		func(ctx context.Context, line *source.Line, st *jsonlState, out *sink.File) error {
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
				for i, h := range st.Header {
					if i > 0 {
						b = append(b, ',')
					}
					b = records.AppendCSVField(b, []byte(h), ',')
				}
				if len(st.Header) == 1 && st.Header[0] == "" {
					b = append(b, `""`...)
				}
				b = append(b, '\n')
			}
			if row.cols == nil {
				row.setColumns(st.Header) // also after a resume, from the state
			}
			if err := row.fill(line); err != nil {
				return err
			}
			for c, v := range row.vals {
				if c > 0 {
					b = append(b, ',')
				}
				b = records.AppendCSVField(b, v, ',')
			}
			if len(row.vals) == 1 && len(row.vals[0]) == 0 {
				// A lone empty field would make a blank line, which CSV
				// readers skip: quote it so the record survives.
				b = append(b, `""`...)
			}
			b = append(b, '\n')
			return out.Commit(b)
		})
}

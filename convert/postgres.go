package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/records"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink/pgsink"
	"github.com/ckptdev/ckpt/source"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/pgstore"
	"github.com/ckptdev/ckpt/stream"
)

// A PostgreSQL output, postgres://user@host/db?table=NAME (or
// table=SCHEMA.NAME), is a table loaded exactly once: its rows and each
// checkpoint commit in one transaction. The table is created if missing,
// with a bigint column ckpt_row (each row's 1-based place in the input's
// order) and a text column per input column:
//
//   - CSV: the header's names, exactly (an empty name becomes column_N, a
//     repeated one name_2, name_3, ...; names are cut to PostgreSQL's 63
//     bytes). Every value is stored as its text, an empty field as ''.
//   - JSON Lines: the first object's keys, in its order. Strings are
//     stored unescaped, numbers and booleans as written, nested objects
//     and arrays as compact JSON text, null and missing keys as NULL. A key
//     that is not a column makes the record bad, as does a value that
//     PostgreSQL text cannot hold (a NUL character).
//
// A job that starts from the beginning empties the table in its first
// checkpoint's transaction: the table belongs to the job.

// IsPostgres reports whether output is a postgres:// (or postgresql://)
// address: a table rather than a file.
func IsPostgres(output string) bool {
	scheme, _, ok := strings.Cut(output, "://")
	return ok && (strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql"))
}

// PostgresTarget reads a table output's address: the table, the default
// store (the same database: the address without its table parameter),
// and the address with its password hidden, for messages.
func PostgresTarget(output string) (table, storeURL, display string, err error) {
	cfg, err := pgstore.ParseURL(output)
	if err != nil {
		return "", "", "", err
	}
	if err := pgsink.CutQuery(output); err != nil {
		return "", "", "", err
	}
	if _, _, err := pgsink.SplitTable(cfg.Params.Table); err != nil {
		return "", "", "", err
	}
	u, err := url.Parse(output)
	if err != nil {
		return "", "", "", fmt.Errorf("%w: %s", store.ErrBadURL, cfg.Redacted)
	}
	q := u.Query()
	q.Del("table")
	u.RawQuery = q.Encode()
	return cfg.Params.Table, u.String(), cfg.Redacted, nil
}

// resolvePostgres is Resolve for a table output: the input's format.
func (o *Options) resolvePostgres() error {
	if o.To != Auto {
		return errors.New("the output is a PostgreSQL table: --to does not apply")
	}
	if o.OutDelimiter != 0 {
		return errors.New("the output is a PostgreSQL table: an output delimiter does not apply")
	}
	if _, _, _, err := PostgresTarget(o.Output); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	if IsStream(o.Input) {
		return nil
	}
	if o.From == Auto {
		if fi, serr := statDir(o.Input); serr == nil && fi {
			return errors.New("the input is a directory: name its format with --from")
		}
		var err error
		if o.From, err = InputFormatOf(o.Input); err != nil {
			return fmt.Errorf("input: %w", err)
		}
	}
	if err := o.checkParquetOptions(); err != nil {
		return err
	}
	return o.checkCSVOptions()
}

// toPostgres loads Input into the table of Output.
func toPostgres(ctx context.Context, o Options) (pipeline.Result, error) {
	if err := o.resolvePostgres(); err != nil {
		return pipeline.Result{}, err
	}
	_, storeURL, _, err := PostgresTarget(o.Output)
	if err != nil {
		return pipeline.Result{}, err
	}
	cfg := o.Pipeline
	if o.Delimiter != 0 || len(o.Columns) > 0 || o.InferTypes || len(o.Schema) > 0 {
		// A resume must read the input as the first run did.
		cfg.Params = o.params()
		delete(cfg.Params, "to")
	}
	if cfg.Backend == nil {
		if cfg.Store == "" {
			cfg.Store = storeURL
		}
		st, err := ckpt.OpenStore(ctx, cfg.Store, cfg.Logger)
		if err != nil {
			return pipeline.Result{}, err
		}
		defer st.Close()
		cfg.Backend = st
	}
	pst, ok := cfg.Backend.(*pgstore.Store)
	if !ok {
		return pipeline.Result{}, fmt.Errorf("convert: the job's store is a %T: a PostgreSQL table commits each checkpoint in the transaction of its rows, so the store must be PostgreSQL, in the same database (a postgres:// store URL)", cfg.Backend)
	}
	sc := pgsink.Config{URL: o.Output, RowColumn: pgsink.DefaultRowColumn, Store: pst, Logger: cfg.Logger}
	if o.From.IsCSV() {
		return csvToTable(ctx, o, cfg, sc)
	}
	if o.From == Parquet {
		return parquetToTable(ctx, o, cfg, sc)
	}
	return jsonlToTable(ctx, o, cfg, sc)
}

func csvToTable(ctx context.Context, o Options, cfg pipeline.Config, sc pgsink.Config) (pipeline.Result, error) {
	src, err := CSVInput(o.Input, o.csvOptions())(ctx, nil)
	if err != nil {
		return pipeline.Result{}, err
	}
	header := src.(interface{ Header() []string }).Header()
	if o.InferTypes {
		sc.Types, err = inferCSVTypes(src, len(header))
	}
	src.Close()
	if err != nil {
		return pipeline.Result{}, err
	}
	if sc.Types, err = applySchema(sc.Types, header, o.Schema); err != nil {
		return pipeline.Result{}, err
	}
	sc.Columns = tableColumns(header, sc.RowColumn)
	recordTypes(&cfg, sc.Types)
	comma := o.From.Separator(o.Delimiter)
	var null []bool
	if sc.Types != nil {
		null = make([]bool, len(header))
	}
	return pipeline.Run(ctx, cfg, CSVInput(o.Input, o.csvOptions()), pgsink.Output(sc),
		func(ctx context.Context, row *source.Row, _ *csvState, out *pgsink.Sink) error {
			if null != nil && len(row.Fields) == len(null) {
				// In typed columns an empty field is NULL, as in JSON
				// with --infer-types.
				for i, f := range row.Fields {
					null[i] = len(f) == 0
				}
			}
			if err := out.WriteRow(row.Fields, null); err != nil {
				// The record as CSV again, for a dead-letter file.
				raw := appendCSVRecord(nil, row.Fields, comma)
				raw = raw[:len(raw)-1] // without its line end
				return badValue(row.File, row.Line, row.Offset, raw, err)
			}
			return nil
		})
}

func badValue(file string, line, offset int64, raw []byte, err error) error {
	var ie *pgsink.InvalidValueError
	if errors.As(err, &ie) {
		return &source.RecordError{File: file, Line: line, Offset: offset, Raw: raw, Err: err}
	}
	return err
}

// tableColumns names the table's columns after the input's: each name
// valid UTF-8, non-empty, at most 63 bytes, and unique (reserved, the row
// column, included).
func tableColumns(names []string, reserved string) []string {
	seen := map[string]bool{reserved: true}
	out := make([]string, len(names))
	for i, n := range names {
		n = strings.ToValidUTF8(strings.ReplaceAll(n, "\x00", ""), "\uFFFD")
		if n == "" {
			n = "column_" + strconv.Itoa(i+1)
		}
		name := cut(n, 63)
		for k := 2; seen[name]; k++ {
			suffix := "_" + strconv.Itoa(k)
			name = cut(n, 63-len(suffix)) + suffix
		}
		seen[name] = true
		out[i] = name
	}
	return out
}

// cut shortens s to at most n bytes without splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// firstObjectKeys returns the keys of the first JSON object of the input:
// the table's columns.
func firstObjectKeys(ctx context.Context, input string) ([]string, error) {
	src, err := LinesInput(input, stream.Until{})(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	for {
		line, err := src.Next()
		if errors.Is(err, stream.ErrIdle) {
			// A stream with no message yet: wait for the first.
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		if err == io.EOF {
			return nil, fmt.Errorf("%s holds no JSON object to take the columns from", input)
		}
		if err != nil {
			return nil, err
		}
		if len(strings.TrimSpace(string(line.Text))) == 0 {
			continue
		}
		var obj records.Object
		if err := obj.Scan(line.Text); err != nil {
			return nil, fmt.Errorf("%s:%d: the first record names the columns and is not a JSON object: %w", line.File, line.Line, err)
		}
		if len(obj.Keys) == 0 {
			return nil, fmt.Errorf("%s:%d: the first record names the columns and has no keys", line.File, line.Line)
		}
		keys := make([]string, len(obj.Keys))
		for i, k := range obj.Keys {
			keys[i] = string(k)
		}
		return keys, nil
	}
}

func jsonlToTable(ctx context.Context, o Options, cfg pipeline.Config, sc pgsink.Config) (pipeline.Result, error) {
	keys, err := firstObjectKeys(ctx, o.Input)
	if err != nil {
		return pipeline.Result{}, err
	}
	sc.Columns = tableColumns(keys, sc.RowColumn)
	if o.InferTypes {
		if sc.Types, err = inferJSONLTypes(ctx, o.Input, keys); err != nil {
			return pipeline.Result{}, err
		}
	}
	if sc.Types, err = applySchema(sc.Types, keys, o.Schema); err != nil {
		return pipeline.Result{}, err
	}
	recordTypes(&cfg, sc.Types)
	var row objectRow
	row.setColumns(keys)
	return pipeline.Run(ctx, cfg, LinesInput(o.Input, o.Until), pgsink.Output(sc),
		func(ctx context.Context, line *source.Line, _ *csvState, out *pgsink.Sink) error {
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
		})
}

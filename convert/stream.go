package convert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ckptdev/ckpt/internal/records"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/s3io"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/source"
	"github.com/ckptdev/ckpt/stream"
	"github.com/ckptdev/ckpt/stream/natsstream"
)

// A JetStream input, nats://HOST:PORT/STREAM?subject=FILTER, is read from
// the stream sequence of the job's checkpoint, each message one record
// whose payload is read as a line of JSON Lines: into JSON Lines it is
// copied (compacted onto one line, or with WithMeta inside an envelope
// holding its subject, sequence, time and headers), into CSV or a table
// its keys are columns, as for a JSON Lines file. Into another stream,
// nats://HOST:PORT/STREAM?subject=S (or ?prefix=P, to keep each message's
// subject behind P), every message is published once with its headers.

// IsStream reports whether an input or output is a stream's address.
func IsStream(s string) bool { return natsstream.IsAddress(s) }

// LinesInput opens input as lines: a stream's messages (bounded by
// until) or the lines of JSON Lines files.
func LinesInput(input string, until stream.Until) pipeline.Opener[*source.Line] {
	if IsStream(input) {
		return natsstream.Lines(natsstream.SourceConfig{URL: input, Until: until})
	}
	if IsS3(input) {
		return s3io.Lines(input, nil)
	}
	return pipeline.Lines(input)
}

// streamParams are the Params of a job reading a stream: the stream and
// the filter (the server's address may change between runs).
func streamParams(o *Options) (map[string]string, error) {
	a, err := natsstream.ParseAddress(o.Input)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	filter := slices.Clone(a.Subjects)
	slices.Sort(filter)
	return map[string]string{"from": "stream", "stream": a.Stream, "filter": strings.Join(filter, " "), "to": o.To.String(), "with_meta": strconv.FormatBool(o.WithMeta)}, nil
}

// resolveStream is Resolve for a stream input.
func (o *Options) resolveStream() error {
	if o.From != Auto && o.From != JSONL {
		return errors.New("the input is a stream: its messages are JSON (--from does not apply)")
	}
	o.From = JSONL
	if _, err := natsstream.ParseAddress(o.Input); err != nil {
		return fmt.Errorf("input: %w", err)
	}
	if o.InferTypes {
		return errors.New("the input is a stream of JSON messages: --infer-types does not apply")
	}
	if err := o.checkCSVOptions(); err != nil {
		return err
	}
	switch {
	case IsPostgres(o.Output):
		if o.To != Auto {
			return errors.New("the output is a PostgreSQL table: --to does not apply")
		}
		if o.WithMeta {
			return errors.New("--with-meta applies to a JSON Lines output only")
		}
	case IsStream(o.Output):
		if _, err := natsstream.ParseAddress(o.Output); err != nil {
			return fmt.Errorf("output: %w", err)
		}
		if o.WithMeta {
			return errors.New("--with-meta applies to a JSON Lines output only (a stream keeps the subject and headers)")
		}
	default:
		if o.To == Auto {
			var err error
			if o.To, err = FormatOf(o.Output); err != nil {
				return fmt.Errorf("output: %w", err)
			}
		}
		if o.To == Parquet {
			return errors.New("the input is a stream: ckpt writes its messages to JSON Lines, CSV, a table or a stream, not Parquet (convert a JSON Lines output to Parquet once it is complete)")
		}
		if o.WithMeta && o.To != JSONL {
			return errors.New("--with-meta applies to a JSON Lines output only")
		}
		if o.OutDelimiter != 0 {
			if !o.To.IsCSV() {
				return fmt.Errorf("the output is %s: an output delimiter applies to CSV and TSV output only", o.To)
			}
			if err := CheckSeparator("output", o.OutDelimiter); err != nil {
				return err
			}
		}
	}
	if len(o.Schema) > 0 && !IsPostgres(o.Output) {
		return errors.New("column types (a schema) apply to a PostgreSQL table output only")
	}
	return nil
}

// fromStream converts a stream into Output.
func fromStream(ctx context.Context, o Options) (pipeline.Result, error) {
	if err := o.resolveStream(); err != nil {
		return pipeline.Result{}, err
	}
	params, err := streamParams(&o)
	if err != nil {
		return pipeline.Result{}, err
	}
	o.Pipeline.Params = params
	src := natsstream.SourceConfig{URL: o.Input, Until: o.Until}
	switch {
	case IsPostgres(o.Output):
		o.Pipeline.Params["to"] = "table"
		return toPostgres(ctx, o)
	case IsStream(o.Output):
		o.Pipeline.Params["to"] = "stream"
		return streamToStream(ctx, o, src)
	case o.To.IsCSV():
		return jsonlToCSV(ctx, o, pipeline.File(o.Output))
	}
	return streamToJSONL(ctx, o, src)
}

// streamToJSONL writes each message's JSON payload as one line.
func streamToJSONL(ctx context.Context, o Options, src natsstream.SourceConfig) (pipeline.Result, error) {
	var hdr []byte
	var obj records.Object
	return pipeline.Run(ctx, o.Pipeline, natsstream.Messages(src), pipeline.File(o.Output),
		func(ctx context.Context, m *natsstream.Msg, _ *csvState, out *sink.File) error {
			// Appends not committed (a bad record's) are not written.
			b := out.Buffered()
			if o.WithMeta {
				b = append(b, `{"subject":`...)
				b, _ = records.AppendString(b, []byte(m.Subject))
				b = append(b, `,"seq":`...)
				b = strconv.AppendUint(b, m.Seq, 10)
				b = append(b, `,"time":"`...)
				b = m.Time.UTC().AppendFormat(b, time.RFC3339Nano)
				b = append(b, '"')
				if len(m.Header) > 0 {
					var err error
					if hdr, err = json.Marshal(m.Header); err != nil {
						return lineError(&m.Line, 0, fmt.Errorf("headers: %w", err))
					}
					b = append(b, `,"headers":`...)
					b = append(b, hdr...)
				}
				b = append(b, `,"data":`...)
			}
			n := len(b)
			if bytes.IndexByte(m.Data, '\n') < 0 && bytes.IndexByte(m.Data, '\r') < 0 {
				if !valid(&obj, m.Data) {
					return badPayload(m)
				}
				b = append(b, m.Data...)
			} else {
				buf := bytes.NewBuffer(b)
				if err := json.Compact(buf, m.Data); err != nil {
					return badPayload(m)
				}
				b = buf.Bytes()
			}
			if n == len(b) {
				return badPayload(m)
			}
			if o.WithMeta {
				b = append(b, '}')
			}
			b = append(b, '\n')
			return out.Commit(b)
		})
}

// valid reports whether data is one JSON value in valid UTF-8 (JSON Lines
// output holds no other). An object, the common payload, is checked by the
// scanner the JSON Lines conversions use, six times faster than
// encoding/json.Valid; a value of another kind by encoding/json.
func valid(obj *records.Object, data []byte) bool {
	if t := bytes.TrimLeft(data, " \t"); len(t) > 0 && t[0] == '{' {
		return obj.Scan(data) == nil
	}
	return json.Valid(data) && utf8.Valid(data)
}

// badPayload reports a message whose payload is not JSON.
func badPayload(m *natsstream.Msg) error {
	return lineError(&m.Line, 0, errors.New("the payload is not one JSON value"))
}

// streamToStream publishes every message to the output stream once.
func streamToStream(ctx context.Context, o Options, src natsstream.SourceConfig) (pipeline.Result, error) {
	dst := natsstream.SinkConfig{URL: o.Output, Job: o.Pipeline.Job}
	return pipeline.Run(ctx, o.Pipeline, natsstream.Messages(src), natsstream.Output(dst),
		func(ctx context.Context, m *natsstream.Msg, _ *csvState, out *natsstream.Sink) error {
			return out.Publish(m.Subject, m.Data, m.Header)
		})
}

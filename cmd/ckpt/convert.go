package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/pipeline"
)

func newConvertCmd(a *app) *cobra.Command {
	var (
		pf         pipelineFlags
		from, to   string
		inferTypes bool
		csvf       csvFlags
		schemaFile string
		withMeta   bool
	)
	cmd := &cobra.Command{
		Use:   "convert INPUT OUTPUT",
		Short: "Convert CSV, TSV, JSON Lines and Parquet, or load them into PostgreSQL, resumably",
		Long: `Convert CSV to JSON Lines, JSON Lines to CSV, or CSV to CSV with another
separator, as a resumable job.

Kill it at any moment (Ctrl-C, SIGTERM, kill -9, a crash, a reboot) and run
the same command again: it resumes from its last checkpoint, and OUTPUT ends
exactly as one uninterrupted run would have written it. The first Ctrl-C
takes a checkpoint and exits with code 75; a second one exits at once (also
safe). Running a finished job again on the same input says so and does
nothing.

INPUT is a file, a directory (its files with the input's extension, in name
order; give --from) or a quoted glob pattern such as 'logs/*.csv'. Formats
come from the extensions (.csv; .tsv and .tab, separated by tabs; .jsonl,
.ndjson) or --from/--to. Inputs may be compressed with gzip (.gz) or zstd
(.zst), as orders.csv.gz; a resume decompresses the current file again from
the gzip member or zstd frame that holds its position (from the file's
start if it has one only, as gzip writes). An OUTPUT named .gz or .zst, as
out.jsonl.gz, is written compressed, a member or frame per checkpoint, so
that it is a whole compressed file at every checkpoint. OUTPUT and
--dead-letter must not be input files.

CSV input may use another separator (--delimiter ';', '|', tab) and may have
no header line (--columns names the columns; every line is then a record).
CSV output uses a comma, a tab for .tsv, or --out-delimiter.

CSV to JSON Lines: the header names the keys; every value becomes a JSON
string, losslessly (--infer-types writes numbers, true/false and null for
empty fields instead). JSON Lines to CSV: the first object's keys are the
columns; values are written as they are (strings unquoted, nested values as
compact JSON, null as empty).

Parquet (.parquet, or --from/--to parquet): CSV, TSV or JSON Lines into
Parquet, and Parquet into CSV, TSV, JSON Lines or a table. Into Parquet the
columns are strings, or typed with --infer-types or --schema (INT64,
DECIMAL(38,s), DOUBLE, BOOLEAN, TIMESTAMP(MICROS, UTC), strings; empty
fields null; a value its column cannot hold is a bad record). Every
checkpoint ends a row group, and the footer is written at the end; a
resume truncates the file to its last checkpointed row group. The default
checkpoints are every 1,000,000 records or 128 MiB of input, without
--interval, so that row groups are large and a resumed file is the same,
byte for byte. A Parquet input (flat columns only) resumes at the row of
its row group; its values are written as text (see docs/PARQUET.md).

OUTPUT may be a PostgreSQL table, 'postgres://USER:PASSWORD@HOST:PORT/DB?table=NAME'
(or table=SCHEMA.NAME; libpq parameters such as sslmode work too): the rows
are loaded exactly once, each checkpoint committed in the same transaction as
the rows before it. The table is created if missing, with a bigint column
ckpt_row (each row's place in the input) and a text column per CSV header
name or per key of the first JSON object; JSON null and missing keys are
NULL. With --infer-types the columns are typed instead (bigint, numeric,
double precision, boolean, timestamptz, or text), chosen from the first
10,000 records; --schema FILE gives types by hand, a line per column
("id bigint", "price numeric"); a later value its column cannot hold is a
bad record. A job that starts from the beginning empties the table. Checkpoints
then go to the same database (schema ckpt, or ?schema=NAME), which --store
may name but not move elsewhere. Quote the address in the shell.

Checkpoints go to a store, by default a .ckpt directory beside OUTPUT (a
local --store must not be OUTPUT, lie inside it or hold it). The job's
name is unique per output: the command, OUTPUT's name and a hash of its
absolute path (see --job; ckpt jobs lists the names). A run that resumes
says so first, with the checkpoint and the records already done; --json
prints a summary of the run for scripts.

The input must not change while the job is unfinished: a resume on changed
input is refused, as is a resume with other --from, --to, --infer-types,
--schema, --delimiter, --out-delimiter or --columns, and a rerun of a
finished job whose input changed since (pass --restart to start over).

INPUT may be a NATS JetStream stream, 'nats://HOST:PORT/STREAM' (with
?subject=FILTER, repeatable, to read some subjects only): each message is a
record whose payload is a JSON value, read from the stream sequence of the
job's checkpoint, so that OUTPUT holds every message once, in stream order.
Into JSON Lines each payload is one line (--with-meta wraps it with its
subject, sequence, time and headers); into CSV or a table an object's keys
are the columns, as for JSON Lines. Without --until the job runs until
stopped (Ctrl-C or SIGTERM: a checkpoint, exit 75), and the next run goes on
from there; --until now stops at what the stream held when the job started,
--until SEQ after that sequence, --until TIME after the messages stored by
then. A stream input checkpoints every second and every 100,000 messages
by default; progress shows messages per second and the lag behind the
stream's end. OUTPUT may be another stream, 'nats://HOST:PORT/STREAM?subject=S'
(or ?prefix=P to keep each subject behind P): every message is published
once, with a message id the server deduplicates (see docs/STREAMS.md).

INPUT may be S3 objects and OUTPUT an S3 object, 's3://BUCKET/KEY' with the
query parameters of an S3 store (endpoint=, region=, path_style=true,
part_size=, ...) and credentials from the AWS environment variables or
files: a key, a quoted glob over keys ('s3://b/drops/*.csv.gz') or a prefix
ending in '/' (give --from), read in key order from the checkpoint's offset
with ranged requests, refused if an object changed since. The output object
is written by one multipart upload that every checkpoint records, and
appears only when the job finishes, created only if absent: a first run
over an existing object is refused, and --restart replaces it at the end.
Its checkpoints go to .ckpt in the working directory unless --store says
otherwise (see docs/S3.md).`,
		Example: `  ckpt convert orders.csv orders.jsonl
  ckpt convert 'nats://127.0.0.1:4222/ORDERS?subject=orders.>' orders.jsonl
  ckpt convert --until now 'nats://127.0.0.1:4222/ORDERS' 'postgres://app@db/shop?table=orders'
  ckpt convert 'nats://127.0.0.1:4222/ORDERS' 'nats://127.0.0.1:4222/COPY?prefix=copy.' 
  ckpt convert --infer-types --on-error dead-letter orders.csv orders.jsonl
  ckpt convert 'exports/*.jsonl' all.csv --store s3://bucket/ckpt
  ckpt convert --from jsonl --to csv data.txt data.out
  ckpt convert --delimiter ';' --columns id,name,amount export.txt orders.jsonl
  ckpt convert orders.tsv orders.csv
  ckpt convert orders.csv.gz orders.jsonl.zst
  ckpt convert --infer-types orders.csv orders.parquet
  ckpt convert orders.csv 'postgres://app@db.internal/shop?table=orders&sslmode=require'
  ckpt convert 's3://drops/2026-12-05/*.csv.gz?region=eu-west-1' 's3://lake/orders.jsonl?region=eu-west-1'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := convert.Options{Input: args[0], Output: args[1], InferTypes: inferTypes, WithMeta: withMeta}
			var err error
			if o.Delimiter, o.OutDelimiter, o.Columns, err = csvf.parse(cmd); err != nil {
				return err
			}
			if schemaFile != "" {
				f, err := os.Open(schemaFile)
				if err != nil {
					return usageErrorf("--schema: %v", err)
				}
				o.Schema, err = convert.ParseSchema(f)
				f.Close()
				if err != nil {
					return usageErrorf("--schema %s: %v", schemaFile, err)
				}
			}
			if o.Until, err = pf.parseUntil(); err != nil {
				return err
			}
			if o.From, err = convert.ParseFormat(from); err != nil {
				return usageErrorf("--from: %v", err)
			}
			if o.To, err = convert.ParseFormat(to); err != nil {
				return usageErrorf("--to: %v", err)
			}
			if err := o.Resolve(); err != nil {
				return usageErrorf("%v", err)
			}
			// A table output: the job and dead-letter file are named after
			// the table, the store defaults to the table's database, and
			// messages show the address without its password.
			t := target{verb: "convert", output: o.Output, display: o.Output, isFile: true}
			if convert.IsStream(o.Output) {
				if t, err = streamTarget("convert", o.Output, &pf); err != nil {
					return err
				}
			} else if convert.IsS3(o.Output) {
				if t, err = s3Target("convert", o.Output, &pf); err != nil {
					return err
				}
			} else if convert.IsPostgres(o.Output) {
				var storeURL string
				t.isFile = false
				if t.output, storeURL, t.display, err = convert.PostgresTarget(o.Output); err != nil {
					return usageErrorf("%v", err)
				}
				t.id = tableIdentity(t.output)
				if pf.store == "" {
					pf.store = storeURL
				}
			} else {
				if err := checkOutput(o.Output); err != nil {
					return err
				}
				if t.id, err = fileIdentity(o.Output); err != nil {
					return err
				}
			}
			if o.Pipeline, err = pf.config(a, cmd, t); err != nil {
				return err
			}
			if convert.IsStream(o.Input) {
				streamDefaults(cmd, &o.Pipeline)
			}
			if o.To == convert.Parquet {
				parquetDefaults(cmd, &o.Pipeline)
			}
			return a.runJob(cmd, &pf, t, &o.Pipeline, func() (pipeline.Result, error) {
				return convert.Run(cmd.Context(), o)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "input format: csv, tsv, jsonl or parquet (default: from INPUT's extension)")
	fl.StringVar(&to, "to", "", "output format: csv, tsv, jsonl or parquet (default: from OUTPUT's extension)")
	csvf.add(cmd, true)
	fl.StringVar(&schemaFile, "schema", "", "table or Parquet output: column types from `FILE`, a line per column: NAME TYPE (text, bigint, numeric, double precision, boolean, timestamptz)")
	fl.BoolVar(&inferTypes, "infer-types", false, "CSV to JSON: write numbers, booleans and null (empty fields) as JSON types; into a table or Parquet: typed columns")
	fl.BoolVar(&withMeta, "with-meta", false, `a stream into JSON Lines: write each message as {"subject","seq","time","headers","data"}`)
	pf.add(cmd)
	return cmd
}

package convert_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/internal/parquettest"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/source"
)

// typedCSV writes a CSV file whose columns infer as every type, and, past
// the sample, one row whose id is no integer.
func typedCSV(t *testing.T, dir string) (path string, rows int) {
	t.Helper()
	path = filepath.Join(dir, "in.csv")
	var b strings.Builder
	b.WriteString("id,price,ratio,ok,at,zip,note\n")
	rows = convert.InferSample + 50
	for i := range rows {
		note := fmt.Sprintf("n%d", i)
		if i%7 == 0 {
			note = ""
		}
		fmt.Fprintf(&b, "%d,%d.%02d,%de-3,%v,2024-05-01T10:%02d:00Z,0%04d,%s\n", i, i, i%100, i, i%2 == 0, i%60, i%10000, note)
	}
	b.WriteString("oops,1.00,1e0,true,2024-05-01T10:00:00Z,01234,late\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, rows
}

func parquetOpts(in, out, job string, infer bool, policy pipeline.Policy) convert.Options {
	o := convert.Options{Input: in, Output: out, InferTypes: infer,
		Pipeline: pipeline.Config{Job: job, OnBadRecord: policy, Config: ckpt.Config{Store: filepath.Join(filepath.Dir(in), "store"),
			NoSignals: true, Every: ckpt.Every{Records: 1000}, Logger: slog.New(slog.DiscardHandler)}}}
	if policy == pipeline.DeadLetter {
		o.Pipeline.DeadLetterPath = out + ".rejects.jsonl"
	}
	return o
}

// CSV into Parquet with --infer-types: typed, nullable columns in the
// input's order, read back by Arrow's reader; a value past the sample
// that its column cannot hold is handled by the bad-record policy; a
// resume that would type the columns otherwise is refused.
func TestCSVToParquetTyped(t *testing.T) {
	dir := t.TempDir()
	in, rows := typedCSV(t, dir)
	out := filepath.Join(dir, "out.parquet")
	ctx := context.Background()
	var re *source.RecordError
	if _, err := convert.Run(ctx, parquetOpts(in, out, "pq", true, pipeline.Fail)); !errors.As(err, &re) || !strings.Contains(err.Error(), "64-bit integer") {
		t.Fatalf("first run: %v, want it stopped at the value that is no integer", err)
	}
	if _, err := convert.Run(ctx, parquetOpts(in, out, "pq", false, pipeline.Skip)); !errors.Is(err, pipeline.ErrParamsChanged) {
		t.Fatalf("resume without --infer-types: %v, want ErrParamsChanged", err)
	}
	res, err := convert.Run(ctx, parquetOpts(in, out, "pq", true, pipeline.Skip))
	if err != nil || res.Resumed == nil || res.Skipped != 1 {
		t.Fatalf("resume: %v, %+v", err, res)
	}
	names, types, got := parquettest.Read(t, out)
	if want := []string{"id", "price", "ratio", "ok", "at", "zip", "note"}; !slices.Equal(names, want) {
		t.Fatalf("columns %q, want %q", names, want)
	}
	if want := []string{"int64", "decimal(38, 2)", "float64", "bool", "timestamp[us, tz=UTC]", "utf8", "utf8"}; !slices.Equal(types, want) {
		t.Fatalf("types %q, want %q", types, want)
	}
	if len(got) != rows {
		t.Fatalf("%d rows, want %d", len(got), rows)
	}
	for _, i := range []int{0, 1, 7, 123, rows - 1} {
		note := fmt.Sprintf("n%d", i)
		if i%7 == 0 {
			note = "<null>"
		}
		want := []string{fmt.Sprint(i), fmt.Sprintf("%d.%02d", i, i%100), "", fmt.Sprint(i%2 == 0),
			fmt.Sprintf("2024-05-01T10:%02d:00Z", i%60), fmt.Sprintf("0%04d", i%10000), note}
		g := slices.Clone(got[i])
		g[2] = "" // a float's text is Arrow's
		// Arrow writes a decimal without its trailing zeros.
		if a, b := must(strconv.ParseFloat(want[1], 64)), must(strconv.ParseFloat(g[1], 64)); a == b {
			g[1] = want[1]
		}
		if !slices.Equal(g, want) {
			t.Errorf("row %d: %q, want %q", i, got[i], want)
		}
	}
}

// Every bad-record policy applies to a value its Parquet column cannot
// hold: fail names the line; skip counts it; dead-letter writes it.
func TestCSVToParquetPolicies(t *testing.T) {
	dir := t.TempDir()
	in, rows := typedCSV(t, dir)
	ctx := context.Background()
	for _, p := range []pipeline.Policy{pipeline.Fail, pipeline.Skip, pipeline.DeadLetter} {
		t.Run(p.String(), func(t *testing.T) {
			out := filepath.Join(dir, p.String()+".parquet")
			res, err := convert.Run(ctx, parquetOpts(in, out, "pq-"+p.String(), true, p))
			if p == pipeline.Fail {
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("in.csv:%d", rows+2)) {
					t.Fatalf("%v, want the bad value's line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Skipped+res.DeadLettered != 1 {
				t.Fatalf("%+v, want one bad record", res)
			}
			if _, _, got := parquettest.Read(t, out); len(got) != rows {
				t.Fatalf("%d rows, want %d", len(got), rows)
			}
			if p == pipeline.DeadLetter {
				b, err := os.ReadFile(out + ".rejects.jsonl")
				if err != nil || !strings.Contains(string(b), "oops") {
					t.Fatalf("dead letters %q, %v", b, err)
				}
			}
		})
	}
}

// Parquet into a PostgreSQL table: the columns take the Parquet types.
func TestParquetToTable(t *testing.T) {
	pg := testenv.NewPostgres(t)
	dir := t.TempDir()
	in, rows := typedCSV(t, dir)
	pq := filepath.Join(dir, "in.parquet")
	ctx := context.Background()
	if _, err := convert.Run(ctx, parquetOpts(in, pq, "make", true, pipeline.Skip)); err != nil {
		t.Fatal(err)
	}
	table := pg.Schema + ".from_parquet"
	o := parquetOpts(pq, pg.WithParam("table", table), "load", false, pipeline.Fail)
	o.Pipeline.Every.Records = 777
	o.Pipeline.Store = "" // the table's database
	if _, err := convert.Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	conn := pg.Conn(t)
	types, err := pgx.CollectRows(must(conn.Query(ctx, `SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 ORDER BY attnum`, table)), pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ckpt_row bigint", "id bigint", "price numeric", "ratio double precision", "ok boolean", "at timestamp with time zone", "zip text", "note text"}
	if !slices.Equal(types, want) {
		t.Fatalf("columns %q, want %q", types, want)
	}
	var n, nulls int64
	var price string
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE note IS NULL), max(price)::text FROM `+table).Scan(&n, &nulls, &price); err != nil {
		t.Fatal(err)
	}
	if n != int64(rows) || nulls != int64((rows+6)/7) || price != fmt.Sprintf("%d.%02d", rows-1, (rows-1)%100) {
		t.Fatalf("%d rows, %d null notes, max price %s", n, nulls, price)
	}
}

// JSON Lines into Parquet: the first object's keys are the columns, JSON
// null and missing keys null, nested values their JSON text; and a
// Parquet file of no rows converts to a CSV file of its header.
func TestJSONLAndEmptyParquet(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(in, []byte(`{"id":1,"tags":["a","b"],"price":"2.50","note":null}
{"id":2,"tags":{"k":1},"price":3}

{"id":3,"price":"1e0","note":"x"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.parquet")
	ctx := context.Background()
	if _, err := convert.Run(ctx, parquetOpts(in, out, "jsonl", true, pipeline.Fail)); err != nil {
		t.Fatal(err)
	}
	names, types, rows := parquettest.Read(t, out)
	if want := []string{"id", "tags", "price", "note"}; !slices.Equal(names, want) {
		t.Fatalf("columns %q, want %q", names, want)
	}
	if want := []string{"int64", "utf8", "float64", "utf8"}; !slices.Equal(types, want) {
		t.Fatalf("types %q, want %q", types, want)
	}
	want := [][]string{{"1", `["a","b"]`, "2.5", "<null>"}, {"2", `{"k":1}`, "3", "<null>"}, {"3", "<null>", "1", "x"}}
	for i := range want {
		if i >= len(rows) || !slices.Equal(rows[i], want[i]) {
			t.Fatalf("rows %q, want %q", rows, want)
		}
	}

	empty := filepath.Join(dir, "empty.csv")
	if err := os.WriteFile(empty, []byte("a,b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pq := filepath.Join(dir, "empty.parquet")
	if _, err := convert.Run(ctx, parquetOpts(empty, pq, "empty", true, pipeline.Fail)); err != nil {
		t.Fatal(err)
	}
	if _, _, rows := parquettest.Read(t, pq); len(rows) != 0 {
		t.Fatalf("%d rows in an empty file", len(rows))
	}
	back := filepath.Join(dir, "back.csv")
	if _, err := convert.Run(ctx, parquetOpts(pq, back, "back", false, pipeline.Fail)); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(back); err != nil || string(b) != "a,b\n" {
		t.Fatalf("CSV of an empty Parquet file: %q, %v", b, err)
	}
}

// A CSV object on S3 converts into a local Parquet file, typed, byte for
// byte as the same CSV read from a local file does.
func TestS3CSVToParquet(t *testing.T) {
	bucket := testenv.S3(t)
	for _, kv := range bucket.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	in, _ := typedCSV(t, dir)
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := bucket.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket.Bucket), Key: aws.String("drop/in.csv"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(dir, "local.parquet")
	if _, err := convert.Run(ctx, parquetOpts(in, local, "local", true, pipeline.Skip)); err != nil {
		t.Fatal(err)
	}
	remote := filepath.Join(dir, "remote.parquet")
	o := parquetOpts(in, remote, "remote", true, pipeline.Skip)
	o.Input = bucket.URL("drop/in.csv")
	if _, err := convert.Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	a, errA := os.ReadFile(local)
	b, errB := os.ReadFile(remote)
	if errA != nil || errB != nil || len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("the Parquet file from S3 (%d bytes, %v) differs from the local conversion's (%d bytes, %v)", len(b), errB, len(a), errA)
	}
}

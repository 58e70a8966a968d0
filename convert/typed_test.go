package convert_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink/pgsink"
	"github.com/ckptdev/ckpt/source"
)

// --infer-types into a table: typed columns chosen from the first
// records, empty fields NULL, and a value past the sample that its
// column's type cannot hold handled by the bad-record policy, not a
// failed load. A resume that would type the columns otherwise is refused.
func TestInferTypesIntoTable(t *testing.T) {
	pg := testenv.NewPostgres(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	var b strings.Builder
	b.WriteString("id,price,ratio,ok,at,zip,note\n")
	for i := range convert.InferSample + 50 {
		note := fmt.Sprintf("n%d", i)
		if i%7 == 0 {
			note = ""
		}
		fmt.Fprintf(&b, "%d,%d.%02d,%de-3,%v,2024-05-01T10:%02d:00Z,0%04d,%s\n", i, i, i%100, i, i%2 == 0, i%60, i%10000, note)
	}
	b.WriteString("oops,1.00,1e0,true,2024-05-01T10:00:00Z,01234,late\n")
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	table := pg.Schema + ".typed"
	opts := func(infer bool, policy pipeline.Policy) convert.Options {
		return convert.Options{Input: in, Output: pg.WithParam("table", table), InferTypes: infer,
			Pipeline: pipeline.Config{Job: "typed", OnBadRecord: policy, Config: ckpt.Config{
				NoSignals: true, Every: ckpt.Every{Records: 1000}, Logger: slog.New(slog.DiscardHandler)}}}
	}
	var re *source.RecordError
	if _, err := convert.Run(context.Background(), opts(true, pipeline.Fail)); !errors.As(err, &re) || !strings.Contains(err.Error(), "bigint") {
		t.Fatalf("first run: %v, want it stopped at the value that is no bigint", err)
	}
	if _, err := convert.Run(context.Background(), opts(false, pipeline.Skip)); !errors.Is(err, pipeline.ErrParamsChanged) {
		t.Fatalf("resume without --infer-types: %v, want ErrParamsChanged", err)
	}
	res, err := convert.Run(context.Background(), opts(true, pipeline.Skip))
	if err != nil || res.Resumed == nil || res.Skipped != 1 {
		t.Fatalf("resume: %v, %+v", err, res)
	}
	conn := pg.Conn(t)
	ctx := context.Background()
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
	var sum string
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE note IS NULL), sum(price)::text FROM `+table).Scan(&n, &nulls, &sum); err != nil {
		t.Fatal(err)
	}
	rows := int64(convert.InferSample + 50)
	var wantSum int64
	for i := range rows {
		wantSum += i*100 + i%100
	}
	if n != rows || nulls != (rows+6)/7 || sum != fmt.Sprintf("%d.%02d", wantSum/100, wantSum%100) {
		t.Fatalf("%d rows, %d NULL notes, sum %s; want %d, %d, %d.%02d", n, nulls, sum, rows, (rows+6)/7, wantSum/100, wantSum%100)
	}
}

func TestParseSchema(t *testing.T) {
	got, err := convert.ParseSchema(strings.NewReader("# types\nid bigint\n\"unit price\"  numeric\nat\ttimestamp with time zone\n\nok BOOL\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]pgsink.ColumnType{"id": pgsink.BigInt, "unit price": pgsink.Numeric, "at": pgsink.Timestamptz, "ok": pgsink.Boolean}
	if !maps.Equal(got, want) {
		t.Fatalf("schema %v, want %v", got, want)
	}
	for in, msg := range map[string]string{
		"id\n":               "line 1",
		"id integer32\n":     "unknown column type",
		"a text\na bigint\n": "given twice",
		"# nothing\n":        "no column",
		"\"a text\n":         "quoted",
	} {
		if _, err := convert.ParseSchema(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseSchema(%q): %v, want an error saying %q", in, err, msg)
		}
	}
}

// --schema types a table's columns by name, over --infer-types where both
// are given; a name the input lacks is an error that lists the input's.
func TestSchemaIntoTable(t *testing.T) {
	pg := testenv.NewPostgres(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(in, []byte("id,zip,price\n1,01234,1.5\n2,,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := convert.Options{Input: in, Output: pg.WithParam("table", pg.Schema+".s"), InferTypes: true,
		Schema:   map[string]pgsink.ColumnType{"price": pgsink.Double},
		Pipeline: pipeline.Config{Job: "s", Config: ckpt.Config{NoSignals: true, Logger: slog.New(slog.DiscardHandler)}}}
	if _, err := convert.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	conn := pg.Conn(t)
	types, err := pgx.CollectRows(must(conn.Query(context.Background(), `SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 1 ORDER BY attnum`, pg.Schema+".s")), pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"id bigint", "zip text", "price double precision"}; !slices.Equal(types, want) {
		t.Fatalf("columns %q, want %q", types, want)
	}
	o.Output, o.Pipeline.Job = pg.WithParam("table", pg.Schema+".s2"), "s2"
	o.Schema = map[string]pgsink.ColumnType{"prize": pgsink.Double}
	if _, err := convert.Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), `"prize"`) || !strings.Contains(err.Error(), "id, zip, price") {
		t.Fatalf("a schema naming a missing column: %v", err)
	}
}

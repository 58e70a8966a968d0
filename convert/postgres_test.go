package convert_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	"github.com/ckptdev/ckpt/sink"
)

func TestPostgresTarget(t *testing.T) {
	tests := []struct {
		output, table, store, display, err string
	}{
		{output: "postgres://u:pw@h:5433/db?table=orders&sslmode=disable",
			table: "orders", store: "postgres://u:pw@h:5433/db?sslmode=disable", display: "postgres://u:xxxxx@h:5433/db?sslmode=disable&table=orders"},
		{output: "postgresql://u@h/db?table=etl.orders&schema=cp",
			table: "etl.orders", store: "postgresql://u@h/db?schema=cp", display: "postgresql://u@h/db?schema=cp&table=etl.orders"},
		{output: "postgres://u:pw@h/db", err: "no table"},
		{output: "postgres://u:pw@h/db?table=a.b.c", err: "SCHEMA.NAME"},
		{output: "postgres://u:pw@h/db?table=drop%20table", err: "SCHEMA.NAME"},
	}
	for _, tc := range tests {
		table, store, display, err := convert.PostgresTarget(tc.output)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), ":pw@") {
				t.Errorf("PostgresTarget(%q): %v, want an error saying %q (and no password)", tc.output, err, tc.err)
			}
			continue
		}
		if err != nil || table != tc.table || store != tc.store || display != tc.display {
			t.Errorf("PostgresTarget(%q) = %q, %q, %q, %v; want %q, %q, %q", tc.output, table, store, display, err, tc.table, tc.store, tc.display)
		}
	}
	if !convert.IsPostgres("PostgreSQL://h/db") || convert.IsPostgres("out/postgres.csv") || convert.IsPostgres("s3://b/p") {
		t.Error("IsPostgres is wrong")
	}
}

func TestResolveTableOutput(t *testing.T) {
	out := "postgres://h/db?table=t"
	for _, tc := range []struct {
		o    convert.Options
		want string
	}{
		{convert.Options{Input: "in.csv", Output: out, To: convert.JSONL}, "--to does not apply"},
		{convert.Options{Input: "in.csv", Output: out, OutDelimiter: ';'}, "output delimiter does not apply"},
		{convert.Options{Input: "in.txt", Output: out}, "cannot tell the format"},
	} {
		if err := tc.o.Resolve(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%+v): %v, want %q", tc.o, err, tc.want)
		}
	}
	o := convert.Options{Input: "in.jsonl", Output: out}
	if err := o.Resolve(); err != nil || o.From != convert.JSONL {
		t.Errorf("Resolve of a JSON Lines input into a table: %v, from %v", err, o.From)
	}
}

// load converts input (a file named in) into table and returns the
// table's rows in load order, each column as text or <NULL>.
func load(t *testing.T, pg *testenv.Postgres, in, input, table string, policy pipeline.Policy) ([]string, []string, pipeline.Result, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, in)
	if err := os.WriteFile(path, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := convert.Run(context.Background(), convert.Options{
		Input: path, Output: pg.WithParam("table", pg.Schema+"."+table),
		Pipeline: pipeline.Config{Job: table, OnBadRecord: policy, DeadLetterPath: filepath.Join(dir, "dl"),
			Config: ckpt.Config{NoSignals: true, Logger: slog.New(slog.DiscardHandler)}},
	})
	if err != nil {
		return nil, nil, res, err
	}
	conn := pg.Conn(t)
	ctx := context.Background()
	cols, err := pgx.CollectRows(must(conn.Query(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 ORDER BY attnum`, pg.Schema+"."+table)), pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	rows := must(conn.Query(ctx, fmt.Sprintf("SELECT * FROM %s.%s ORDER BY ckpt_row", pg.Schema, table)))
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, v := range vals {
			if v == nil {
				s = append(s, "<NULL>")
			} else {
				s = append(s, fmt.Sprint(v))
			}
		}
		out = append(out, strings.Join(s, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cols, out, res, nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestCSVToTable(t *testing.T) {
	pg := testenv.NewPostgres(t)
	long := strings.Repeat("é", 40) // 80 bytes
	input := "id,,id,Name With Space," + long + ",ckpt_row\n" +
		"1,,x,\"a, \"\"b\"\"\nc\",z,r\n" +
		"2,e,,,,\n"
	cols, rows, res, err := load(t, pg, "in.csv", input, "csv_out", pipeline.Fail)
	if err != nil {
		t.Fatal(err)
	}
	wantCols := []string{"ckpt_row", "id", "column_2", "id_2", "Name With Space", strings.Repeat("é", 31), "ckpt_row_2"}
	if !slices.Equal(cols, wantCols) {
		t.Fatalf("columns %q, want %q", cols, wantCols)
	}
	want := []string{"1|1||x|a, \"b\"\nc|z|r", "2|2|e||||"}
	if !slices.Equal(rows, want) || res.Records != 2 {
		t.Fatalf("rows %q (%d records), want %q", rows, res.Records, want)
	}
}

func TestJSONLToTable(t *testing.T) {
	pg := testenv.NewPostgres(t)
	input := `{"id": 1, "name": "caf\u00e9\n", "n": null, "tags": ["a", {"b": 2}], "ok": true}` + "\n" +
		"\n" +
		`{"name": "second", "id": 2.50e3}` + "\n" +
		`{"id": 3, "extra": 1}` + "\n" +
		`{"id": 4, "id": 5}` + "\n" +
		`{"id": "nul\u0000"}` + "\n" +
		`{"ok": false, "id": 6}` + "\n"
	cols, rows, res, err := load(t, pg, "in.jsonl", input, "json_out", pipeline.Skip)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ckpt_row", "id", "name", "n", "tags", "ok"}; !slices.Equal(cols, want) {
		t.Fatalf("columns %q, want %q", cols, want)
	}
	want := []string{
		"1|1|café\n|<NULL>|[\"a\",{\"b\":2}]|true",
		"2|2.50e3|second|<NULL>|<NULL>|<NULL>",
		"3|6|<NULL>|<NULL>|<NULL>|false",
	}
	if !slices.Equal(rows, want) {
		t.Fatalf("rows:\n%q\nwant:\n%q", rows, want)
	}
	if res.Skipped != 3 {
		t.Fatalf("%d records skipped, want 3 (an unknown key, a repeated key, a NUL)", res.Skipped)
	}
}

func TestTableOutputNeedsItsDatabaseAsStore(t *testing.T) {
	pg := testenv.NewPostgres(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "in.csv")
	os.WriteFile(path, []byte("a\n1\n"), 0o644)
	_, err := convert.Run(context.Background(), convert.Options{
		Input: path, Output: pg.WithParam("table", pg.Schema+".t"),
		Pipeline: pipeline.Config{Job: "t", Config: ckpt.Config{Store: filepath.Join(dir, "store"), NoSignals: true, Logger: slog.New(slog.DiscardHandler)}},
	})
	if err == nil || !strings.Contains(err.Error(), "must be PostgreSQL") {
		t.Fatalf("a table output with a local store: %v, want a refusal", err)
	}
}

// A finished load whose table was emptied or dropped since is not
// reported complete.
func TestFinishedLoadChecksItsTable(t *testing.T) {
	pg := testenv.NewPostgres(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(path, []byte("a,b\n1,2\n3,4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := convert.Options{Input: path, Output: pg.WithParam("table", pg.Schema+".t"),
		Pipeline: pipeline.Config{Job: "t", Config: ckpt.Config{NoSignals: true, Logger: slog.New(slog.DiscardHandler)}}}
	if _, err := convert.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, err := convert.Run(context.Background(), o); !errors.Is(err, pipeline.ErrAlreadyDone) {
		t.Fatalf("rerun: %v, want ErrAlreadyDone", err)
	}
	conn := pg.Conn(t)
	for _, change := range []string{"TRUNCATE %s.t", "DROP TABLE %s.t"} {
		if _, err := conn.Exec(context.Background(), fmt.Sprintf(change, pg.Schema)); err != nil {
			t.Fatal(err)
		}
		_, err := convert.Run(context.Background(), o)
		if errors.Is(err, pipeline.ErrAlreadyDone) || !errors.Is(err, sink.ErrOutputChanged) {
			t.Fatalf("rerun after %s: %v, want ErrOutputChanged", change, err)
		}
	}
}

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

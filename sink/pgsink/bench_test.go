package pgsink_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/internal/gen"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/pipeline"
)

const benchRows = 2_000_000

// benchCSV writes the benchmark's input: 2 million generated rows, about
// 125 MB, with quoted fields, embedded line ends and non-ASCII text.
func benchCSV(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "rows.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := gen.Write(f, gen.Options{Rows: benchRows, Seed: 42}); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkPostgresSink loads 2 million CSV rows into a table. load=copy
// is the baseline: plain COPY ... FROM STDIN (FORMAT csv, HEADER) of the
// file over one connection, as psql's \copy does, into a table of eight
// text columns. load=ckpt is `ckpt convert FILE postgres://...?table=`:
// the file parsed by ckpt, the rows sent by the exactly-once sink, with
// the command's default checkpoints (every second and every million
// rows), each committed with its rows. Before every iteration the table
// is emptied and the server checkpointed, so that neither run pays for
// the other's writes.
func BenchmarkPostgresSink(b *testing.B) {
	pg := testenv.NewPostgres(b)
	path := benchCSV(b)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	conn := pg.Conn(b)
	ctx := context.Background()
	table := pg.Schema + ".rows"
	reset := func(b *testing.B) {
		b.Helper()
		if _, err := conn.Exec(ctx, "TRUNCATE "+table); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
			b.Fatal(err)
		}
	}
	count := func(b *testing.B) {
		b.Helper()
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != benchRows {
			b.Fatalf("the table has %d rows (%v), want %d", n, err, benchRows)
		}
	}
	report := func(b *testing.B) {
		b.SetBytes(fi.Size())
		b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	}

	b.Run("rows=2M/load=copy", func(b *testing.B) {
		cols := "id text, name text, city text, amount text, qty text, note text, active text, day text"
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s (%s)", table, table, cols)); err != nil {
			b.Fatal(err)
		}
		c, err := pgx.Connect(ctx, pg.Base)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		for b.Loop() {
			b.StopTimer()
			reset(b)
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			_, err = c.PgConn().CopyFrom(ctx, f, "COPY "+table+" FROM STDIN (FORMAT csv, HEADER)")
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		report(b)
		count(b)
	})

	b.Run("rows=2M/load=ckpt", func(b *testing.B) {
		if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			b.StopTimer()
			if _, err := conn.Exec(ctx, "TRUNCATE "+table); err != nil && b.N > 1 {
				b.Fatal(err)
			}
			conn.Exec(ctx, "CHECKPOINT")
			b.StartTimer()
			_, err := convert.Run(ctx, convert.Options{
				Input:  path,
				Output: pg.WithParam("table", table),
				Pipeline: pipeline.Config{Job: "bench", Config: ckpt.Config{
					Every:     ckpt.Every{Records: 1_000_000, Interval: time.Second},
					Restart:   true,
					NoSignals: true,
					Logger:    slog.New(slog.DiscardHandler),
				}},
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		report(b)
		count(b)
	})
}

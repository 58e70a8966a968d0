package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/internal/gen"
	"github.com/ckptdev/ckpt/internal/parquettest"
	"github.com/ckptdev/ckpt/internal/testenv"
)

// TestParquetCLI kills `ckpt convert` into and out of Parquet with
// SIGKILL at random moments until it completes, and compares the result
// with an uninterrupted run's: byte for byte where the row groups end at
// the same records (checkpoints by record count only), and by content,
// read back by Apache Arrow's reader, where they do not (checkpoints also
// by time).
func TestParquetCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill -9 loop: skipped with -short")
	}
	c := buildCLI(t)
	rows := int64(60_000)
	minKills := 8
	if longTests() {
		rows, minKills = 1_000_000, 60
	}
	cases := []struct {
		name     string
		gen      gen.Options
		input    string // in.csv, or in.parquet made from it
		out      string
		args     []string // of both runs
		crash    []string // of the killed runs only
		bytewise bool     // compare byte for byte, else by content
		extra    []string // more outputs to compare byte for byte
		same     bool     // the output is the CSV input again
	}{
		{name: "csv-to-parquet-typed", gen: gen.Options{Rows: rows, Seed: 11}, input: "in.csv", out: "out.parquet",
			args: []string{"convert", "--infer-types", "--every", "3000"}, bytewise: true},
		{name: "csv-to-parquet-strings", gen: gen.Options{Rows: rows, Seed: 12}, input: "in.csv", out: "out.parquet",
			args: []string{"convert", "--every", "3000"}, bytewise: true},
		{name: "csv-to-parquet-interval", gen: gen.Options{Rows: rows, Seed: 13}, input: "in.csv", out: "out.parquet",
			args: []string{"convert", "--infer-types"}, crash: []string{"--every", "3000", "--interval", "5ms"}},
		{name: "csv-to-parquet-dead-letter", gen: gen.Options{Rows: rows, Seed: 14, BadEvery: 500}, input: "in.csv", out: "out.parquet",
			args: []string{"convert", "--infer-types", "--every", "3000", "--dead-letter", "rejects.jsonl"}, bytewise: true, extra: []string{"rejects.jsonl"}},
		{name: "parquet-to-csv", gen: gen.Options{Rows: rows, Seed: 15}, input: "in.parquet", out: "out.csv",
			args: []string{"convert"}, crash: []string{"--every", "3000", "--interval", "5ms"}, bytewise: true, same: true},
		{name: "parquet-to-jsonl", gen: gen.Options{Rows: rows, Seed: 16}, input: "in.parquet", out: "out.jsonl",
			args: []string{"convert"}, crash: []string{"--every", "2000", "--interval", "5ms"}, bytewise: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			dir := t.TempDir()
			writeSample(t, filepath.Join(dir, "in.csv"), tc.gen)
			if tc.input == "in.parquet" {
				// Row groups of 7,000 rows: resumes land inside them.
				if code, out := c.run(dir, "convert", "--infer-types", "--every", "7000", "in.csv", "in.parquet"); code != 0 {
					t.Fatalf("make the Parquet input: exit %d\n%s", code, out)
				}
			}
			ref := filepath.Join(dir, "ref")
			crash := filepath.Join(dir, "crash")
			for _, d := range []string{ref, crash} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			args := func(extra ...string) []string {
				a := append(append([]string{}, tc.args...), "../"+tc.input, tc.out)
				return append(a, extra...)
			}
			if code, out := c.run(ref, args()...); code != 0 {
				t.Fatalf("uninterrupted run: exit %d\n%s", code, out)
			}
			crashArgs := append(append([]string{}, tc.crash...), "--no-progress")
			kills := c.crashUntilDone(crash, uint64(len(tc.name)), 150*time.Millisecond, args(crashArgs...)...)
			for kills < minKills {
				if err := os.Remove(filepath.Join(crash, tc.out)); err != nil {
					t.Fatal(err)
				}
				kills += c.crashUntilDone(crash, uint64(kills), 100*time.Millisecond, args(append(crashArgs, "--restart")...)...)
			}
			t.Logf("%d kills", kills)
			got, want := filepath.Join(crash, tc.out), filepath.Join(ref, tc.out)
			if strings.HasSuffix(tc.out, ".parquet") {
				gn, gt, gr := parquettest.Read(t, got)
				wn, wt, wr := parquettest.Read(t, want)
				if !reflect.DeepEqual(gn, wn) || !reflect.DeepEqual(gt, wt) {
					t.Fatalf("columns %v %v, want %v %v", gn, gt, wn, wt)
				}
				if len(gr) != len(wr) {
					t.Fatalf("%d rows, want %d", len(gr), len(wr))
				}
				for i := range gr {
					if !reflect.DeepEqual(gr[i], wr[i]) {
						t.Fatalf("row %d: %v, want %v", i, gr[i], wr[i])
					}
				}
			}
			if tc.bytewise {
				sameFile(t, got, want)
			}
			if tc.same {
				sameFile(t, got, filepath.Join(dir, "in.csv"))
			}
			for _, x := range tc.extra {
				sameFile(t, filepath.Join(crash, x), filepath.Join(ref, x))
			}
			code, out := c.run(crash, args()...)
			if code != 0 || !strings.Contains(out, "already finished") {
				t.Fatalf("rerun of a finished job: exit %d\n%s", code, out)
			}
		})
	}
}

// A Parquet file loaded into a PostgreSQL table, killed at random moments:
// the table ends as an uninterrupted load's, with the file's types.
func TestParquetCLIPostgresTable(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill -9 loop: skipped with -short")
	}
	pg := testenv.NewPostgres(t)
	c := buildCLI(t)
	rows, minKills := crashRuns()
	dir := t.TempDir()
	writeSample(t, filepath.Join(dir, "in.csv"), gen.Options{Rows: rows, Seed: 23})
	if code, out := c.run(dir, "convert", "--infer-types", "--every", "7000", "in.csv", "in.parquet"); code != 0 {
		t.Fatalf("make the Parquet input: exit %d\n%s", code, out)
	}
	ref := pg.Schema + ".parquet_ref"
	got := pg.Schema + ".parquet_crash"
	if code, out := c.run(dir, "convert", "in.parquet", pg.WithParam("table", ref), "--no-progress"); code != 0 {
		t.Fatalf("uninterrupted load: exit %d\n%s", code, out)
	}
	c.crashUntilKilled(dir, minKills, func() {}, "convert", "in.parquet", pg.WithParam("table", got), "--every", "3000", "--interval", "5ms", "--no-progress")
	conn := pg.Conn(t)
	sameTable(t, conn, got, ref, rows)
	var types string
	if err := conn.QueryRow(context.Background(), `SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0`, got).Scan(&types); err != nil {
		t.Fatal(err)
	}
	if want := "bigint,bigint,text,text,numeric,bigint,text,boolean,text"; types != want {
		t.Fatalf("column types %s, want %s", types, want)
	}
}

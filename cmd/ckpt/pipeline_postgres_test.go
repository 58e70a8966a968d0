package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ckptdev/ckpt/internal/gen"
	"github.com/ckptdev/ckpt/internal/testenv"
)

// These are TestPipelineCLI's crash tests with PostgreSQL: the real ckpt
// binary killed with SIGKILL at random moments until it completes, its
// result compared with an uninterrupted run's.

// crashRuns returns the rows of the generated input and the kills that
// a test must reach.
func crashRuns() (int64, int) {
	if longTests() {
		return 1_000_000, 60
	}
	return 60_000, 8
}

// crashUntilKilled runs args in dir under crashUntilDone, again and again
// with --restart, until at least minKills runs were killed; reset runs
// before every restart.
func (c *cli) crashUntilKilled(dir string, minKills int, reset func(), args ...string) int {
	c.t.Helper()
	kills := c.crashUntilDone(dir, uint64(len(args)), 150*time.Millisecond, args...)
	for kills < minKills {
		reset()
		kills += c.crashUntilDone(dir, uint64(kills), 100*time.Millisecond, append(args, "--restart")...)
	}
	c.t.Logf("%d kills", kills)
	return kills
}

// Checkpoints in PostgreSQL, output to a file.
func TestPipelineCLIPostgresStore(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill -9 loop: skipped with -short")
	}
	pg := testenv.NewPostgres(t)
	c := buildCLI(t)
	rows, minKills := crashRuns()
	dir := t.TempDir()
	writeSample(t, filepath.Join(dir, "in.csv"), gen.Options{Rows: rows, Seed: 21})
	if code, out := c.run(dir, "convert", "in.csv", "ref.jsonl", "--store", "ref-store"); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, out)
	}
	args := []string{"convert", "in.csv", "out.jsonl", "--store", pg.URL, "--every", "3000", "--interval", "5ms", "--no-progress"}
	c.crashUntilKilled(dir, minKills, func() {
		if err := os.Remove(filepath.Join(dir, "out.jsonl")); err != nil {
			t.Fatal(err)
		}
	}, args...)
	sameFile(t, filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "ref.jsonl"))
	code, out := c.run(dir, "convert", "in.csv", "out.jsonl", "--store", pg.URL)
	if code != 0 || !strings.Contains(out, "already finished") {
		t.Fatalf("rerun of the finished job: exit %d\n%s", code, out)
	}
}

// The exactly-once table sink: rows and checkpoints in one transaction.
func TestPipelineCLIPostgresTable(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill -9 loop: skipped with -short")
	}
	pg := testenv.NewPostgres(t)
	c := buildCLI(t)
	rows, minKills := crashRuns()
	dir := t.TempDir()
	writeSample(t, filepath.Join(dir, "in.csv"), gen.Options{Rows: rows, Seed: 22})
	if code, out := c.run(dir, "convert", "in.csv", "in.jsonl", "--infer-types"); code != 0 {
		t.Fatalf("make the JSON Lines input: exit %d\n%s", code, out)
	}
	conn := pg.Conn(t)
	for _, tc := range []struct {
		name, input string
		extra       []string
	}{{"csv", "in.csv", nil}, {"jsonl", "in.jsonl", nil}, {"csv_typed", "in.csv", []string{"--infer-types"}}} {
		t.Run(tc.name, func(t *testing.T) {
			c := &cli{t: t, bin: c.bin} // failures end this subtest
			ref := pg.Schema + "." + tc.name + "_ref"
			got := pg.Schema + "." + tc.name + "_crash"
			if code, out := c.run(dir, append([]string{"convert", tc.input, pg.WithParam("table", ref), "--no-progress"}, tc.extra...)...); code != 0 {
				t.Fatalf("uninterrupted load: exit %d\n%s", code, out)
			}
			args := append([]string{"convert", tc.input, pg.WithParam("table", got), "--every", "3000", "--interval", "5ms", "--no-progress"}, tc.extra...)
			c.crashUntilKilled(dir, minKills, func() {}, args...)
			sameTable(t, conn, got, ref, rows)

			code, out := c.run(dir, append([]string{"convert", tc.input, pg.WithParam("table", got)}, tc.extra...)...)
			if code != 0 || !strings.Contains(out, "already finished") {
				t.Fatalf("rerun of the finished load: exit %d\n%s", code, out)
			}
			if tc.extra != nil {
				var typed int
				if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0
					AND format_type(atttypid, atttypmod) <> 'text'`, got).Scan(&typed); err != nil || typed < 3 {
					t.Fatalf("%d columns of %s are typed (%v): want the sample's numbers typed", typed, got, err)
				}
			}
		})
	}
}

// sameTable compares two loaded tables row by row in load order (by
// ckpt_row, which must run 1..rows without a gap).
func sameTable(t *testing.T, conn *pgx.Conn, got, want string, rows int64) {
	t.Helper()
	ctx := context.Background()
	for _, table := range []string{got, want} {
		var n, lo, hi int64
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*), min(ckpt_row), max(ckpt_row) FROM %s", table)).Scan(&n, &lo, &hi); err != nil {
			t.Fatal(err)
		}
		if n != rows || lo != 1 || hi != rows {
			t.Fatalf("%s has %d rows numbered %d..%d, want %d numbered from 1", table, n, lo, hi, rows)
		}
	}
	// The first row that differs, whole rows compared as text.
	var first *int64
	err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT min(g.ckpt_row) FROM %s g JOIN %s w USING (ckpt_row) WHERE g::text IS DISTINCT FROM w::text`, got, want)).Scan(&first)
	if err != nil {
		t.Fatal(err)
	}
	if first != nil {
		var g, w string
		conn.QueryRow(ctx, fmt.Sprintf("SELECT g::text, w::text FROM %s g JOIN %s w USING (ckpt_row) WHERE ckpt_row = $1", got, want), *first).Scan(&g, &w)
		t.Fatalf("row %d of %s differs from the uninterrupted load's:\n got %s\nwant %s", *first, got, g, w)
	}
}

// A table's default job is named after the table, with a hash; a load
// kept under the name earlier versions gave it is continued, not
// started over (which would empty the table).
func TestTableJobNames(t *testing.T) {
	pg := testenv.NewPostgres(t)
	dir := t.TempDir()
	in := writeInput(t, dir, "in.csv", "a\n1\n2\n")
	table := pg.Schema + ".loaded"
	legacy := "convert-" + table
	ckptRun(t, nil, "convert", in, pg.WithParam("table", table), "--job", legacy).want(t, exitOK)
	r := ckptRun(t, nil, "convert", in, pg.WithParam("table", table)).want(t, exitOK)
	if !strings.Contains(r.stdout, "job "+legacy+" already finished") {
		t.Fatalf("the load under its old name was not continued:\n%s%s", r.stdout, r.stderr)
	}
	other := pg.Schema + ".other"
	r = ckptRun(t, nil, "convert", in, pg.WithParam("table", other), "--json").want(t, exitOK)
	if want := jobName("convert", other, tableIdentity(other)); !strings.Contains(r.stdout, `"job": "`+want+`"`) {
		t.Fatalf("a new load's job is not %s:\n%s", want, r.stdout)
	}
}

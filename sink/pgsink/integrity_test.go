package pgsink_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/sink/pgsink"
	"github.com/ckptdev/ckpt/store"
)

// TestSystemTablesAreRefused: a table in the system catalogs is never
// created, emptied or written, however it is named.
func TestSystemTablesAreRefused(t *testing.T) {
	f := newFixture(t)
	for _, table := range []string{"pg_catalog.out", "information_schema.out", "pg_toast.out", "pg_class", "pg_namespace"} {
		c := f.sinkConfig()
		c.Table = table
		s, err := pgsink.Open(t.Context(), c, nil)
		if err == nil {
			s.Close()
			t.Errorf("Open(%s) succeeded", table)
			continue
		}
		if !strings.Contains(err.Error(), "system schema") {
			t.Errorf("Open(%s): %v, want a refusal naming the system schema", table, err)
		}
	}
}

// TestSemicolonInTheAddressIsReported: URL parsing cuts a parameter at a
// ';' and drops the pair; the sink says so instead of naming no table, or
// another one.
func TestSemicolonInTheAddressIsReported(t *testing.T) {
	f := newFixture(t)
	c := f.sinkConfig()
	c.Table = ""
	c.URL = f.pg.URL + "&table=" + f.pg.Schema + ".out;drop"
	s, err := pgsink.Open(t.Context(), c, nil)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded")
	}
	if !errors.Is(err, store.ErrBadURL) || !strings.Contains(err.Error(), "';'") {
		t.Fatalf("Open: %v, want ErrBadURL about the ';'", err)
	}
}

// TestUnqualifiedTableFollowsTheSearchPath: an unqualified name is the
// table of the first schema of the search_path that exists, used by its
// qualified name throughout; a search_path with no existing schema is
// reported as such.
func TestUnqualifiedTableFollowsTheSearchPath(t *testing.T) {
	f := newFixture(t)
	c := f.sinkConfig()
	c.Table = "out"
	c.URL = f.pg.URL + "&search_path=nosuch_schema_x," + f.pg.Schema
	s, err := pgsink.Open(t.Context(), c, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
	var n int
	if err := f.conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'out'", f.pg.Schema).Scan(&n); err != nil || n != 1 {
		t.Fatalf("table in %s: %d, %v", f.pg.Schema, n, err)
	}
	c.URL = f.pg.URL + "&search_path=nosuch_schema_x"
	if s, err := pgsink.Open(t.Context(), c, nil); err == nil {
		s.Close()
		t.Fatal("Open with no schema on the search_path succeeded")
	} else if !strings.Contains(err.Error(), "no schema of the search_path") {
		t.Fatalf("Open: %v", err)
	}
}

// TestVerifyAFinishedTable: the table of a finished job is checked, not
// trusted: dropped or emptied since, it is reported.
func TestVerifyAFinishedTable(t *testing.T) {
	for _, change := range []string{"TRUNCATE %s", "DROP TABLE %s", "DELETE FROM %s WHERE n = 2"} {
		t.Run(strings.Fields(change)[0], func(t *testing.T) {
			f := newFixture(t)
			j, s := f.open(t, "job", ckpt.Config{})
			write(t, s, 0, 5)
			cp, err := j.Finish(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			j.Close()
			s.Close()
			if err := pgsink.Verify(t.Context(), f.sinkConfig(), cp.Sink); err != nil {
				t.Fatalf("Verify of the intact table: %v", err)
			}
			if _, err := f.conn.Exec(t.Context(), strings.Replace(change, "%s", f.table, 1)); err != nil {
				t.Fatal(err)
			}
			if err := pgsink.Verify(t.Context(), f.sinkConfig(), cp.Sink); !errors.Is(err, sink.ErrOutputChanged) {
				t.Fatalf("Verify after %s: %v, want ErrOutputChanged", change, err)
			}
		})
	}
}

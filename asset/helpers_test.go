package asset_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
	"github.com/ckptdev/ckpt/internal/testenv"
)

// quiet is a logger for tests: runs log every failure, which tests cause
// on purpose.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// counter counts compute calls by "key" or "key[partition]". Tests that
// span processes count in a file instead (see fileCounter).
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func newCounter() *counter { return &counter{n: map[string]int{}} }

func (c *counter) add(c2 *asset.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[name(c2.Key, c2.Partition)]++
}

// take returns the counts so far and starts again from zero.
func (c *counter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

func name(key, part string) string {
	if part == "" {
		return key
	}
	return key + "[" + part + "]"
}

// env is a store directory and an event log location that several
// instances (in this process or others) can open.
type env struct {
	store string
	log   string // "" means the default, assets.db in the store
	// pgSchema, when set, puts the event log in this PostgreSQL schema.
	pgSchema string
}

func newEnv(t testing.TB) env {
	return env{store: filepath.Join(t.TempDir(), "store")}
}

func (e env) config() asset.Config {
	cfg := asset.Config{Store: e.store, EventLog: e.log, Logger: quiet, HeartbeatInterval: 50 * time.Millisecond}
	if e.pgSchema != "" {
		cfg.EventLog = postgresURL()
		cfg.EventLogOptions.Schema = e.pgSchema
	}
	return cfg
}

// open opens an instance of g on e, closed when the test ends.
func (e env) open(t testing.TB, g *asset.Graph, mod ...func(*asset.Config)) *asset.Instance {
	t.Helper()
	cfg := e.config()
	for _, m := range mod {
		m(&cfg)
	}
	in, err := asset.Open(context.Background(), g, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

func postgresURL() string {
	if u := os.Getenv("CKPT_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// pgEnv returns an env whose event log is in a fresh PostgreSQL schema, or
// stops the test when no server answers.
func pgEnv(t testing.TB) env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", postgresURL())
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		testenv.Unavailable(t, "PostgreSQL at CKPT_POSTGRES_URL or 127.0.0.1:5432: %v", err)
	}
	var b [4]byte
	rand.Read(b[:])
	n := strings.ToLower(strings.NewReplacer("/", "_", "-", "_", "#", "_").Replace(t.Name()))
	if len(n) > 40 {
		n = n[:40]
	}
	schema := "t_" + n + "_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		db.Exec(`DROP SCHEMA IF EXISTS "` + schema + `" CASCADE`)
		db.Close()
	})
	e := newEnv(t)
	e.pgSchema = schema
	return e
}

// eventLogs runs f once per event log backend.
func eventLogs(t *testing.T, f func(t *testing.T, e env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnv(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, pgEnv(t)) })
}

// value loads the newest materialized value of key's partition.
func value[T any](t testing.TB, in *asset.Instance, key, part string) T {
	t.Helper()
	var v T
	if err := in.Load(context.Background(), key, part, &v); err != nil {
		t.Fatalf("load %s: %v", name(key, part), err)
	}
	return v
}

// counts turns a list of names into counts, for comparing with a counter.
func counts(names ...string) map[string]int {
	m := map[string]int{}
	for _, n := range names {
		m[n]++
	}
	return m
}

func sameCounts(t testing.TB, what string, got, want map[string]int) {
	t.Helper()
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var diffs []string
	for k := range keys {
		if got[k] != want[k] {
			diffs = append(diffs, fmt.Sprintf("%s: computed %d times, want %d", k, got[k], want[k]))
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s:\n  %s", what, strings.Join(diffs, "\n  "))
	}
}

// outcomes maps "key[partition]" to its outcome in r.
func outcomes(r *asset.Run) map[string]asset.Outcome {
	m := map[string]asset.Outcome{}
	for _, s := range r.Steps {
		m[name(s.Key, s.Partition)] = s.Outcome
	}
	return m
}

// states maps "key[partition]" to its state.
func states(t testing.TB, in *asset.Instance, sel string) map[string]asset.State {
	t.Helper()
	st, err := in.Status(context.Background(), asset.StatusOptions{Selection: sel})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]asset.State{}
	for _, a := range st {
		for _, p := range a.Partitions {
			m[name(a.Key, p.Partition)] = p.State
		}
	}
	return m
}

func runEvents(t testing.TB, in *asset.Instance, run string, kind eventlog.Kind) []eventlog.Event {
	t.Helper()
	evs, err := in.EventLog().Events(context.Background(), eventlog.EventFilter{Runs: []string{run}, Kinds: []eventlog.Kind{kind}})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// logAgrees checks that the steps of run read back from the event log
// (RunDetails) have the outcomes the run returned, and that the log has
// the steps named.
func logAgrees(t testing.TB, in *asset.Instance, run *asset.Run, want ...string) {
	t.Helper()
	d, err := in.RunDetails(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	logged := map[string]asset.Outcome{}
	for _, s := range d.Steps {
		logged[name(s.Key, s.Partition)] = s.Outcome
	}
	for _, k := range want {
		if _, ok := logged[k]; !ok {
			t.Errorf("run %s: the log has no step %s", run.ID, k)
		}
	}
	for _, s := range run.Steps {
		k := name(s.Key, s.Partition)
		if o, ok := logged[k]; ok && o != s.Outcome {
			t.Errorf("run %s: %s is %s in the run, %s in the log", run.ID, k, s.Outcome, o)
		}
	}
}

package eventlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ckptdev/ckpt"
)

func mat(run, key, part, version string) Event {
	return Event{RunID: run, Kind: KindMaterialization, Key: key, Partition: part,
		Materialization: &Materialization{DataVersion: version, Rows: 3, Value: &ckpt.StateRef{Name: key, Codec: "json", Compression: "zstd", Chunks: []ckpt.ChunkRef{}}}}
}

func TestRunsEventsAndState(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(Options) *Log) {
		ctx := context.Background()
		l := open(Options{})
		if err := l.CreateRun(ctx, Run{ID: "20260101T000000-aaaa", Host: "h", PID: 1, Spec: []byte(`{"selection":"all"}`)}); err != nil {
			t.Fatal(err)
		}
		const run = "20260101T000000-aaaa"
		l.Append(Event{RunID: run, Kind: KindStepStart, Key: "a"})
		l.Append(mat(run, "a", "", "v1"))
		l.Append(Event{RunID: run, Kind: KindStepStart, Key: "b", Partition: "p1"})
		l.Append(Event{RunID: run, Kind: KindStepFailure, Key: "b", Partition: "p1", Error: "boom"})
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		evs, err := l.Events(ctx, EventFilter{Runs: []string{run}})
		if err != nil {
			t.Fatal(err)
		}
		wantKinds := []Kind{KindStepStart, KindMaterialization, KindStepStart, KindStepFailure}
		if len(evs) != len(wantKinds) {
			t.Fatalf("got %d events, want %d", len(evs), len(wantKinds))
		}
		for i, e := range evs {
			if e.Kind != wantKinds[i] {
				t.Errorf("event %d is %s, want %s", i, e.Kind, wantKinds[i])
			}
			if i > 0 && e.ID <= evs[i-1].ID {
				t.Errorf("event ids do not increase: %d after %d", e.ID, evs[i-1].ID)
			}
		}
		if m := evs[1].Materialization; m == nil || m.DataVersion != "v1" || m.Value == nil || m.Value.Name != "a" {
			t.Errorf("materialization did not round-trip: %+v", m)
		}

		states, err := l.States(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(states) != 2 {
			t.Fatalf("got %d states, want 2: %+v", len(states), states)
		}
		if s := states[0]; s.Key != "a" || s.Failed() || s.Materialization == nil || s.Materialization.ID != evs[1].ID {
			t.Errorf("state of a: %+v", s)
		}
		if s := states[1]; s.Key != "b" || s.Partition != "p1" || !s.Failed() || s.Failure.Error != "boom" {
			t.Errorf("state of b[p1]: %+v", s)
		}

		// A later materialization of b[p1] makes it no longer failed.
		if err := l.Record(ctx, mat(run, "b", "p1", "v2")); err != nil {
			t.Fatal(err)
		}
		states, err = l.States(ctx, []string{"b"})
		if err != nil {
			t.Fatal(err)
		}
		if len(states) != 1 || states[0].Failed() || states[0].Materialization.Materialization.DataVersion != "v2" {
			t.Errorf("state of b after success: %+v", states)
		}

		if err := l.EndRun(ctx, run, RunFailure, "b failed"); err != nil {
			t.Fatal(err)
		}
		r, err := l.Run(ctx, "20260101T000000")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != RunFailure || r.Error != "b failed" || r.Ended.IsZero() || string(r.Spec) != `{"selection":"all"}` || r.Root != run {
			t.Errorf("run after EndRun: %+v", r)
		}
	})
}

func TestRunLookup(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(Options) *Log) {
		ctx := context.Background()
		l := open(Options{})
		for _, id := range []string{"r-100", "r-101", "r-2%x"} {
			if err := l.CreateRun(ctx, Run{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			id   string
			want string
			err  error
		}{
			{"r-100", "r-100", nil},
			{"r-2", "r-2%x", nil},
			{"r-10", "", ErrAmbiguous},
			{"r-2_", "", ErrNotFound}, // '_' is no wildcard
			{"zzz", "", ErrNotFound},
		}
		for _, c := range cases {
			r, err := l.Run(ctx, c.id)
			if !errors.Is(err, c.err) || r.ID != c.want {
				t.Errorf("Run(%q) = %q, %v; want %q, %v", c.id, r.ID, err, c.want, c.err)
			}
		}
	})
}

func TestResumedOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(Options) *Log) {
		ctx := context.Background()
		l := open(Options{})
		if err := l.CreateRun(ctx, Run{ID: "p"}); err != nil {
			t.Fatal(err)
		}
		if err := l.CreateRun(ctx, Run{ID: "c1", Parent: "p", Root: "p"}); err != nil {
			t.Fatal(err)
		}
		err := l.CreateRun(ctx, Run{ID: "c2", Parent: "p", Root: "p"})
		if !errors.Is(err, ErrAlreadyResumed) {
			t.Fatalf("second child: %v, want ErrAlreadyResumed", err)
		}
		if _, err := l.Run(ctx, "c2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the refused run was recorded: %v", err)
		}
		if err := l.CreateRun(ctx, Run{ID: "c3", Parent: "c1", Root: "p"}); err != nil {
			t.Fatal(err)
		}
		chain, err := l.Chain(ctx, "c3")
		if err != nil {
			t.Fatal(err)
		}
		if len(chain) != 3 || chain[0].ID != "c3" || chain[1].ID != "c1" || chain[2].ID != "p" {
			t.Errorf("chain: %+v", chain)
		}
	})
}

// TestConcurrentWriters has several handles (as several processes would)
// commit materializations of the same assets at once. Every event must be
// there once, and every asset's state must be its highest-id
// materialization, whatever order the writers committed in.
func TestConcurrentWriters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(Options) *Log) {
		ctx := context.Background()
		const writers, perWriter, keys = 4, 150, 5
		logs := make([]*Log, writers)
		for i := range logs {
			logs[i] = open(Options{BatchSize: 16})
			if err := logs[i].CreateRun(ctx, Run{ID: fmt.Sprintf("w%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w, l := range logs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run := fmt.Sprintf("w%d", w)
				for i := range perWriter {
					key := fmt.Sprintf("k%d", i%keys)
					l.Append(Event{RunID: run, Kind: KindStepStart, Key: key})
					e := mat(run, key, "", fmt.Sprintf("%s-%d", run, i))
					if i%10 == 0 {
						if err := l.Record(ctx, e); err != nil {
							errs <- err
							return
						}
					} else {
						l.Append(e)
					}
				}
				errs <- l.Flush(ctx)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		checkConsistent(t, logs[0], writers*perWriter*2, keys)
	})
}

// checkConsistent checks that the log holds want events with distinct ids
// and that each of the keys' state is its newest materialization.
func checkConsistent(t *testing.T, l *Log, want, keys int) {
	t.Helper()
	ctx := context.Background()
	evs, err := l.Events(ctx, EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != want {
		t.Fatalf("%d events in the log, want %d", len(evs), want)
	}
	newest := map[string]Event{}
	seen := map[int64]bool{}
	versions := map[string]bool{}
	for _, e := range evs {
		if seen[e.ID] {
			t.Fatalf("event id %d twice", e.ID)
		}
		seen[e.ID] = true
		if e.Kind == KindMaterialization {
			if versions[e.Materialization.DataVersion] {
				t.Fatalf("materialization %s recorded twice", e.Materialization.DataVersion)
			}
			versions[e.Materialization.DataVersion] = true
			newest[e.Key] = e // events come oldest first
		}
	}
	states, err := l.States(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != keys {
		t.Fatalf("%d states, want %d", len(states), keys)
	}
	for _, s := range states {
		n := newest[s.Key]
		if s.Materialization == nil || s.Materialization.ID != n.ID || s.Materialization.Materialization.DataVersion != n.Materialization.DataVersion {
			t.Errorf("state of %s is %+v, want event %d (%s)", s.Key, s.Materialization, n.ID, n.Materialization.DataVersion)
		}
	}
}

// TestConcurrentProcesses has real processes write one SQLite file at once.
func TestConcurrentProcesses(t *testing.T) {
	path := t.TempDir() + "/events.db"
	l, err := OpenSQLite(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const procs, perProc = 3, 200
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "EVENTLOG_WRITER="+path, "EVENTLOG_WRITER_ID="+strconv.Itoa(i), "EVENTLOG_WRITER_N="+strconv.Itoa(perProc))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("writer process: %v", err)
		}
	}
	checkConsistent(t, l, procs*perProc, 5)
}

// TestMain runs the body of a writer process of TestConcurrentProcesses
// when the test binary is started as one.
func TestMain(m *testing.M) {
	if path := os.Getenv("EVENTLOG_WRITER"); path != "" {
		if err := writerProcess(path); err != nil {
			fmt.Fprintln(os.Stderr, "writer process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func writerProcess(path string) error {
	ctx := context.Background()
	id, _ := strconv.Atoi(os.Getenv("EVENTLOG_WRITER_ID"))
	n, _ := strconv.Atoi(os.Getenv("EVENTLOG_WRITER_N"))
	l, err := OpenSQLite(ctx, path, Options{BatchSize: 8})
	if err != nil {
		return err
	}
	run := fmt.Sprintf("proc%d", id)
	if err := l.CreateRun(ctx, Run{ID: run, PID: os.Getpid()}); err != nil {
		return err
	}
	for i := range n {
		e := mat(run, fmt.Sprintf("k%d", i%5), "", fmt.Sprintf("%s-%d", run, i))
		if i%7 == 0 {
			if err := l.Record(ctx, e); err != nil {
				return err
			}
		} else {
			l.Append(e)
		}
	}
	return l.Close()
}

func TestFlushReportsFailure(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(Options) *Log) {
		ctx := context.Background()
		l := open(Options{})
		l.db.Close() // the database goes away under the log
		l.Append(Event{RunID: "r", Kind: KindMessage})
		if err := l.Flush(ctx); err == nil {
			t.Fatal("Flush succeeded with the database closed")
		}
		// The error is reported once; a later flush of nothing succeeds.
		if err := l.Flush(ctx); err != nil {
			t.Errorf("second Flush: %v", err)
		}
	})
}

func TestPrune(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(Options) *Log) {
		ctx := context.Background()
		l := open(Options{})
		old := time.Now().Add(-48 * time.Hour)
		for _, r := range []string{"old1", "old2", "new"} {
			if err := l.CreateRun(ctx, Run{ID: r}); err != nil {
				t.Fatal(err)
			}
		}
		l.Append(mat("old1", "a", "", "a1"))
		l.Append(mat("old1", "b", "", "b1"))
		l.Append(Event{RunID: "old1", Kind: KindStepStart, Key: "a"})
		l.Append(mat("old2", "a", "", "a2")) // newest of a: kept
		l.Append(mat("new", "c", "", "c1"))
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for _, r := range []string{"old1", "old2"} {
			if _, err := l.db.Exec(l.d.q(`UPDATE {p}asset_runs SET status = 'success', ended_us = ? WHERE run_id = ?`), micros(old), r); err != nil {
				t.Fatal(err)
			}
		}
		p, err := l.Prune(ctx, time.Now().Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// old1 loses a1 and its step start but keeps b1 (b's newest), so
		// the run stays; old2 keeps a2; nothing of "new" goes.
		if p.Events != 2 || p.Runs != 0 || len(p.Materializations) != 1 || p.Materializations[0].Materialization.DataVersion != "a1" {
			t.Errorf("pruned %+v", p)
		}
		evs, err := l.Events(ctx, EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 3 {
			t.Errorf("%d events left, want 3", len(evs))
		}
		// Once b is materialized again, old1 has nothing left and goes.
		if err := l.Record(ctx, mat("new", "b", "", "b2")); err != nil {
			t.Fatal(err)
		}
		p, err = l.Prune(ctx, time.Now().Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if p.Events != 1 || p.Runs != 1 {
			t.Errorf("second prune: %+v", p)
		}
		if _, err := l.Run(ctx, "old1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("old1 still there: %v", err)
		}
		if _, err := l.Run(ctx, "new"); err != nil {
			t.Errorf("run new: %v", err)
		}
	})
}

func TestAlive(t *testing.T) {
	host, _ := os.Hostname()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	lv := Liveness{DeadAfter: time.Minute, Now: now}
	cases := []struct {
		name string
		run  Run
		want bool
	}{
		{"this process", Run{Status: RunStarted, Host: host, PID: os.Getpid(), Heartbeat: now}, true},
		{"exited process", Run{Status: RunStarted, Host: host, PID: dead.Process.Pid, Heartbeat: now}, false},
		{"stale heartbeat", Run{Status: RunStarted, Host: host, PID: os.Getpid(), Heartbeat: now.Add(-2 * time.Minute)}, false},
		{"other host, recent", Run{Status: RunStarted, Host: host + "-other", PID: dead.Process.Pid, Heartbeat: now}, true},
		{"finished", Run{Status: RunSuccess, Host: host, PID: os.Getpid(), Heartbeat: now}, false},
		// A run is judged by the liveness settings it recorded, not by the
		// judge's.
		{"long interval of its own", Run{Status: RunStarted, Host: host + "-other", Heartbeat: now.Add(-2 * time.Minute), HeartbeatInterval: time.Minute}, true},
		{"long deadline of its own", Run{Status: RunStarted, Host: host, PID: os.Getpid(), Heartbeat: now.Add(-2 * time.Minute), DeadAfter: time.Hour}, true},
		{"six of its intervals missed", Run{Status: RunStarted, Host: host + "-other", Heartbeat: now.Add(-7 * time.Second), HeartbeatInterval: time.Second}, false},
		{"its own deadline passed", Run{Status: RunStarted, Host: host + "-other", Heartbeat: now.Add(-11 * time.Second), HeartbeatInterval: time.Second, DeadAfter: 10 * time.Second}, false},
	}
	for _, c := range cases {
		if got := c.run.Alive(lv); got != c.want {
			t.Errorf("%s: Alive = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(Options) *Log) {
		l := open(Options{})
		if _, err := l.db.Exec(l.d.q(`UPDATE {p}asset_meta SET v = '99' WHERE k = 'schema_version'`)); err != nil {
			t.Fatal(err)
		}
		var err error
		if l.d.name == "sqlite" {
			_, err = OpenSQLite(context.Background(), l.url[len("sqlite:"):], Options{})
		} else {
			_, err = OpenPostgres(context.Background(), postgresURL(), Options{Schema: l.opts.Schema})
		}
		if err == nil || !strings.Contains(err.Error(), "newer ckpt") {
			t.Fatalf("opening a log of a newer schema: %v, want a refusal", err)
		}
	})
}

// TestStatesOrder: States returns states ordered by key and partition, in
// byte order, also when it reads them in several queries (more than 500
// keys) and whatever order the keys are asked in.
func TestStatesOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(Options) *Log) {
		ctx := context.Background()
		l := open(Options{})
		var keys []string
		n := 0
		for i := range 510 {
			// Mixed case and punctuation, which a collation may order
			// otherwise than bytes do.
			k := fmt.Sprintf("%c_k-%03d", "Aab"[i%3], 509-i)
			keys = append(keys, k)
			l.Append(mat("r", k, "", "v"))
			n++
			if i%50 == 0 {
				l.Append(mat("r", k, "p", "v"))
				n++
			}
		}
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for _, ask := range [][]string{nil, keys} {
			states, err := l.States(ctx, ask)
			if err != nil {
				t.Fatal(err)
			}
			if len(states) != n {
				t.Fatalf("%d states, want %d", len(states), n)
			}
			for i := 1; i < len(states); i++ {
				a, b := states[i-1], states[i]
				if a.Key > b.Key || a.Key == b.Key && a.Partition >= b.Partition {
					t.Fatalf("asked for %d keys: state %d (%s[%s]) comes after %s[%s]", len(ask), i, b.Key, b.Partition, a.Key, a.Partition)
				}
			}
		}
	})
}

// TestSearchPathSchemaCreated: a PostgreSQL log whose URL names a
// search_path schema that does not exist yet creates it, as Options.Schema
// does, and keeps its tables there.
func TestSearchPathSchemaCreated(t *testing.T) {
	ctx := context.Background()
	schema := testSchema(t)
	u := postgresURL() + "&search_path=" + schema
	if !strings.Contains(postgresURL(), "?") {
		u = postgresURL() + "?search_path=" + schema
	}
	l, err := Open(ctx, u, Options{})
	if err != nil {
		t.Fatalf("open with search_path=%s: %v", schema, err)
	}
	defer l.Close()
	if err := l.CreateRun(ctx, Run{ID: "r1"}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM "`+schema+`".asset_runs`).Scan(&n); err != nil || n != 1 {
		t.Errorf("runs in schema %s: %d, %v; want 1", schema, n, err)
	}
}

func TestFirstSchema(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"Events":            "events",
		`"$user", public`:   "public",
		`$user,Mine`:        "mine",
		` "My ""x"" s" , b`: `My "x" s`,
		`"", , "a,b"`:       "a,b",
		`"$user"`:           "",
	} {
		if got := firstSchema(in); got != want {
			t.Errorf("firstSchema(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUpgradeFromSchema1: a log of the first schema (no liveness settings
// in its runs; a fresh step recorded as a skip) is upgraded when opened.
func TestUpgradeFromSchema1(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(Options) *Log) {
		ctx := context.Background()
		l := open(Options{})
		if err := l.CreateRun(ctx, Run{ID: "old"}); err != nil {
			t.Fatal(err)
		}
		if err := l.Record(ctx, Event{RunID: "old", Kind: KindStepFresh, Key: "a", Message: "x"}); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`ALTER TABLE {p}asset_runs DROP COLUMN heartbeat_interval_us`,
			`ALTER TABLE {p}asset_runs DROP COLUMN dead_after_us`,
			`UPDATE {p}asset_events SET kind = 'step_skipped', body = '{"run_id":"old","time":"2026-01-01T00:00:00Z","kind":"step_skipped","key":"a","message":"fresh: its upstream kept the data versions it was computed from"}'`,
			`UPDATE {p}asset_meta SET v = '1' WHERE k = 'schema_version'`,
		} {
			if _, err := l.db.ExecContext(ctx, l.d.q(q)); err != nil {
				t.Fatal(err)
			}
		}
		l = open(Options{})
		if err := l.CreateRun(ctx, Run{ID: "new", HeartbeatInterval: time.Second, DeadAfter: time.Minute}); err != nil {
			t.Fatal(err)
		}
		r, err := l.Run(ctx, "new")
		if err != nil || r.HeartbeatInterval != time.Second || r.DeadAfter != time.Minute {
			t.Errorf("run after the upgrade: %+v, %v", r, err)
		}
		evs, err := l.Events(ctx, EventFilter{Runs: []string{"old"}})
		if err != nil || len(evs) != 1 || evs[0].Kind != KindStepFresh || evs[0].Kind.Outcome() != OutcomeFresh {
			t.Errorf("events of the old run: %+v, %v; want one %s", evs, err, KindStepFresh)
		}
	})
}

// damageIndex halves the entry count of a leaf page of the index of
// events by run in the SQLite file of l, so that the index still parses
// but no longer lists every event, or (offEnd) makes the cells of its
// root page run off the page, which reads fail on.
func damageIndex(t *testing.T, l *Log, path string, offEnd bool) {
	t.Helper()
	var root, size int64
	if err := l.db.QueryRow(`SELECT rootpage FROM sqlite_master WHERE name = 'asset_events_run'`).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := l.db.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	if _, err := l.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, size)
	if _, err := f.ReadAt(page, (root-1)*size); err != nil {
		t.Fatal(err)
	}
	if page[0] != 2 {
		t.Fatalf("the index's root page is of type %d, want an interior page (2): add events", page[0])
	}
	if offEnd {
		for i := len(page) - 60; i < len(page)-20; i++ {
			page[i] ^= 0x5a
		}
		if _, err := f.WriteAt(page, (root-1)*size); err != nil {
			t.Fatal(err)
		}
		return
	}
	leaf := int64(page[8])<<24 | int64(page[9])<<16 | int64(page[10])<<8 | int64(page[11]) // its rightmost child
	if _, err := f.ReadAt(page, (leaf-1)*size); err != nil {
		t.Fatal(err)
	}
	n := (int(page[3])<<8 | int(page[4])) / 2
	page[3], page[4] = byte(n>>8), byte(n)
	if _, err := f.WriteAt(page, (leaf-1)*size); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedIndexDetected: a SQLite log whose index lost entries (it
// would hide events from every query that uses it) is refused when opened,
// with ErrCorrupt and a message that names the index and what to do.
func TestDamagedIndexDetected(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	l, err := OpenSQLite(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		l.Append(mat("r", fmt.Sprintf("k%d", i%50), "", strconv.Itoa(i)))
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	damageIndex(t, l, path, false)
	l.Close()
	l, err = OpenSQLite(ctx, path, Options{})
	if err == nil {
		evs, _ := l.Events(ctx, EventFilter{Runs: []string{"r"}})
		l.Close()
		t.Fatalf("a damaged log opened (and shows %d of 2000 events)", len(evs))
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "asset_events_run") || !strings.Contains(err.Error(), "REINDEX") {
		t.Errorf("opening a damaged log: %v; want ErrCorrupt naming the index and the repair", err)
	}
}

// TestDamageFoundByARead: damage that appears after the log was opened
// fails the read that finds it with ErrCorrupt.
func TestDamageFoundByARead(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	l, err := OpenSQLite(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 2000 {
		l.Append(mat("r", fmt.Sprintf("k%d", i%50), "", strconv.Itoa(i)))
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l.db.SetMaxIdleConns(0) // every query reads the file afresh
	damageIndex(t, l, path, true)
	if _, err := l.Events(ctx, EventFilter{Runs: []string{"r"}}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("reading through a damaged index: %v, want ErrCorrupt", err)
	}
}

// TestBatchTiming: a queued event is committed by the writer on its own
// when the batch is full or FlushInterval after it was queued, and not
// before (on a fake clock: no wall-clock wait).
func TestBatchTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "events.db")
		l, err := OpenSQLite(ctx, path, Options{BatchSize: 10, FlushInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		visible := func() int64 {
			t.Helper()
			n, err := l.Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		l.Append(Event{RunID: "r", Kind: KindMessage, Message: "first"})
		time.Sleep(time.Hour - time.Second)
		synctest.Wait()
		if n := visible(); n != 0 {
			t.Fatalf("%d events committed before FlushInterval, want 0", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := visible(); n != 1 {
			t.Fatalf("%d events committed FlushInterval after the first, want 1", n)
		}
		for i := range 9 {
			l.Append(Event{RunID: "r", Kind: KindMessage, Message: strconv.Itoa(i)})
		}
		synctest.Wait()
		if n := visible(); n != 1 {
			t.Fatalf("%d events committed with 9 queued, want 1", n)
		}
		l.Append(Event{RunID: "r", Kind: KindMessage, Message: "9"})
		synctest.Wait()
		if n := visible(); n != 11 {
			t.Fatalf("%d events committed once the batch is full, want 11", n)
		}
	})
}

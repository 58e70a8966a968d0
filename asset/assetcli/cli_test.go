package assetcli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/assetcli"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

// graph: a source, a daily-partitioned asset of it, and a summary of every
// partition. fail makes the partition it names fail.
func graph(fail *atomic.Value) *asset.Graph {
	days := asset.DailyPartitions(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).Until(time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC))
	g := asset.New()
	src := asset.Define(g, asset.Spec{Key: "src", CodeVersion: "1", Description: "numbers"}, func(c *asset.Context) ([]int, error) {
		return []int{1, 2, 3}, nil
	})
	day := asset.Define1(g, asset.Spec{Key: "day", CodeVersion: "1", Partitions: days}, src, func(c *asset.Context, v []int) (int, error) {
		if f, _ := fail.Load().(string); f == c.Partition {
			return 0, errors.New("boom")
		}
		return len(v) * c.WindowStart.Day(), nil
	})
	asset.Define1(g, asset.Spec{Key: "sum", CodeVersion: "1"}, asset.AllPartitions(day), func(c *asset.Context, m map[string]int) (int, error) {
		s := 0
		for _, v := range m {
			s += v
		}
		return s, nil
	})
	return g
}

type cli struct {
	t     *testing.T
	g     *asset.Graph
	store string
}

func newCLI(t *testing.T, fail *atomic.Value) *cli {
	return &cli{t: t, g: graph(fail), store: filepath.Join(t.TempDir(), "store")}
}

// run runs the commands in-process and returns the exit code and output.
func (c *cli) run(args ...string) (int, string, string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--store", c.store)
	code := assetcli.Run(context.Background(), c.g, assetcli.Options{Name: "prog"}, args, &out, &errb)
	return code, out.String(), errb.String()
}

func (c *cli) ok(args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != 0 {
		c.t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// contains checks that got has each of wants, comparing runs of spaces
// as one (tables pad columns to their widest cell).
func contains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	squeeze := func(s string) string { return spaces.ReplaceAllString(s, " ") }
	for _, w := range wants {
		if !strings.Contains(squeeze(got), squeeze(w)) {
			t.Errorf("%s: want %q in\n%s", what, w, got)
		}
	}
}

var spaces = regexp.MustCompile(` +`)

var runID = regexp.MustCompile(`run (\d{8}T\d{6}-[0-9a-f]{8})`)

func TestMaterializeFailResume(t *testing.T) {
	var fail atomic.Value
	fail.Store("2026-01-02")
	c := newCLI(t, &fail)

	contains(t, "list", c.ok("assets", "list"), "src", "day", "daily from 2026-01-01", "sum", "numbers")
	contains(t, "status before", c.ok("assets", "status"), "src      missing", "0 fresh, 0 stale, 3 missing, 0 failed")

	code, out, errs := c.run("assets", "materialize")
	if code != assetcli.ExitError {
		t.Fatalf("a failing run: exit %d, want %d\n%s%s", code, assetcli.ExitError, out, errs)
	}
	contains(t, "failing run", out, "materialized  src", "FAILED        day[2026-01-02]: boom", "skipped       sum", "1 failed, 1 skipped")
	m := runID.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no run id in %s", out)
	}
	id := m[1]
	contains(t, "failing run's stderr", errs, "resume it with: prog runs resume "+id)

	contains(t, "status after", c.ok("assets", "status", "--partitions"), "2 fresh, 0 stale, 0 missing, 1 failed", "2026-01-02 failed", "sum missing - - never materialized")
	contains(t, "runs list", c.ok("runs", "list"), id, "failure")
	contains(t, "runs show", c.ok("runs", "show", id[:12]), "state      failure", "3 materialized, 1 failed, 1 skipped", "day    2026-01-02  failed")

	fail.Store("")
	out = c.ok("runs", "resume", "last")
	contains(t, "resume", out, "materialized  day[2026-01-02]", "materialized  sum", "success: 2 materialized, 3 reused")
	if strings.Contains(out, "materialized  src") {
		t.Errorf("resume computed src again:\n%s", out)
	}
	contains(t, "show the resumed run", c.ok("runs", "show", "last", "--steps"), "resumes    "+id, "src    -           reused")
	contains(t, "history", c.ok("assets", "history", "day", "-p", "2026-01-02"), "materialization", "step_failure", "boom")

	out = c.ok("assets", "status", "--json")
	var st []asset.AssetStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	for _, a := range st {
		if a.State != asset.StateFresh {
			t.Errorf("%s is %s after the resume", a.Key, a.State)
		}
	}
	contains(t, "--stale with everything fresh", c.ok("assets", "materialize", "--stale"), "nothing to do")
	// A run whose chain succeeded is done: resuming it says so and exits 0,
	// as a finished job does.
	code, out, errs = c.run("runs", "resume", id)
	if code != assetcli.ExitOK || !strings.Contains(out, "nothing to resume") {
		t.Errorf("resume a finished run: exit %d, stdout %q, stderr %q; want 0 and nothing to resume", code, out, errs)
	}
}

func TestMaterializePartitionsAndDryRun(t *testing.T) {
	var fail atomic.Value
	c := newCLI(t, &fail)
	out := c.ok("assets", "materialize", "*day", "-p", "2026-01-02...2026-01-03", "--dry-run")
	if strings.TrimSpace(out) != "src\nday[2026-01-02]\nday[2026-01-03]\n3 steps to compute" {
		t.Errorf("dry run printed:\n%s", out)
	}
	out = c.ok("assets", "materialize", "*day", "-p", "2026-01-02...2026-01-03")
	contains(t, "partition range", out, "day[2026-01-02]", "day[2026-01-03]", "3 materialized")
	if strings.Contains(out, "2026-01-01") {
		t.Errorf("materialized a partition not asked for:\n%s", out)
	}
	contains(t, "status -p", c.ok("assets", "status", "day", "-p", "2026-01-01"), "2026-01-01  missing")
	out = c.ok("assets", "materialize", "--stale", "--json")
	var run asset.Run
	if err := json.Unmarshal([]byte(out), &run); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if run.Steps.Count(asset.OutcomeMaterialized) != 2 {
		t.Errorf("--stale materialized %d, want day[2026-01-01] and sum", run.Steps.Count(asset.OutcomeMaterialized))
	}
}

func TestLineage(t *testing.T) {
	var fail atomic.Value
	c := newCLI(t, &fail)
	out := c.ok("assets", "lineage")
	contains(t, "lineage", out, "src\n  -> day", "day  [daily from 2026-01-01 until 2026-01-04]\n  <- src\n  -> sum", "sum\n  <- day")
	out = c.ok("assets", "lineage", "--dot", "day+")
	contains(t, "dot", out, "digraph assets {", `"day" -> "sum";`, `"sum" [label="sum"];`)
	if strings.Contains(out, `"src"`) {
		t.Errorf("dot of day+ shows src:\n%s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	var fail atomic.Value
	c := newCLI(t, &fail)
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"assets", "materialize", "nope"}, assetcli.ExitUsage, `unknown asset: "nope"`},
		{[]string{"assets", "materialize", "-p", "2027-01-01"}, assetcli.ExitUsage, `partition "2027-01-01" is not a partition`},
		{[]string{"assets", "status", "--bogus"}, assetcli.ExitUsage, "unknown flag"},
		{[]string{"runs", "show", "nope"}, assetcli.ExitError, "not found"},
		{[]string{"runs", "prune"}, assetcli.ExitUsage, "--older-than is required"},
		{[]string{"runs", "list", "--status", "odd"}, assetcli.ExitUsage, "--status"},
		{[]string{"assets", "status", "--log-level", "loud"}, assetcli.ExitUsage, "--log-level"},
		{[]string{"runs", "show"}, assetcli.ExitUsage, "accepts 1 arg(s), received 0"},
		{[]string{"runs", "resume", "a", "b"}, assetcli.ExitUsage, "accepts 1 arg(s), received 2"},
		{[]string{"assets", "status", "src", "day"}, assetcli.ExitUsage, "accepts at most 1 arg(s)"},
		{[]string{"assets", "bogus"}, assetcli.ExitUsage, `unknown command "bogus"`},
		{[]string{"assets", "history", "src+"}, assetcli.ExitUsage, `history takes one asset's key, not a selection: "src+"`},
	}
	for _, tc := range cases {
		code, _, errs := c.run(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
	// An unknown command of the program itself (without --store, which
	// only the assets and runs commands take).
	var out, errb bytes.Buffer
	if code := assetcli.Run(context.Background(), c.g, assetcli.Options{Name: "prog"}, []string{"bogus"}, &out, &errb); code != assetcli.ExitUsage || !strings.Contains(errb.String(), `unknown command "bogus" for "prog"`) {
		t.Errorf("prog bogus: exit %d, stderr %q; want %d and an unknown command", code, errb.String(), assetcli.ExitUsage)
	}
	if code := assetcli.Run(context.Background(), c.g, assetcli.Options{Name: "prog"}, nil, &out, &errb); code != assetcli.ExitOK || !strings.Contains(out.String(), "Available Commands") {
		t.Errorf("prog alone: exit %d, stdout %q; want the help", code, out.String())
	}
}

func TestPrune(t *testing.T) {
	var fail atomic.Value
	c := newCLI(t, &fail)
	c.ok("assets", "materialize")
	c.ok("assets", "materialize")
	// Nothing ended an hour ago yet; everything ended before now.
	contains(t, "prune nothing", c.ok("runs", "prune", "--older-than", "1h"), "removed 0 events and 0 runs")
	// Both runs ended before the prune starts: a cutoff of 1ns ago takes
	// them (times are recorded in microseconds, and opening the log alone
	// takes longer).
	out := c.ok("runs", "prune", "--older-than", "1ns", "--values", "--json")
	var res asset.Pruned
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	// The first run's 5 materializations and 5 step starts go, and so does
	// the run; the second run keeps its materializations (the newest) and
	// loses its 5 step starts.
	if res.Runs != 1 || res.Events != 15 {
		t.Errorf("pruned %+v", res)
	}
	contains(t, "status after prune", c.ok("assets", "status"), "src      fresh", "3 fresh")
}

// TestStaticPartitionRange: a range of static partitions follows their
// order, not the keys' alphabetical one, in status as in materialize.
func TestStaticPartitionRange(t *testing.T) {
	g := asset.New()
	regions := asset.StaticPartitions("us", "eu", "asia")
	asset.Define(g, asset.Spec{Key: "sales", Partitions: regions}, func(c *asset.Context) (int, error) { return len(c.Partition), nil })
	c := &cli{t: t, g: g, store: filepath.Join(t.TempDir(), "store")}
	out := c.ok("assets", "materialize", "-p", "us...eu")
	contains(t, "materialize a range", out, "sales[us]", "sales[eu]", "2 materialized")
	out = c.ok("assets", "status", "-p", "us...eu")
	contains(t, "status of a range", out, "us fresh", "eu fresh")
	if strings.Contains(out, "\n  asia") {
		t.Errorf("status -p us...eu lists asia:\n%s", out)
	}
	out = c.ok("assets", "status", "-p", "eu...asia,us")
	contains(t, "status of a range and a key", out, "us fresh", "eu fresh", "asia missing")
}

// TestLineageDotLabel: a partitioned asset's label has its partitions on a
// second line, a newline for Graphviz, not a backslash and an n.
func TestLineageDotLabel(t *testing.T) {
	var fail atomic.Value
	c := newCLI(t, &fail)
	out := c.ok("assets", "lineage", "--dot", "day")
	contains(t, "dot label", out, `"day" [label="day\ndaily from 2026-01-01 until 2026-01-04"];`)
}

// TestRunsListDead: --status dead with --limit finds dead runs older than
// the newest running ones (the log records both as started).
func TestRunsListDead(t *testing.T) {
	var fail atomic.Value
	c := newCLI(t, &fail)
	l, err := eventlog.OpenSQLite(context.Background(), filepath.Join(c.store, "assets.db"), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	now := time.Now()
	for _, r := range []eventlog.Run{
		{ID: "20260101T000000-dead0001", Host: host, PID: dead.Process.Pid, Created: now.Add(-time.Minute)},
		{ID: "20260101T000001-live0001", Host: host, PID: os.Getpid(), Created: now},
	} {
		if err := l.CreateRun(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	out := c.ok("runs", "list", "--status", "dead", "--limit", "1")
	contains(t, "dead runs", out, "20260101T000000-dead0001 dead")
	out = c.ok("runs", "list", "--status", "running", "--limit", "1")
	contains(t, "running runs", out, "20260101T000001-live0001 running")
	if strings.Contains(out, "dead0001") {
		t.Errorf("--status running lists a dead run:\n%s", out)
	}
}

// TestEmptyEventLogBesideValues: an event log that is empty while the
// store holds values (a mistyped --events creates a new one) is reported,
// not taken for "everything missing".
func TestEmptyEventLogBesideValues(t *testing.T) {
	g := asset.New()
	asset.Define(g, asset.Spec{Key: "big"}, func(c *asset.Context) (string, error) {
		b := make([]byte, 64<<10) // larger than what the log keeps inline
		rand.Read(b)
		return hex.EncodeToString(b), nil
	})
	c := &cli{t: t, g: g, store: filepath.Join(t.TempDir(), "store")}
	c.ok("assets", "materialize")
	wrong := filepath.Join(t.TempDir(), "events.db")
	for _, args := range [][]string{{"assets", "status"}, {"runs", "list"}, {"runs", "resume", "last"}} {
		code, out, errs := c.run(append(args, "--events", wrong)...)
		if code != assetcli.ExitError || !strings.Contains(errs, "the event log at sqlite:"+wrong+" is empty but the store") || !strings.Contains(errs, "--events") {
			t.Errorf("%v with an empty event log: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errs)
		}
	}
	code, out, errs := c.run("assets", "materialize", "--events", wrong)
	if code != assetcli.ExitOK || !strings.Contains(errs, "warning: the event log at") {
		t.Errorf("materialize with an empty event log: exit %d\nstdout:\n%s\nstderr:\n%s; want it done, with a warning", code, out, errs)
	}
	// With the right log, nothing to say.
	if _, _, errs := c.run("assets", "status"); errs != "" {
		t.Errorf("status with the right log printed %q on stderr", errs)
	}
}

// TestHelp: every command has --help; an unknown command is reported as
// one, also with --help or after "help".
func TestHelp(t *testing.T) {
	var fail atomic.Value
	c := newCLI(t, &fail)
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"assets", "--help"}, {"runs", "-h"}, {"help", "assets", "materialize"},
		{"assets", "list", "-h"}, {"assets", "status", "-h"}, {"assets", "materialize", "-h"}, {"assets", "history", "-h"}, {"assets", "lineage", "-h"},
		{"runs", "list", "-h"}, {"runs", "show", "-h"}, {"runs", "resume", "-h"}, {"runs", "prune", "-h"},
	} {
		var out, errb bytes.Buffer
		code := assetcli.Run(context.Background(), c.g, assetcli.Options{Name: "prog"}, args, &out, &errb)
		if code != assetcli.ExitOK || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want the help", args, code, out.String(), errb.String())
		}
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"bogus", "--help"}, `unknown command "bogus" for "prog"`},
		{[]string{"help", "bogus"}, `unknown command "bogus" for "prog"`},
		{[]string{"assets", "bogus", "-h"}, `unknown command "bogus" for "prog assets"`},
		{[]string{"runs", "--store", "x", "bogus"}, `unknown command "bogus" for "prog runs"`},
	} {
		var out, errb bytes.Buffer
		code := assetcli.Run(context.Background(), c.g, assetcli.Options{Name: "prog"}, tc.args, &out, &errb)
		if code != assetcli.ExitUsage || !strings.Contains(errb.String(), tc.msg) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out.String(), errb.String(), assetcli.ExitUsage, tc.msg)
		}
	}
}

// TestMessagesForPeople: errors carry no package prefixes, and counts
// their right plural.
func TestMessagesForPeople(t *testing.T) {
	g := asset.New()
	asset.Define(g, asset.Spec{Key: "one"}, func(c *asset.Context) (int, error) { return 1, nil })
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, g: g, store: file}
	_, _, errs := c.run("assets", "status")
	if !strings.Contains(errs, "is not a directory") {
		t.Errorf("a store that is a file: %q", errs)
	}
	for _, p := range []string{"asset:", "eventlog:", "ckpt:", "filestore:", "store:"} {
		if strings.Contains(errs, p) {
			t.Errorf("the message has the package prefix %q: %s", p, errs)
		}
	}
	c.store = filepath.Join(t.TempDir(), "store")
	contains(t, "dry run of one", c.ok("assets", "materialize", "--dry-run"), "1 step to compute")
	c.ok("assets", "materialize")
	contains(t, "runs show of one", c.ok("runs", "show", "last"), "1 step planned: 1 materialized")
}

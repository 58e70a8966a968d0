package crashtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/crashtest"
)

// binDir holds the programs the tests build, once per test binary.
var (
	binDir   string
	binMu    sync.Mutex
	binBuilt = map[string]string{}
)

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "crashtest-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// build compiles the Go package pkg (a path relative to this package) and
// returns the binary.
func build(t *testing.T, pkg string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if b, ok := binBuilt[pkg]; ok {
		return b
	}
	out := filepath.Join(binDir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	binBuilt[pkg] = out
	return out
}

// moduleRoot is the directory of go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// lines writes n CSV rows to dir/name.
func lines(t *testing.T, dir, name string, n int) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%d,item-%d,%d.%02d\n", i, i%7, i*13%1000, i%100)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, cfg crashtest.Config) *crashtest.Report {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	rep, err := crashtest.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("crashtest.Run: %v", err)
	}
	t.Logf("report:\n%s", rep)
	return rep
}

// The hand-written checkpoint-file program loses or repeats rows after a
// kill; the harness must find that within its default number of trials.
func TestNaiveCheckpointFileFails(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill loop of a Python program: seconds per run")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	work := t.TempDir()
	// Enough rows that processing them, not the interpreter's start,
	// fills most of the reference run: kills during the start find
	// nothing to break.
	lines(t, work, "data.csv", 10000)
	naive, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", "crashtest", "naive.py"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "naive.py"), naive, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := crashtest.Config{
		Command: []string{"python3", "naive.py", "data.csv", "out.txt"},
		Workdir: work,
		Compare: []string{"out.txt"},
	}
	rep := run(t, cfg)
	if !rep.Failed() || rep.Nondeterministic != nil {
		t.Fatalf("the naive program passed %d trials", len(rep.Trials))
	}
	f := rep.FirstFailure()
	if f.Outcome == crashtest.OutcomeMismatch && (f.Difference == nil || f.Difference.Path != "out.txt") {
		t.Errorf("difference = %+v, want one in out.txt", f.Difference)
	}
	if f.Runs[0].KillAfter > 0 && f.Runs[0].Interrupted && rep.MinFailingKill <= 0 {
		t.Errorf("no smallest failing kill time was searched")
	}
	if len(rep.Phases) != 0 {
		t.Errorf("phases %v reported for a program that announces none", rep.Phases)
	}
}

// A program whose output changes from run to run is reported as such, and
// not as a crash fault.
func TestNondeterministicCommand(t *testing.T) {
	rep := run(t, crashtest.Config{
		Command: []string{"sh", "-c", "echo start > out.txt; date +%s%N >> out.txt"},
		Compare: []string{"out.txt"},
		Kills:   3,
	})
	if rep.Nondeterministic == nil {
		t.Fatal("the command was not reported nondeterministic")
	}
	if d := rep.Nondeterministic; d.Path != "out.txt" || d.Line != 2 || d.Offset < 6 {
		t.Errorf("difference = %+v, want out.txt line 2", d)
	}
	if len(rep.Trials) != 0 {
		t.Errorf("%d trials run against a nondeterministic reference", len(rep.Trials))
	}
	if !rep.Failed() || !strings.Contains(rep.String(), "NONDETERMINISTIC") {
		t.Errorf("report does not say it:\n%s", rep)
	}
}

// A normalizer makes an output whose order is free comparable.
func TestNormalizeMakesFreeOrderComparable(t *testing.T) {
	cmd := []string{"sh", "-c", `if [ $(( $(date +%N | sed 's/^0*//;s/^$/0/') % 2 )) = 0 ]; then printf 'a\nb\n'; else printf 'b\na\n'; fi > out.txt`}
	rep := run(t, crashtest.Config{Command: cmd, Compare: []string{"out.txt"}, Normalize: "sort", Kills: 2})
	if rep.Failed() {
		t.Fatalf("sorted outputs differ:\n%s", rep)
	}
}

// A ckpt-style sink that truncates its output to the checkpoint's length
// on resume survives every kill; the same program without the truncation
// duplicates lines, and the harness finds it, also when killing exactly at
// the phase boundaries the program announces.
func TestSinkTruncationOnResume(t *testing.T) {
	bin := build(t, "./testdata/ckptsink")
	work := t.TempDir()
	lines(t, work, "in.csv", 2000)
	kills := 12
	if testing.Short() {
		kills = 6
	}
	for _, broken := range []bool{false, true} {
		t.Run(fmt.Sprintf("broken=%v", broken), func(t *testing.T) {
			cmd := []string{bin, "in.csv", "{dir}/out.txt"}
			if broken {
				cmd = []string{bin, "-broken", "in.csv", "{dir}/out.txt"}
			}
			rep := run(t, crashtest.Config{Command: cmd, Workdir: work, Compare: []string{"out.txt"}, Kills: kills, Shrink: -1})
			for _, p := range []string{"state-captured", "blobs-written", "manifest-committed"} {
				if _, ok := rep.Phases[p]; !ok {
					t.Errorf("phase %s not reported; phases = %v", p, rep.Phases)
				}
			}
			covered := 0
			for _, n := range rep.Phases {
				covered += n
			}
			if covered == 0 {
				t.Errorf("no trial was killed at a phase boundary")
			}
			if broken != rep.Failed() {
				t.Fatalf("broken=%v but failed=%v", broken, rep.Failed())
			}
			if broken {
				if d := rep.FirstFailure().Difference; d == nil || d.Path != "out.txt" || d.GotSize <= d.WantSize {
					t.Errorf("difference = %+v, want out.txt longer than the reference", d)
				}
			}
		})
	}
}

// KillAt replays given kill times with no kills during recovery.
func TestKillAtReplays(t *testing.T) {
	bin := build(t, "./testdata/ckptsink")
	work := t.TempDir()
	lines(t, work, "in.csv", 500)
	rep := run(t, crashtest.Config{
		Command:  []string{bin, "-broken", "in.csv", "out.txt"},
		Workdir:  work,
		Compare:  []string{"out.txt"},
		KillAt:   []time.Duration{5 * time.Millisecond, 20 * time.Millisecond},
		NoPhases: true,
	})
	if len(rep.Trials) != 2 {
		t.Fatalf("%d trials, want 2", len(rep.Trials))
	}
	for _, tr := range rep.Trials {
		if got := tr.Runs[0].KillAfter; got != 5*time.Millisecond && got != 20*time.Millisecond {
			t.Errorf("trial %d killed after %s", tr.Index, got)
		}
		for _, r := range tr.Runs[1:] {
			if r.KillAfter != 0 {
				t.Errorf("trial %d: a rerun was killed: %+v", tr.Index, r)
			}
		}
	}
	if len(rep.Phases) != 0 {
		t.Errorf("phases reported with NoPhases: %v", rep.Phases)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []crashtest.Config{
		{},
		{Command: []string{"true"}},
		{Command: []string{"true"}, Compare: []string{"x"}, Signal: "HUP"},
		{Command: []string{"true"}, Compare: []string{"x"}, Kills: -1},
		{Command: []string{"true"}, Compare: []string{"x"}, Workdir: "/does/not/exist"},
	} {
		if _, err := crashtest.Run(context.Background(), cfg); !errors.Is(err, crashtest.ErrConfig) {
			t.Errorf("Run(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
}

// A reference run that fails is an error, with the program's output.
func TestFailingReference(t *testing.T) {
	_, err := crashtest.Run(context.Background(), crashtest.Config{
		Command: []string{"sh", "-c", "echo no input here >&2; exit 3"},
		Compare: []string{"out.txt"},
	})
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "no input here") {
		t.Fatalf("err = %v", err)
	}
}

// A compare path the uninterrupted run does not write is a mistake in the
// configuration, not a pass.
func TestComparePathMissing(t *testing.T) {
	_, err := crashtest.Run(context.Background(), crashtest.Config{
		Command: []string{"sh", "-c", "echo x > out.txt"},
		Compare: []string{"output.txt"},
	})
	if err == nil || !strings.Contains(err.Error(), "did not write output.txt") {
		t.Fatalf("err = %v", err)
	}
}

// A window of microseconds that random kills almost never hit is hit by
// the kills at the phases the program announces, every time: the program
// waits at the announcement until the harness lets it go on or kills it.
func TestPhaseKillsHitNarrowWindows(t *testing.T) {
	bin := build(t, "./testdata/ckptsink")
	work := t.TempDir()
	lines(t, work, "in.csv", 1000)
	rep := run(t, crashtest.Config{
		Command: []string{bin, "-inplace", "in.csv", "out.txt"},
		Workdir: work,
		Compare: []string{"out.txt"},
		// Every second trial kills at a phase, cycling through
		// state-captured and state-truncated: 4 at the latter.
		Kills:  16,
		Shrink: -1,
	})
	if n := rep.Phases["state-truncated"]; n < 3 {
		t.Fatalf("%d trials killed at state-truncated: %v", n, rep.Phases)
	}
	for _, tr := range rep.Trials {
		if tr.Runs[0].Phase != "state-truncated" {
			continue
		}
		if tr.Outcome != crashtest.OutcomeRunFailed || !strings.Contains(tr.Runs[len(tr.Runs)-1].Output, "state.json") {
			t.Errorf("trial %d killed at state-truncated: %s", tr.Index, tr.Summary())
		}
	}
}

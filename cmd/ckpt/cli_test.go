package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store"
)

// commandPaths returns the arguments that reach every command of the tree.
func commandPaths(cmd *cobra.Command, prefix []string) [][]string {
	paths := [][]string{prefix}
	for _, c := range cmd.Commands() {
		paths = append(paths, commandPaths(c, append(append([]string(nil), prefix...), c.Name()))...)
	}
	return paths
}

func TestHelpOnEveryCommand(t *testing.T) {
	root := newRootCmd(newApp(nil, nil, nil))
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	paths := commandPaths(root, nil)
	if len(paths) < 9 {
		t.Fatalf("only %d commands found: %v", len(paths), paths)
	}
	for _, path := range paths {
		t.Run(strings.Join(append([]string{"ckpt"}, path...), " "), func(t *testing.T) {
			cmd, _, err := root.Find(path)
			if err != nil {
				t.Fatal(err)
			}
			r := ckptRun(t, nil, append(path, "--help")...).want(t, exitOK)
			if !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, cmd.CommandPath()) {
				t.Errorf("--help does not show the usage of %q:\n%s", cmd.CommandPath(), r.stdout)
			}
			if r.stderr != "" {
				t.Errorf("--help wrote to stderr: %s", r.stderr)
			}
			if cmd.Name() == "help" || cmd.Name() == "completion" || cmd.Parent() != nil && cmd.Parent().Name() == "completion" {
				return // cobra's own
			}
			long, _, _ := strings.Cut(cmd.Long, "\n")
			if cmd.Short == "" || long == "" || !strings.Contains(r.stdout, long) || !strings.Contains(r.stdout, "Examples:\n  "+cmd.CommandPath()) {
				t.Errorf("%q needs a summary, a description and examples:\n%s", cmd.CommandPath(), r.stdout)
			}
		})
	}
}

func TestRootHelpListsExitCodes(t *testing.T) {
	r := ckptRun(t, nil, "--help").want(t, exitOK)
	for _, c := range []int{exitOK, exitError, exitUsage, exitCorrupt, exitLocked, exitInterrupted, exitSignal, exitSignalTerm} {
		if !strings.Contains(r.stdout, fmt.Sprintf("\n  %-4d ", c)) {
			t.Errorf("root help does not list exit code %d:\n%s", c, r.stdout)
		}
	}
	// Bare ckpt prints the same help.
	if bare := ckptRun(t, nil).want(t, exitOK); bare.stdout != r.stdout {
		t.Errorf("ckpt without arguments printed:\n%s", bare.stdout)
	}
}

func TestVersion(t *testing.T) {
	r := ckptRun(t, nil, "--version").want(t, exitOK)
	if !strings.HasPrefix(r.stdout, "ckpt "+version+" (go") {
		t.Errorf("--version printed %q", r.stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	dir, _ := ordersStore(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"checkpoints", "list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"--log-format", "xml", "jobs", "--store", dir}, `--log-format "xml"`},
		{[]string{"--log-level", "loud", "jobs", "--store", dir}, `--log-level "loud"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "ckpt"`},
		{[]string{"chekpoints"}, "did you mean checkpoints?"},
		{[]string{"checkpoints", "lst"}, "did you mean list?"},
		{[]string{"jobs", "extra", "--store", dir}, "takes no arguments"},
		{[]string{"checkpoints", "list", "extra", "--store", dir}, "takes no arguments"},
		{[]string{"checkpoints", "show", "abc", "--store", dir}, `"abc" is not a checkpoint sequence number`},
		{[]string{"checkpoints", "show", "0", "--store", dir}, `"0" is not a checkpoint sequence number`},
		{[]string{"checkpoints", "verify", "1", "2", "--store", dir}, "at most 1 argument"},
		{[]string{"checkpoints", "prune", "--retain", "x", "--store", dir}, `invalid argument "x"`},
		{[]string{"checkpoints", "prune", "--retain", "0", "--store", dir, "--job", "orders"}, "--retain 0"},
		{[]string{"checkpoints", "prune", "--store", dir}, "--job is required"},
		{[]string{"checkpoints", "delete", "1", "--yes", "--store", dir}, "--job is required"},
		{[]string{"checkpoints", "delete", "--yes", "--store", dir, "--job", "orders"}, "SEQ"},
		{[]string{"checkpoints", "delete", "1", "--all", "--yes", "--store", dir, "--job", "orders"}, "not both"},
		{[]string{"checkpoints", "list", "--store", dir, "--job", "../etc"}, "invalid job name"},
		{[]string{"jobs", "--store", "ftp://host/x"}, `unknown scheme "ftp"`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := ckptRun(t, nil, c.args...).want(t, exitUsage)
			if line := r.errLine(t); !strings.Contains(line, c.want) {
				t.Errorf("error %q should contain %q", line, c.want)
			}
			if !strings.Contains(r.stderr, "\nUsage: ckpt") || !strings.Contains(r.stderr, "--help' for details") {
				t.Errorf("no usage hint after the error:\n%s", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("a usage error printed on stdout: %q", r.stdout)
			}
		})
	}
}

func TestCredentialsNeverPrinted(t *testing.T) {
	const secret = "hunter2pw"
	// Servers that refuse at once (port 1 on loopback), so that the test
	// stays quick once these backends are built in.
	for _, url := range []string{
		"s3://AKIAEXAMPLE:" + secret + "@bucket/prefix?endpoint=http://127.0.0.1:1",
		"s3://bucket/prefix?endpoint=http://127.0.0.1:1&secret_key=" + secret,
		"postgres://ckpt:" + secret + "@127.0.0.1:1/ckpt?connect_timeout=2",
		"file://user:" + secret + "@otherhost/dir",
	} {
		for _, args := range [][]string{
			{"jobs", "--store", url},
			{"--log-level", "debug", "checkpoints", "list", "--store", url, "--job", "orders"},
			{"checkpoints", "delete", "--all", "--yes", "--store", url, "--job", "orders"},
		} {
			r := ckptRun(t, nil, args...)
			if r.code == exitOK {
				t.Errorf("%v: succeeded on a store that does not exist here", args)
			}
			r.errLine(t)
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("%v: the password appears in the output:\n%s%s", args, r.stdout, r.stderr)
			}
		}
	}
}

func TestLogFormatAndLevel(t *testing.T) {
	dir, _ := ordersStore(t)
	r := ckptRun(t, nil, "--log-format", "json", "--log-level", "debug", "checkpoints", "list", "--store", dir).want(t, exitOK)
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var rec struct {
			Level, Msg, Store string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("stderr line %q is not a JSON log record: %v", line, err)
		}
		msgs = append(msgs, rec.Level+" "+rec.Msg+" "+rec.Store)
	}
	if want := "DEBUG opened store " + dir; len(msgs) == 0 || msgs[0] != want {
		t.Errorf("debug logs %q, want first %q", msgs, want)
	}

	r = ckptRun(t, nil, "--log-level", "debug", "jobs", "--store", dir).want(t, exitOK)
	if !strings.Contains(r.stderr, "level=DEBUG msg=\"opened store\"") {
		t.Errorf("text debug log missing:\n%s", r.stderr)
	}
	if r = ckptRun(t, nil, "jobs", "--store", dir).want(t, exitOK); r.stderr != "" {
		t.Errorf("info level printed debug logs:\n%s", r.stderr)
	}
}

func TestQuiet(t *testing.T) {
	dir, _ := ordersStore(t)
	r := ckptRun(t, nil, "-q", "checkpoints", "verify", "--store", dir, "--job", "orders").want(t, exitOK)
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("verify -q on a good store printed %q, %q", r.stdout, r.stderr)
	}
	flipByte(t, dir, manifestObject("orders", 2), -2)
	r = ckptRun(t, nil, "--quiet", "checkpoints", "verify", "--store", dir, "--job", "orders").want(t, exitCorrupt)
	if !strings.HasPrefix(r.stdout, "checkpoint 2: CORRUPT: ") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("verify -q should print only the corrupt checkpoint:\n%s", r.stdout)
	}
	r.errLine(t)
}

func TestExitCodeOfEachErrorClass(t *testing.T) {
	locked := fmt.Errorf("ckpt: job %q is already running: %w", "x", &store.LockedError{Name: "jobs/x/LOCK"})
	corrupt := &ckpt.CorruptError{Job: "x", Seq: 2, Object: "jobs/x/blobs/ab", Err: errors.New("checksum mismatch")}
	for _, c := range []struct {
		err  error
		code int
		hint string
	}{
		{errors.New("disk on fire"), exitError, ""},
		{fmt.Errorf("ckpt: job %q: %w", "x", ckpt.ErrNotFound), exitError, ""},
		{usageErrorf("bad"), exitUsage, ""},
		{withHint(usageErrorf("bad"), "do this"), exitUsage, "do this"},
		{fmt.Errorf("verify: %w", corrupt), exitCorrupt, "ckpt checkpoints verify"},
		{fmt.Errorf("ckpt: job %q: %w", "x", ckpt.ErrNoValidCheckpoint), exitCorrupt, "restore it from a backup"},
		{fmt.Errorf("prune refused: %w", locked), exitLocked, "retry"},
		{fmt.Errorf("ckpt: job %q: %w", "x", ckpt.ErrInterrupted), exitInterrupted, "run the same command again"},
		{withHint(fmt.Errorf("wrapped: %w", ckpt.ErrInterrupted), "resume with X"), exitInterrupted, "resume with X"},
	} {
		if got := exitCode(c.err); got != c.code {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.code)
		}
		line := errorLine(c.err)
		if !strings.HasPrefix(line, "ckpt: ") || strings.Contains(line, "ckpt: ckpt:") || strings.Contains(line, ": ckpt: ") || strings.Contains(line, "\n") {
			t.Errorf("errorLine(%v) = %q, want one line with one prefix", c.err, line)
		}
		if _, hint, _ := strings.Cut(line, "; "); c.hint != "" && !strings.Contains(hint, c.hint) {
			t.Errorf("errorLine(%v) = %q, want the hint %q", c.err, line, c.hint)
		}
	}
}

// "ckpt WORD --help" with WORD not a command says so, rather than print
// the help of the command above as if WORD were not there.
func TestUnknownCommandWithHelp(t *testing.T) {
	for _, args := range [][]string{
		{"unknown", "--help"},
		{"--log-level", "debug", "unknown", "-h"},
		{"checkpoints", "bogus", "--help"},
		{"checkpoints", "--store", "x", "bogus", "--help"},
	} {
		r := ckptRun(t, nil, args...).want(t, exitUsage)
		if line := r.errLine(t); !strings.Contains(line, "unknown command") || !strings.Contains(line, `"`+args[len(args)-2]+`"`) {
			t.Errorf("%v: %s", args, line)
		}
		if r.stdout != "" {
			t.Errorf("%v printed help:\n%s", args, r.stdout)
		}
	}
	for _, args := range [][]string{{"--help"}, {"checkpoints", "--help"}, {"checkpoints", "--store", "x", "list", "--help"}} {
		if r := ckptRun(t, nil, args...).want(t, exitOK); !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: no help:\n%s", args, r.stdout)
		}
	}
}

// Messages name what happened in ckpt's terms: no package prefixes, and
// advice given once.
func TestMessagesForPeople(t *testing.T) {
	dir := t.TempDir()
	in := writeInput(t, dir, "in.csv", "a,b\n1,2\n3,x\"y\n")
	out := filepath.Join(dir, "out.jsonl")
	line := ckptRun(t, nil, "convert", in, out).want(t, exitError).errLine(t)
	if strings.Count(line, "skip") != 1 || strings.Contains(line, "policy") {
		t.Errorf("advice given twice, or in the library's terms: %s", line)
	}
	r := ckptRun(t, nil, "convert", in, out, "--on-error", "skip").want(t, exitOK)
	if !strings.Contains(r.stdout, "2 records into") || !strings.Contains(r.stdout, "skipped 1 bad record\n") {
		t.Errorf("plurals: %s", r.stdout)
	}
	one := writeInput(t, dir, "one.csv", "a\n1\n")
	if r := ckptRun(t, nil, "convert", one, filepath.Join(dir, "one.jsonl")).want(t, exitOK); !strings.Contains(r.stdout, "done, 1 record into") {
		t.Errorf("plurals: %s", r.stdout)
	}
	writeInput(t, dir, "in.csv", "a,b\n1,2\n")
	line = ckptRun(t, nil, "convert", in, out, "--on-error", "skip").want(t, exitError).errLine(t)
	for _, p := range []string{"pipeline:", "source:", "sink:"} {
		if strings.Contains(line, p) {
			t.Errorf("package prefix %q: %s", p, line)
		}
	}
	if strings.Count(line, "restart") != 1 {
		t.Errorf("advice given twice: %s", line)
	}
	store := filepath.Join(dir, "store")
	ckptRun(t, nil, "convert", one, filepath.Join(dir, "p.jsonl"), "--store", store, "--job", "p").want(t, exitOK)
	if r := ckptRun(t, nil, "checkpoints", "prune", "--store", store, "--job", "p", "--retain", "1").want(t, exitOK); !strings.Contains(r.stdout, "at most 1 checkpoint besides") {
		t.Errorf("plurals: %s", r.stdout)
	}
	if r := ckptRun(t, nil, "checkpoints", "delete", "--all", "--yes", "--store", store, "--job", "p").want(t, exitOK); r.stdout != "deleted job \"p\": 1 checkpoint\n" {
		t.Errorf("plurals: %s", r.stdout)
	}
	// Logs too: a lock file left torn is rewritten, with a warning.
	if err := os.MkdirAll(filepath.Join(store, "jobs", "q"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, "jobs", "q", "LOCK"), []byte("torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = ckptRun(t, nil, "convert", one, filepath.Join(dir, "q.jsonl"), "--store", store, "--job", "q").want(t, exitOK)
	for _, p := range []string{`msg="filestore: `, `msg="ckpt: `, `err="filestore: `} {
		if strings.Contains(r.stderr, p) {
			t.Errorf("package prefix in a log line:\n%s", r.stderr)
		}
	}
	line = ckptRun(t, nil, "aggregate", in, out).want(t, exitUsage).errLine(t)
	if !strings.Contains(line, "--group-by") || !strings.Contains(line, "--agg") {
		t.Errorf("a hint without every required flag: %s", line)
	}
}

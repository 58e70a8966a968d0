package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/crashtest"
)

// resumesWrongly notices that it was started before and writes something
// else: every kill after its first instant makes the result differ.
const resumesWrongly = `if [ -f started ]; then r=resumed; else r=fresh; fi; touch started; sleep 0.3; echo $r > out.txt`

// resumesRightly writes its result only at the end, atomically.
const resumesRightly = `sleep 0.2; echo done > out.tmp; mv out.tmp out.txt`

func TestCrashtestCommandPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill loop")
	}
	junit := filepath.Join(t.TempDir(), "report.xml")
	r := ckptRun(t, nil, "crashtest", "--kills", "3", "--seed", "7", "--compare", "out.txt", "--junit", junit, "--", "sh", "-c", resumesRightly).want(t, exitOK)
	if !strings.Contains(r.stdout, "3 trials") || !strings.Contains(r.stdout, "0 failed") || !strings.Contains(r.stdout, "seed 7") {
		t.Errorf("report:\n%s", r.stdout)
	}
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b, &suite); err != nil {
		t.Fatalf("junit: %v\n%s", err, b)
	}
	if suite.Tests != 4 || suite.Failures != 0 {
		t.Errorf("junit: %d tests, %d failures, want 4 and 0:\n%s", suite.Tests, suite.Failures, b)
	}
}

func TestCrashtestCommandFails(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill loop")
	}
	junit := filepath.Join(t.TempDir(), "report.xml")
	r := ckptRun(t, nil, "crashtest", "--kills", "3", "--seed", "7", "--compare", "out.txt", "--junit", junit, "--", "sh", "-c", resumesWrongly).want(t, exitError)
	if line := r.errLine(t); !strings.Contains(line, "trial") || !strings.Contains(line, "failed") {
		t.Errorf("error line: %s", line)
	}
	for _, want := range []string{
		"out.txt: differs at byte 0",
		"| fresh", "| resumed",
		"replay: ckpt crashtest --compare out.txt --kills 3 --seed 7 -- sh -c '" + resumesWrongly + "'",
		"replay the smallest failing kill: ckpt crashtest --compare out.txt --kill-at ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "<failure") {
		t.Errorf("junit report shows no failure:\n%s", b)
	}
}

func TestCrashtestCommandJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill loop")
	}
	r := ckptRun(t, nil, "crashtest", "--json", "--kills", "2", "--seed", "3", "--compare", "out.txt", "--", "sh", "-c", resumesWrongly).want(t, exitError)
	var rep crashtest.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, r.stdout)
	}
	if rep.Seed != 3 || len(rep.Trials) != 2 || len(rep.Reference) != 2 || rep.FirstFailure() == nil {
		t.Errorf("report: %+v", rep)
	}
}

func TestCrashtestCommandNondeterministic(t *testing.T) {
	r := ckptRun(t, nil, "crashtest", "--compare", "out.txt", "--", "sh", "-c", "date +%N > out.txt").want(t, exitError)
	if line := r.errLine(t); !strings.Contains(line, "nondeterministic") {
		t.Errorf("error line: %s", line)
	}
	if !strings.Contains(r.stdout, "NONDETERMINISTIC") {
		t.Errorf("report:\n%s", r.stdout)
	}
}

func TestCrashtestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"crashtest", "--compare", "out.txt", "sh", "-c", "true"},
		{"crashtest", "--compare", "out.txt", "--"},
		{"crashtest", "--", "true"},
		{"crashtest", "--compare", "x", "--signal", "HUP", "--", "true"},
		{"crashtest", "--compare", "x", "--kills", "0", "--", "true"},
		{"crashtest", "--compare", "x", "--kill-at", "-1s", "--", "true"},
		{"crashtest", "--compare", "x", "--workdir", "/does/not/exist", "--", "true"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ckptRun(t, nil, args...).want(t, exitUsage)
		})
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":       "plain",
		"{dir}/a.csv": "{dir}/a.csv",
		"two words":   "'two words'",
		"it's":        `'it'\''s'`,
		"":            "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// --power-loss simulates power cuts for files changed through ckpt: a
// program that changes none is a usage error, not a pass.
func TestCrashtestPowerLossNeedsCkpt(t *testing.T) {
	r := ckptRun(t, nil, "crashtest", "--power-loss", "--kills", "1", "--compare", "out.txt", "--", "sh", "-c", "echo x > out.txt").want(t, exitUsage)
	if line := r.errLine(t); !strings.Contains(line, "changed no file through ckpt") {
		t.Errorf("error line: %s", line)
	}
}

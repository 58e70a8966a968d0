package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Outputs whose file names differ only in characters a job name does not
// allow, or that share a file name in two directories with one store, are
// two jobs: each is written, none is reported complete unwritten.
func TestDefaultJobNamesAreUniquePerOutput(t *testing.T) {
	dir := t.TempDir()
	in1 := writeInput(t, dir, "one.csv", "a\n1\n")
	in2 := writeInput(t, dir, "two.csv", "a\n2\n")
	store := filepath.Join(dir, "shared")
	for _, c := range []struct {
		name       string
		out1, out2 string
		extra      []string
	}{
		{"names that differ in a replaced character", filepath.Join(dir, "my out.jsonl"), filepath.Join(dir, "my_out.jsonl"), nil},
		{"one file name in two directories, one store", filepath.Join(dir, "d1", "out.jsonl"), filepath.Join(dir, "d2", "out.jsonl"), []string{"--store", store}},
		{"long names cut at the same place", filepath.Join(dir, strings.Repeat("x", 140)+"1.jsonl"), filepath.Join(dir, strings.Repeat("x", 140)+"2.jsonl"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, o := range []string{c.out1, c.out2} {
				if err := os.MkdirAll(filepath.Dir(o), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			ckptRun(t, nil, append([]string{"convert", in1, c.out1}, c.extra...)...).want(t, exitOK)
			r := ckptRun(t, nil, append([]string{"convert", in2, c.out2}, c.extra...)...).want(t, exitOK)
			if strings.Contains(r.stdout, "already finished") {
				t.Fatalf("the second output was taken for the first one's job:\n%s", r.stdout)
			}
			for o, want := range map[string]string{c.out1: "{\"a\":\"1\"}\n", c.out2: "{\"a\":\"2\"}\n"} {
				if b, err := os.ReadFile(o); err != nil || string(b) != want {
					t.Errorf("%s: %q (%v), want %q", filepath.Base(o), b, err, want)
				}
			}
		})
	}
}

// The store must be apart from the output: the same path, inside it or
// holding it is refused before anything is created.
func TestStoreAtTheOutputIsRefused(t *testing.T) {
	dir := t.TempDir()
	in := writeInput(t, dir, "in.csv", "a\n1\n")
	out := filepath.Join(dir, "out.jsonl")
	for _, store := range []string{out, filepath.Join(out, "ckpt"), "file://" + out, dir} {
		r := ckptRun(t, nil, "convert", in, out, "--store", store).want(t, exitUsage)
		if line := r.errLine(t); !strings.Contains(line, "store") {
			t.Errorf("--store %s: %s", store, line)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("--store %s: the output path exists after the refusal (%v)", store, err)
		}
	}
	// The dead-letter file too.
	r := ckptRun(t, nil, "convert", in, out, "--store", filepath.Join(dir, "s"), "--dead-letter", filepath.Join(dir, "s", "rejects.jsonl")).want(t, exitUsage)
	if _, err := os.Stat(filepath.Join(dir, "s")); !os.IsNotExist(err) {
		t.Fatalf("the store was created: %s", r.stderr)
	}
}

// A job under the name earlier versions of ckpt derived is not ignored:
// in the default store beside its output it is continued, elsewhere ckpt
// asks which job is meant.
func TestJobUnderItsOldName(t *testing.T) {
	dir := t.TempDir()
	in := writeInput(t, dir, "in.csv", "a\n1\n2\n")
	out := filepath.Join(dir, "out.jsonl")
	ckptRun(t, nil, "convert", in, out, "--job", "convert-out.jsonl").want(t, exitOK)

	r := ckptRun(t, nil, "convert", in, out).want(t, exitOK)
	if !strings.Contains(r.stdout, "job convert-out.jsonl already finished") || !strings.Contains(r.stderr, "earlier ckpt") {
		t.Fatalf("the job under its old name was not continued:\n%s%s", r.stdout, r.stderr)
	}

	// In a shared store the old name may be another output's.
	store := filepath.Join(dir, "shared")
	ckptRun(t, nil, "convert", in, out, "--store", store, "--job", "convert-out.jsonl").want(t, exitOK)
	r = ckptRun(t, nil, "convert", in, out, "--store", store).want(t, exitUsage)
	if line := r.errLine(t); !strings.Contains(line, `"convert-out.jsonl"`) || !strings.Contains(line, "--job convert-out.jsonl") || !strings.Contains(line, "--restart") {
		t.Fatalf("the old job is not named with what to do: %s", line)
	}
	r = ckptRun(t, nil, "convert", in, out, "--store", store, "--restart", "--json").want(t, exitOK)
	var s runJSON
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.Status != "done" || s.Job == "convert-out.jsonl" {
		t.Fatalf("--restart: %v\n%s", err, r.stdout)
	}
	// The new job is found from then on; the old one is left alone.
	ckptRun(t, nil, "convert", in, out, "--store", store).want(t, exitOK)
	if got := jobsIn(t, store); len(got) != 2 {
		t.Fatalf("jobs in the store: %v", got)
	}
}

// defaultJob is the job name convert or aggregate (verb) gives the output
// file path.
func defaultJob(t *testing.T, verb, path string) string {
	t.Helper()
	id, err := fileIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	return jobName(verb, filepath.Base(path), id)
}

// A resumed run says so before it starts, from which checkpoint and
// record; --json prints the run's summary for scripts.
func TestResumeIsAnnouncedAndJSONSummary(t *testing.T) {
	dir := t.TempDir()
	in := writeInput(t, dir, "in.csv", "a\n1\n2\nx\"y\n4\n")
	out := filepath.Join(dir, "out.jsonl")
	ckptRun(t, nil, "convert", in, out, "--every", "1").want(t, exitError)
	r := ckptRun(t, nil, "convert", in, out, "--every", "1", "--on-error", "skip").want(t, exitOK)
	job := defaultJob(t, "convert", out)
	var seq, recs int
	if _, err := fmt.Sscanf(r.stdout, "resuming job "+job+" from checkpoint %d", &seq); err != nil {
		t.Fatalf("the start of a resumed run: %q: %v", r.stdout, err)
	}
	if _, err := fmt.Sscanf(r.stdout[strings.Index(r.stdout, "(resumed"):], "(resumed from checkpoint %d at record %d)", new(int), &recs); err != nil {
		t.Fatalf("the end of a resumed run: %q: %v", r.stdout, err)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("(resumed from checkpoint %d at record %d)", seq, recs)) || !strings.Contains(r.stdout, "): "+plural(int64(recs), "record")+" (") {
		t.Fatalf("the announced start is not where the run resumed:\n%s", r.stdout)
	}

	out2 := filepath.Join(dir, "out2.jsonl")
	ckptRun(t, nil, "convert", in, out2, "--every", "1").want(t, exitError)
	r = ckptRun(t, nil, "convert", in, out2, "--every", "1", "--on-error", "skip", "--json").want(t, exitOK)
	var s runJSON
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	if s.Status != "done" || s.Job != defaultJob(t, "convert", out2) || s.Output != out2 || s.Records != 4 || s.Skipped != 1 ||
		s.ResumedFrom == nil || s.ResumedFrom.Checkpoint == 0 || s.ResumedFrom.Records == 0 || s.Checkpoint == 0 || s.Checkpoints == 0 || s.Bytes == 0 {
		t.Errorf("--json summary: %+v", s)
	}
	r = ckptRun(t, nil, "convert", in, out2, "--json").want(t, exitOK)
	s = runJSON{}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.Status != "already_done" || s.ResumedFrom != nil || s.Records != 4 {
		t.Errorf("--json of a finished job: %v %+v", err, s)
	}
}

// One output reached by another path (relative, through a symbolic link)
// is one job.
func TestOneOutputByTwoPathsIsOneJob(t *testing.T) {
	dir := t.TempDir()
	in := writeInput(t, dir, "in.csv", "a\n1\n")
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Skip(err)
	}
	ckptRun(t, nil, "convert", in, filepath.Join(dir, "real", "out.jsonl")).want(t, exitOK)
	r := ckptRun(t, nil, "convert", in, filepath.Join(dir, "link", "x", "..", "out.jsonl"), "--store", filepath.Join(dir, "real", ".ckpt")).want(t, exitOK)
	if !strings.Contains(r.stdout, "already finished") {
		t.Fatalf("the same output through a link was another job:\n%s", r.stdout)
	}
}

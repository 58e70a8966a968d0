package crashtest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// String is the report for people: a summary line, the phases covered,
// and the first failure with its difference.
func (r *Report) String() string {
	var b strings.Builder
	if len(r.Reference) > 0 {
		fmt.Fprintf(&b, "reference run: %s (seed %d, signal %s)\n", r.Reference[0].Duration.Round(time.Millisecond), r.Seed, r.Signal)
	}
	if r.PowerLoss {
		undone, cuts := 0, 0
		for _, t := range r.Trials {
			for _, run := range t.Runs {
				if run.Interrupted && run.ExitCode != 0 {
					cuts++
					undone += run.Undone
				}
			}
		}
		fmt.Fprintf(&b, "power loss: %d power cuts undid %d file changes that no fsync had made durable\n", cuts, undone)
	}
	if r.Nondeterministic != nil {
		fmt.Fprintf(&b, "NONDETERMINISTIC: two uninterrupted runs produced different results, so crashes cannot be judged against them.\n%s\n", r.Nondeterministic)
		b.WriteString("Make the output a function of the input (fixed order, no times or random values), or compare through a normalizer or a check command.\n")
		return b.String()
	}
	failed, interrupted := 0, 0
	for i := range r.Trials {
		if r.Trials[i].Failed() {
			failed++
		}
		if r.Trials[i].Interrupted() {
			interrupted++
		}
	}
	fmt.Fprintf(&b, "%d trials, %d interrupted, %d failed\n", len(r.Trials), interrupted, failed)
	if len(r.Trials) > 0 && 2*interrupted < len(r.Trials) {
		b.WriteString("warning: most trials ended before their kill; a run takes less time than the reference did. Give the program more input, or run more trials\n")
	}
	if len(r.Phases) > 0 {
		b.WriteString("phase boundaries killed at:")
		for _, p := range r.phaseOrder() {
			fmt.Fprintf(&b, " %s×%d", p, r.Phases[p])
		}
		b.WriteString("\n")
	}
	if t := r.FirstFailure(); t != nil {
		fmt.Fprintf(&b, "FAILED: trial %d: %s\n", t.Index, t.Summary())
		if r.MinFailingKill > 0 {
			fmt.Fprintf(&b, "smallest kill time found that still fails: %s\n", r.MinFailingKill)
		}
	}
	return b.String()
}

// phaseOrder lists the phases covered in the order the reference run
// announced them.
func (r *Report) phaseOrder() []string {
	var out []string
	seen := map[string]bool{}
	if len(r.Reference) > 0 {
		for _, p := range r.Reference[0].Phases {
			if _, ok := r.Phases[p]; ok && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// Summary describes the trial's runs and outcome.
func (t *Trial) Summary() string {
	var b strings.Builder
	for i, run := range t.Runs {
		if i > 0 {
			b.WriteString(", then ")
		}
		switch {
		case run.Phase != "" && run.Interrupted:
			fmt.Fprintf(&b, "killed (%s) at phase %s #%d", run.Signal, run.Phase, run.PhaseHit)
		case run.Interrupted && run.Escalated:
			fmt.Fprintf(&b, "killed (%s, then KILL when it did not stop) after %s", run.Signal, run.KillAfter)
		case run.Interrupted:
			fmt.Fprintf(&b, "killed (%s) after %s", run.Signal, run.KillAfter)
		case run.TimedOut:
			fmt.Fprintf(&b, "timed out after %s", run.Duration.Round(time.Millisecond))
		default:
			fmt.Fprintf(&b, "ran to exit status %d", run.ExitCode)
		}
		if run.Undone > 0 {
			fmt.Fprintf(&b, " (power cut: %d of %d file changes undone)", run.Undone, run.Logged)
		}
	}
	switch t.Outcome {
	case OutcomeMismatch:
		fmt.Fprintf(&b, "; the result differs from the reference:\n%s", t.Difference)
	case OutcomeRunFailed:
		last := t.Runs[len(t.Runs)-1]
		fmt.Fprintf(&b, "; the program could not recover. Its output ends with:\n%s", indent(last.Output))
	case OutcomeTimeout:
		b.WriteString("; the program did not finish within the per-run timeout")
	}
	if t.Scratch != "" {
		fmt.Fprintf(&b, "\nits files are kept in %s", t.Scratch)
	}
	return b.String()
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "  (nothing)"
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// junit is the subset of the JUnit XML format that CI systems read.
type junitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Time     string      `xml:"time,attr"`
	Props    []junitProp `xml:"properties>property"`
	Cases    []junitCase `xml:"testcase"`
}

type junitProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes the report as a JUnit XML test suite: one test case
// for the reference runs and one per trial.
func (r *Report) WriteJUnit(w io.Writer) error {
	s := junitSuite{Name: "crashtest " + strings.Join(r.Command, " "),
		Props: []junitProp{{"seed", fmt.Sprint(r.Seed)}, {"signal", string(r.Signal)}, {"power_loss", fmt.Sprint(r.PowerLoss)}}}
	var total time.Duration
	ref := junitCase{Name: "reference", ClassName: "crashtest"}
	var refDur time.Duration
	for _, e := range r.Reference {
		refDur += e.Duration
	}
	ref.Time = seconds(refDur)
	total += refDur
	if r.Nondeterministic != nil {
		ref.Failure = &junitFailure{Message: "nondeterministic: two uninterrupted runs differ", Type: "nondeterministic", Body: r.Nondeterministic.String()}
	}
	s.Cases = append(s.Cases, ref)
	for i := range r.Trials {
		t := &r.Trials[i]
		var d time.Duration
		for _, e := range t.Runs {
			d += e.Duration
		}
		total += d
		c := junitCase{Name: fmt.Sprintf("trial %d", t.Index), ClassName: "crashtest", Time: seconds(d)}
		if t.Failed() {
			c.Failure = &junitFailure{Message: string(t.Outcome), Type: string(t.Outcome), Body: t.Summary()}
		}
		s.Cases = append(s.Cases, c)
	}
	for _, c := range s.Cases {
		if c.Failure != nil {
			s.Failures++
		}
	}
	s.Tests = len(s.Cases)
	s.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("crashtest: junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

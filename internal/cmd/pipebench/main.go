// Command pipebench measures ckpt's record pipelines against themselves
// and against Miller, in one run, and prints a Markdown table of ratios:
//
//   - convert with the default triggers vs with checkpointing off;
//   - convert vs `mlr --icsv --ojsonl cat`, aggregate vs `mlr stats1`;
//   - resuming at 99% of a 2 GB input: time to the first new record vs the
//     time re-reading the input up to that point takes;
//   - peak memory of convert on a small and a large input.
//
// Machines are noisy: every comparison alternates its two sides and takes
// the median of -runs runs.
//
//	go run ./internal/cmd/pipebench -ckpt .bin/ckpt -dir /tmp/ckpt-bench
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/gen"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/source"
)

var (
	bin     = flag.String("ckpt", ".bin/ckpt", "the ckpt binary")
	dir     = flag.String("dir", filepath.Join(os.TempDir(), "ckpt-bench"), "work directory (inputs are generated once and kept)")
	rows    = flag.Int64("rows", 2_000_000, "rows of the main input")
	bigRows = flag.Int64("big-rows", 32_000_000, "rows of the large input for resume and memory (about 2 GB)")
	runs    = flag.Int("runs", 5, "runs per side of each comparison")
	only    = flag.String("only", "", "run only this part: overhead, miller, resume, memory")
)

func main() {
	flag.Parse()
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fail(err)
	}
	abs, err := filepath.Abs(*bin) // commands run in *dir
	if err != nil {
		fail(err)
	}
	*bin = abs
	small := input(*rows)
	fmt.Printf("Input: %d rows, %s (generated CSV with quoted separators, quotes and line ends in fields)\n\n", *rows, mib(size(small)))
	fmt.Println("| measure | ckpt | baseline | ratio | target |")
	fmt.Println("|---|---|---|---|---|")
	if want("overhead") {
		overhead(small)
	}
	if want("miller") {
		miller(small)
	}
	if want("resume") {
		resume(input(*bigRows))
	}
	if want("memory") {
		memory(small, input(*bigRows))
	}
}

func want(part string) bool { return *only == "" || *only == part }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pipebench:", err)
	os.Exit(1)
}

// input returns the path of a generated CSV with n rows, making it once.
func input(n int64) string {
	path := filepath.Join(*dir, fmt.Sprintf("rows-%d.csv", n))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		fail(err)
	}
	if err := gen.Write(f, gen.Options{Rows: n, Seed: 1}); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		fail(err)
	}
	return path
}

func size(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		fail(err)
	}
	return fi.Size()
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// result of one child process.
type result struct {
	wall   time.Duration
	cpu    time.Duration // user + system
	maxRSS int64         // bytes
}

// runCmd runs a command to completion in dir, output discarded.
func runCmd(name string, args ...string) result {
	cmd := exec.Command(name, args...)
	cmd.Dir = *dir
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		fail(fmt.Errorf("%s %v: %w", name, args, err))
	}
	r := result{wall: time.Since(start)}
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss * 1024
	}
	return r
}

// compare runs a and b alternately and returns their median wall times.
func compare(a, b func() result) (time.Duration, time.Duration) {
	ra, rb := compareAll(a, b)
	return ra.wall, rb.wall
}

// compareAll runs a and b alternately and returns the median wall and CPU
// times of each.
func compareAll(a, b func() result) (result, result) {
	var aw, bw, ac, bc []time.Duration
	for range *runs {
		ra, rb := a(), b()
		aw, ac = append(aw, ra.wall), append(ac, ra.cpu)
		bw, bc = append(bw, rb.wall), append(bc, rb.cpu)
	}
	return result{wall: median(aw), cpu: median(ac)}, result{wall: median(bw), cpu: median(bc)}
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// convert runs ckpt convert from scratch into out with extra flags.
func convert(in, out string, extra ...string) result {
	args := append([]string{"convert", in, out, "--restart", "-q", "--store", "bench-store"}, extra...)
	return runCmd(*bin, args...)
}

// overhead compares convert with the default triggers and with only the
// final checkpoint. Both make the output durable before they exit (the
// final checkpoint fsyncs it), so the wall times compare like for like;
// CPU time shows what checkpointing itself computes.
func overhead(in string) {
	withCk, without := compareAll(
		func() result { return convert(in, "with.jsonl") },
		func() result { return convert(in, "without.jsonl", "--every", "0", "--interval", "0") },
	)
	fmt.Printf("| convert, default triggers (every 1 s / 1,000,000 records) vs checkpointing off: wall time | %s | %s | %+.1f%% | at most +3%% |\n",
		secs(withCk.wall), secs(without.wall), 100*(withCk.wall.Seconds()/without.wall.Seconds()-1))
	fmt.Printf("| the same runs: CPU time (user + system) | %s | %s | %+.1f%% | |\n",
		secs(withCk.cpu), secs(without.cpu), 100*(withCk.cpu.Seconds()/without.cpu.Seconds()-1))
}

func miller(in string) {
	if _, err := exec.LookPath("mlr"); err != nil {
		fmt.Println("| convert vs Miller | - | mlr not installed | - | at least 3x |")
		return
	}
	ours, theirs := compare(
		func() result { return convert(in, "ckpt.jsonl") },
		func() result {
			return runCmd("sh", "-c", fmt.Sprintf("mlr --icsv --ojsonl cat %q > mlr.jsonl", in))
		},
	)
	fmt.Printf("| convert CSV to JSONL vs `mlr --icsv --ojsonl cat` | %s | %s | %.1fx faster | at least 3x |\n", secs(ours), secs(theirs), theirs.Seconds()/ours.Seconds())
	ours, theirs = compare(
		func() result {
			return runCmd(*bin, "aggregate", in, "agg.csv", "--restart", "-q", "--store", "bench-store",
				"--group-by", "city", "--agg", "count,sum:amount,mean:amount,max:amount")
		},
		func() result {
			return runCmd("sh", "-c", fmt.Sprintf("mlr --icsv --ocsv stats1 -a count,sum,mean,max -f amount -g city %q > mlr-agg.csv", in))
		},
	)
	fmt.Printf("| aggregate by city (count, sum, mean, max) vs `mlr stats1` | %s | %s | %.1fx faster | at least 3x |\n", secs(ours), secs(theirs), theirs.Seconds()/ours.Seconds())
}

// resume measures, in process, what a restart at 99% of a large input
// costs: from the call that opens the job to the first record handed to
// the user's function. The baseline is what re-reading up to the same
// record costs without a position to seek to.
func resume(in string) {
	ctx := context.Background()
	total := size(in)
	// Re-read to 99%: the baseline, and the position to resume from.
	start := time.Now()
	src, err := source.OpenCSV([]string{in}, nil, source.CSVOptions{})
	if err != nil {
		fail(err)
	}
	for src.Consumed() < total*99/100 {
		if _, err := src.Next(); err != nil {
			fail(err)
		}
	}
	reread := time.Since(start)
	pos, err := src.Position()
	if err != nil {
		fail(err)
	}
	src.Close()

	// A job that starts at that position (its opener ignores the missing
	// checkpoint) and stops after a few records, leaving a checkpoint.
	cfg := pipeline.Config{Job: "resume-bench", Config: ckpt.Config{Store: filepath.Join(*dir, "bench-store"), NoSignals: true, Restart: true}}
	out := filepath.Join(*dir, "resume.jsonl")
	at99 := pipeline.Opener[*source.Row](func(_ context.Context, p json.RawMessage) (pipeline.Source[*source.Row], error) {
		if p == nil {
			p = pos
		}
		return source.OpenCSV([]string{in}, p, source.CSVOptions{})
	})
	stopAfter := func(n int) (context.Context, pipeline.Func[struct{}, *source.Row, *sink.File], *time.Time) {
		ctx, cancel := context.WithCancel(ctx)
		first := new(time.Time)
		seen := 0
		return ctx, func(_ context.Context, row *source.Row, _ *struct{}, w *sink.File) error {
			if seen == 0 {
				*first = time.Now()
			}
			if seen++; seen == n {
				cancel()
			}
			_, err := w.Write(row.Fields[0])
			return err
		}, first
	}
	c1, fn, _ := stopAfter(2000)
	if _, err := pipeline.Run(c1, cfg, at99, pipeline.File(out), fn); !errors.Is(err, context.Canceled) {
		fail(fmt.Errorf("first run: %v", err))
	}
	cfg.Restart = false
	var times []time.Duration
	for range *runs {
		c2, fn, first := stopAfter(1)
		t0 := time.Now()
		if _, err := pipeline.Run(c2, cfg, pipeline.CSV(in), pipeline.File(out), fn); !errors.Is(err, context.Canceled) {
			fail(fmt.Errorf("resumed run: %v", err))
		}
		times = append(times, first.Sub(t0))
	}
	r := median(times)
	fmt.Printf("| resume at 99%% of a %s input: open to first new record vs re-reading to that record | %.1f ms | %s | %.0fx faster | under 50 ms |\n",
		mib(total), float64(r.Microseconds())/1000, secs(reread), reread.Seconds()/r.Seconds())
}

func memory(small, big string) {
	a := convert(small, "mem-small.jsonl")
	b := convert(big, "mem-big.jsonl")
	os.Remove(filepath.Join(*dir, "mem-big.jsonl"))
	fmt.Printf("| peak memory (max RSS) of convert: %s input vs %s input | %s | %s | %.2fx | bounded, independent of input size |\n",
		mib(size(big)), mib(size(small)), mib(b.maxRSS), mib(a.maxRSS), float64(b.maxRSS)/float64(a.maxRSS))
}

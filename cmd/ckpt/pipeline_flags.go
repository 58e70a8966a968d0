package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/progress"
	"github.com/ckptdev/ckpt/pipeline"
)

// The default triggers: a checkpoint every second and every million
// records, whichever comes first. A checkpoint costs the job a flush of
// the output and a few microseconds; the fsync and the manifest write run
// in the background.
const (
	defaultEvery    = 1_000_000
	defaultInterval = time.Second
)

// pipelineFlags are the flags of the commands that run jobs (convert,
// aggregate).
type pipelineFlags struct {
	store      string
	job        string
	every      int64
	everyBytes string
	interval   time.Duration
	retain     int
	onError    string
	deadLetter string
	restart    bool
	noProgress bool
	json       bool
	metrics    string
	until      string
}

func (f *pipelineFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.store, "store", "", "where checkpoints live: a directory or a store URL (default: .ckpt beside OUTPUT)")
	fl.StringVar(&f.job, "job", "", "the job's name in the store (default: the command and OUTPUT's name, with a hash of its path: unique per output)")
	fl.Int64Var(&f.every, "every", defaultEvery, "checkpoint every N records (0: off)")
	fl.StringVar(&f.everyBytes, "every-bytes", "0", "checkpoint every N bytes of input: bytes, or KiB, MiB, GiB, KB, MB, GB, as 64MiB (0: off)")
	fl.DurationVar(&f.interval, "interval", defaultInterval, "checkpoint at least this often (0: off)")
	fl.IntVar(&f.retain, "retain", 3, "checkpoints kept in the store (at least 1)")
	fl.StringVar(&f.onError, "on-error", "fail", "bad records: fail (stop, naming file, line and column), skip (count them), or dead-letter (write them to --dead-letter)")
	fl.StringVar(&f.deadLetter, "dead-letter", "", "file for bad records, as JSON Lines with the reason (implies --on-error dead-letter; default OUTPUT.rejects.jsonl)")
	fl.BoolVar(&f.restart, "restart", false, "discard the job's checkpoints and start over from the beginning")
	fl.BoolVar(&f.noProgress, "no-progress", false, "no progress bar, even on a terminal")
	fl.BoolVar(&f.json, "json", false, "print a summary of the run as one JSON object on stdout, for scripts")
	fl.StringVar(&f.until, "until", "", "a stream input's bound: now (what the stream holds when the job starts), a sequence number (the last to read) or a time (RFC 3339); default: read until stopped")
	fl.StringVar(&f.metrics, "metrics-listen", "", "serve Prometheus metrics of the run at http://ADDR/metrics while it runs (as 127.0.0.1:9464; port 0 picks one)")
}

// config builds the run's configuration for a job writing t.
func (f *pipelineFlags) config(a *app, cmd *cobra.Command, t target) (pipeline.Config, error) {
	var cfg pipeline.Config
	if f.every < 0 || f.interval < 0 {
		return cfg, usageErrorf("--every and --interval must not be negative")
	}
	if f.retain < 1 {
		return cfg, usageErrorf("--retain must be at least 1")
	}
	eb, err := parseSize(f.everyBytes)
	if err != nil {
		return cfg, usageErrorf("--every-bytes: %v", err)
	}
	output := t.output
	cfg.Store = f.store
	if cfg.Store == "" {
		cfg.Store = filepath.Join(filepath.Dir(output), ckpt.DefaultStore)
	}
	cfg.Job = f.job
	if cfg.Job == "" {
		name := output
		if t.isFile {
			name = filepath.Base(output)
		}
		cfg.Job = jobName(t.verb, name, t.id)
	}
	// The output's identity in every checkpoint: which output a job
	// writes can be told from its checkpoints alone.
	cfg.Metadata = map[string]string{"output": t.id}
	if err := ckpt.ValidJobName(cfg.Job); err != nil {
		return cfg, usageErrorf("--job: %v", err)
	}
	cfg.Every = ckpt.Every{Records: f.every, Bytes: eb, Interval: f.interval}
	cfg.Retain = f.retain
	cfg.Restart = f.restart
	switch f.onError {
	case "fail":
		cfg.OnBadRecord = pipeline.Fail
	case "skip":
		cfg.OnBadRecord = pipeline.Skip
	case "dead-letter":
		cfg.OnBadRecord = pipeline.DeadLetter
	default:
		return cfg, usageErrorf("--on-error %q: use fail, skip or dead-letter", f.onError)
	}
	if f.deadLetter != "" {
		if cmd.Flags().Changed("on-error") && f.onError != "dead-letter" {
			return cfg, usageErrorf("--dead-letter goes with --on-error dead-letter, not %s", f.onError)
		}
		cfg.OnBadRecord = pipeline.DeadLetter
		cfg.DeadLetterPath = f.deadLetter
	} else if cfg.OnBadRecord == pipeline.DeadLetter {
		cfg.DeadLetterPath = output + ".rejects.jsonl"
	}
	if a.stderrTTY && !a.quiet && !f.noProgress {
		bar := &progress.Bar{W: a.stderr, WidthFunc: func() int {
			if fd, ok := a.stderr.(interface{ Fd() uintptr }); ok {
				if w, _, err := term.GetSize(int(fd.Fd())); err == nil {
					return w
				}
			}
			return 0
		}}
		cfg.Progress = bar.Update
		a.logTo(bar.Writer())
	}
	cfg.Logger = a.log
	return cfg, nil
}

// parseSize reads a byte count: 1048576, 64KiB, 64MiB, 1GiB, 10MB, 2GB
// (units in any case). Anything else is refused, not read in part: "64M"
// must not become 64 bytes, nor "1.5GB" one.
func parseSize(s string) (int64, error) {
	num := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n := len(num) - len(u.suffix); n >= 0 && strings.EqualFold(num[n:], u.suffix) {
			num, mult = strings.TrimSpace(num[:n]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size (use a whole number of bytes, or of KiB, MiB, GiB, TiB, KB, MB, GB, TB, as 64MiB)", s)
	}
	return n * mult, nil
}

// checkOutput checks an output path early, so a typo costs nothing.
func checkOutput(output string) error {
	dir := filepath.Dir(output)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("output directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("output directory %s is not a directory", dir)
	}
	if fi, err := os.Stat(output); err == nil && fi.IsDir() {
		return fmt.Errorf("output %s is a directory", output)
	}
	return nil
}

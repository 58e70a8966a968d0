package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/progress"
	"github.com/ckptdev/ckpt/metrics"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/s3io"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/source"
	"github.com/ckptdev/ckpt/store"
)

// runJob runs a job that writes t, configured by cfg: it checks what can
// be checked before anything is written, says where the run starts, runs
// it and reports the outcome.
func (a *app) runJob(cmd *cobra.Command, pf *pipelineFlags, t target, cfg *pipeline.Config, run func() (pipeline.Result, error)) error {
	began := time.Now()
	ctx := cmd.Context()
	if t.isFile {
		if err := checkStoreApart(cfg.Store, t.output, cfg.DeadLetterPath); err != nil {
			return err
		}
	}
	if err := a.inspectStore(ctx, cfg, t, pf.job != "", pf.store == ""); err != nil {
		return err
	}
	if !pf.json {
		// Said once the run has started, past the checks that could
		// refuse the resume (changed input or options).
		onStart := cfg.OnStart
		cfg.OnStart = func(st pipeline.Start) {
			if cp := st.Resumed; cp != nil {
				a.infof("resuming job %s from checkpoint %d (%s): %s (%s of input) already done\n",
					cfg.Job, cp.Seq, formatTime(cp.Time), plural(cp.Records, "record"), progress.Bytes(cp.Bytes))
			}
			if onStart != nil {
				onStart(st)
			}
		}
	}
	if pf.metrics != "" {
		stop, err := a.serveMetrics(pf.metrics, cfg)
		if err != nil {
			return err
		}
		defer stop()
	}
	res, err := run()
	if pf.json {
		return a.reportJSON(t, cfg, res, err, time.Since(began))
	}
	return a.report(t, cfg, res, err)
}

// serveMetrics serves the run's metrics (package metrics: checkpoints
// committed and failed, their durations and sizes, the restore, records
// and bytes read) at addr while it runs, and returns the function that
// stops serving.
func (a *app) serveMetrics(addr string, cfg *pipeline.Config) (func(), error) {
	jobs := metrics.NewJobs()
	reg := prometheus.NewRegistry()
	if err := reg.Register(jobs); err != nil {
		return nil, err
	}
	srv, err := metrics.Listen(addr, reg)
	if err != nil {
		return nil, usageErrorf("--metrics-listen: %w", err)
	}
	a.log.Info("serving metrics", "url", "http://"+srv.Addr()+"/metrics")
	cfg.Observer = jobs
	bar := cfg.Progress
	cfg.Progress = func(p pipeline.Progress) {
		jobs.Progress(cfg.Job, p.Records, p.Consumed)
		if p.Stream {
			jobs.Lag(cfg.Job, p.Lag)
		}
		if bar != nil {
			bar(p)
		}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			a.log.Warn("stop serving metrics", "err", err)
		}
	}, nil
}

// plural renders n and noun, in the plural unless n is 1: "1 record",
// "2,000 records".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return progress.Count(n) + " " + noun + "s"
}

// runError turns the pipeline's errors into ckpt's exit codes and hints.
func runError(verb string, res pipeline.Result, err error) error {
	switch {
	case errors.Is(err, ckpt.ErrInterrupted):
		return withHint(fmt.Errorf("%s interrupted after %s: %w", verb, plural(res.Records, "record"), err),
			"run the same command again to resume")
	case errors.Is(err, pipeline.ErrParamsChanged):
		return withHint(err, "run it with the options it started with, or pass --restart to start over from the beginning")
	case errors.Is(err, s3io.ErrOutputExists):
		return withHint(err, "delete the object, or pass --restart to replace it when the job finishes")
	case errors.Is(err, source.ErrInputChanged), errors.Is(err, sink.ErrOutputChanged):
		return withHint(err, "pass --restart to start over from the beginning")
	case errors.Is(err, context.Canceled):
		return err
	}
	var re *source.RecordError
	if errors.As(err, &re) {
		return withHint(err, "fix the input, or pass --on-error skip or --on-error dead-letter to go on past bad records")
	}
	return err
}

// report prints the outcome of a run for people.
func (a *app) report(t target, cfg *pipeline.Config, res pipeline.Result, err error) error {
	if errors.Is(err, pipeline.ErrAlreadyDone) {
		a.infof("job %s already finished (checkpoint %d, %s): %s is complete; pass --restart to run it again\n",
			cfg.Job, res.Final.Seq, formatTime(res.Final.Time), t.display)
		return nil
	}
	if err != nil {
		return runError(t.verb, res, err)
	}
	a.infof("%s: done, %s into %s", t.verb, plural(res.Records, "record"), t.display)
	if res.Resumed != nil {
		a.infof(" (resumed from checkpoint %d at record %s)", res.Resumed.Seq, progress.Count(res.Resumed.Records))
	}
	a.infof("\n")
	if res.Skipped > 0 {
		a.infof("skipped %s\n", plural(res.Skipped, "bad record"))
	}
	if res.DeadLettered > 0 {
		a.infof("wrote %s to %s\n", plural(res.DeadLettered, "bad record"), cfg.DeadLetterPath)
	}
	return nil
}

// runJSON is the summary of a run that --json prints. Its field names are
// part of ckpt's interface.
type runJSON struct {
	// Status is "done", "already_done" (an earlier run finished the job)
	// or "interrupted" (a signal stopped it after a checkpoint).
	Status string `json:"status"`
	Job    string `json:"job"`
	Store  string `json:"store"`
	Output string `json:"output"`
	// Records and Bytes are the records and input bytes read since the
	// job began, across resumes.
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
	// Checkpoint is the sequence number of the job's newest checkpoint.
	Checkpoint uint64 `json:"checkpoint"`
	// Checkpoints is how many checkpoints this run committed.
	Checkpoints uint64 `json:"checkpoints"`
	// ResumedFrom is the checkpoint this run started from, absent when it
	// started from the beginning.
	ResumedFrom    *resumedJSON `json:"resumed_from,omitempty"`
	Skipped        int64        `json:"skipped"`
	DeadLettered   int64        `json:"dead_lettered"`
	DeadLetterFile string       `json:"dead_letter_file,omitempty"`
	// DurationSeconds is this run's wall-clock time.
	DurationSeconds float64 `json:"duration_seconds"`
}

type resumedJSON struct {
	Checkpoint uint64 `json:"checkpoint"`
	Records    int64  `json:"records"`
	Bytes      int64  `json:"bytes"`
}

// reportJSON prints the summary of a run as JSON: on success, for a job
// already finished, and after an interruption (with its exit code 75).
// Other errors print no summary, only the error line on stderr.
func (a *app) reportJSON(t target, cfg *pipeline.Config, res pipeline.Result, err error, took time.Duration) error {
	s := runJSON{
		Status:          "done",
		Job:             cfg.Job,
		Store:           redactedStore(cfg.Store),
		Output:          t.display,
		Records:         res.Records,
		Skipped:         res.Skipped,
		DeadLettered:    res.DeadLettered,
		DurationSeconds: took.Seconds(),
	}
	if cfg.OnBadRecord == pipeline.DeadLetter {
		s.DeadLetterFile = cfg.DeadLetterPath
	}
	switch {
	case errors.Is(err, pipeline.ErrAlreadyDone):
		s.Status = "already_done"
		err = nil
	case errors.Is(err, ckpt.ErrInterrupted):
		s.Status = "interrupted"
	case err != nil:
		return runError(t.verb, res, err)
	}
	if res.Final != nil {
		s.Checkpoint = res.Final.Seq
		s.Bytes = res.Final.Bytes
	}
	if r := res.Resumed; r != nil && s.Status != "already_done" {
		s.ResumedFrom = &resumedJSON{Checkpoint: r.Seq, Records: r.Records, Bytes: r.Bytes}
	}
	if s.Status != "already_done" {
		s.Checkpoints = uint64(res.Checkpoints)
	}
	if perr := a.printJSON(s); perr != nil {
		return perr
	}
	if err != nil {
		return runError(t.verb, res, err)
	}
	return nil
}

// redactedStore renders a store's address without its credentials.
func redactedStore(url string) string {
	loc, err := store.ParseURL(url)
	if err != nil {
		return ""
	}
	return loc.String()
}

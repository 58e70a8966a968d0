// Package pipeline runs resumable record pipelines: a source with a
// resumable position feeds a function per record, which may update typed
// state and write output to a sink; checkpoints capture source position,
// state and sink position together, so a job killed at any instant and run
// again produces exactly the output of one uninterrupted run.
//
//	err := pipeline.Run(ctx, pipeline.Config{Job: "orders"},
//		pipeline.CSV("orders.csv"), pipeline.File("totals.jsonl"),
//		func(ctx context.Context, row *source.Row, st *Totals, out *sink.File) error {
//			st.Count++
//			_, err := fmt.Fprintf(out, "%s\n", row.Fields[0])
//			return err
//		})
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/source"
	"github.com/ckptdev/ckpt/stream"
)

var (
	// ErrAlreadyDone: the job finished in an earlier run, on the same
	// input, and its output is as it left it. Run returns it with a Result
	// describing that run; it is not a failure.
	ErrAlreadyDone = errors.New("job already finished")
	// ErrParamsChanged: the job's Params differ from those its checkpoint
	// was taken with. Resuming would mix output (or state) of the two, so
	// the job must be run with its old Params, or restarted.
	ErrParamsChanged = errors.New("job options changed since the checkpoint")
	// ErrOutputIsInput: a file the run would write (the output, the
	// dead-letter file) is one of its input files, or the output and the
	// dead-letter file are one file (by identity: hard and symbolic links
	// count). Opening it would truncate it. Nothing is written.
	ErrOutputIsInput = errors.New("a file to write is also read")
)

// Source is a record source with a resumable position. *source.CSV and
// *source.Lines are sources. A source may also be a Sized (for progress
// and the bytes trigger) and an InputFiles (so that Run refuses to write
// to one of its files).
type Source[R any] interface {
	// Next returns the next record, io.EOF at the end, or a
	// *source.RecordError for a malformed record (reading may go on).
	Next() (R, error)
	// Position returns where the record after the last one returned
	// starts, for the checkpoint.
	Position() (json.RawMessage, error)
	Close() error
}

// Sized is a Source that knows how much of its input it has read:
// Consumed returns the input bytes read so far, Size the total, or -1 if
// unknown. Without it, progress shows records only and the bytes trigger
// never fires.
type Sized interface {
	Consumed() int64
	Size() int64
}

// Lagging is a Source over a log that grows while it is read (a
// JetStream stream, a Kafka topic): Lag returns how many records of the
// log it has not read yet, or -1 if unknown. Progress reports it.
//
// Such a source may be unbounded: its Next returns stream.ErrIdle when no
// record arrived within a short wait, and Run then lets the triggers fire
// (an interval checkpoint of what was read, a shutdown checkpoint after a
// signal) and checks its context before calling Next again.
type Lagging interface {
	Lag() int64
}

// CheckpointFirst is an Output that chose, when opened fresh, something
// every later write depends on and that a crash must not lose, such as
// the JetStream sink's epoch, part of every message id: when it returns
// true, Run takes a checkpoint before the first record, so that a run
// resumed after a crash writes with the same choice.
type CheckpointFirst interface {
	CheckpointFirst() bool
}

// InputFiles is a Source that reads files: Paths returns them as opened.
// Run refuses to write to any of them (ErrOutputIsInput).
type InputFiles interface {
	Paths() []string
}

// Opener opens a source at a position recorded in a checkpoint, or at the
// beginning when pos is nil.
type Opener[R any] func(ctx context.Context, pos json.RawMessage) (Source[R], error)

// CSV opens CSV files (see source.Expand for the forms of each path).
func CSV(paths ...string) Opener[*source.Row] { return CSVWith(source.CSVOptions{}, paths...) }

// CSVWith opens CSV files with a separator or column names of their own:
// a directory's .tsv and .tab files when the separator is a tab, its .csv
// files otherwise.
func CSVWith(opts source.CSVOptions, paths ...string) Opener[*source.Row] {
	return func(_ context.Context, pos json.RawMessage) (Source[*source.Row], error) {
		exts := []string{".csv"}
		if opts.Comma == '\t' {
			exts = []string{".tsv", ".tab"}
		}
		files, err := expand(paths, withCompressed(exts)...)
		if err != nil {
			return nil, err
		}
		return source.OpenCSV(files, pos, opts)
	}
}

// Lines opens text or JSON Lines files, a record per line.
func Lines(paths ...string) Opener[*source.Line] {
	return func(_ context.Context, pos json.RawMessage) (Source[*source.Line], error) {
		files, err := LinesFiles(paths...)
		if err != nil {
			return nil, err
		}
		return source.OpenLines(files, pos)
	}
}

// CSVFiles returns the files that CSV(paths...) reads, in order: a
// directory's .csv files, compressed or not (.csv.gz, .csv.zst).
func CSVFiles(paths ...string) ([]string, error) {
	return expand(paths, withCompressed([]string{".csv"})...)
}

// LinesFiles returns the files that Lines(paths...) reads, in order: a
// directory's .jsonl, .ndjson and .txt files, compressed or not.
func LinesFiles(paths ...string) ([]string, error) {
	return expand(paths, withCompressed([]string{".jsonl", ".ndjson", ".txt"})...)
}

// withCompressed adds to each file ending its compressed forms.
func withCompressed(exts []string) []string {
	out := slices.Clone(exts)
	for _, e := range exts {
		for _, c := range source.CompressionSuffixes {
			out = append(out, e+c)
		}
	}
	return out
}

func expand(paths []string, exts ...string) ([]string, error) {
	var files []string
	for _, p := range paths {
		f, err := source.Expand(p, exts...)
		if err != nil {
			return nil, err
		}
		files = append(files, f...)
	}
	return files, nil
}

// Output is where a run writes: a sink whose position is part of every
// checkpoint (see ckpt.Sink), such as *sink.File. An output that also
// implements ckpt.ManifestCommitter (a database table) commits each
// checkpoint in the same transaction as its rows.
type Output interface {
	ckpt.Sink
	Close() error
}

// Completer is an Output whose result appears only once the job has
// finished, such as an S3 object written by one multipart upload: Run
// calls Complete after the final checkpoint is committed. A job that
// dies before Complete returns has finished all the same; its
// SinkOpener's Verify, which a rerun calls, must then complete what the
// final checkpoint describes.
type Completer interface {
	Complete(ctx context.Context) error
}

// SinkOpener opens a run's output, and checks a finished job's.
type SinkOpener[W Output] interface {
	// Open opens the output at a position recorded in a checkpoint, or
	// fresh (emptied) when pos is nil. inputs are the files the run reads:
	// an output that is one of them must be refused (ErrOutputIsInput)
	// before anything is changed.
	Open(ctx context.Context, pos json.RawMessage, inputs []string) (W, error)
	// Verify checks, changing nothing, that the output is what the
	// final checkpoint of a finished job, at pos, left: an output deleted,
	// emptied or edited since is reported (sink.ErrOutputChanged).
	Verify(ctx context.Context, pos json.RawMessage) error
}

// SinkFunc makes a SinkOpener of a function that opens an output. Its
// Open ignores inputs and its Verify checks nothing: a finished job's
// output is then taken as it is.
type SinkFunc[W Output] func(ctx context.Context, pos json.RawMessage) (W, error)

// Open calls f.
func (f SinkFunc[W]) Open(ctx context.Context, pos json.RawMessage, _ []string) (W, error) {
	return f(ctx, pos)
}

// Verify checks nothing.
func (f SinkFunc[W]) Verify(context.Context, json.RawMessage) error { return nil }

// File writes the output to a file at path (see sink.OpenFile: one
// writer at a time, a regular file only), compressed if its name ends in
// .gz, .zst or .zstd (see sink.Compression: a member or frame per
// checkpoint).
func File(path string) SinkOpener[*sink.File] { return fileOutput(path) }

type fileOutput string

func (p fileOutput) Open(_ context.Context, pos json.RawMessage, inputs []string) (*sink.File, error) {
	return sink.OpenFileWith(string(p), pos, sink.FileOptions{Refuse: notOneOf(string(p), inputs, "", nil), Compression: sink.CompressionOf(string(p))})
}

// precheck refuses an output that cannot be resumed before the job is
// opened.
func (p fileOutput) precheck() error { return sink.CheckPath(string(p)) }

func (p fileOutput) Verify(_ context.Context, pos json.RawMessage) error {
	return sink.VerifyFile(string(p), pos)
}

// notOneOf returns the check that a file to write, path, is none of the
// inputs, nor the file other (named otherName) that the run writes too.
func notOneOf(path string, inputs []string, otherName string, other fs.FileInfo) func(fs.FileInfo) error {
	return func(fi fs.FileInfo) error {
		if other != nil && os.SameFile(fi, other) {
			return fmt.Errorf("%w: %s and %s are the same file: give them different names", ErrOutputIsInput, path, otherName)
		}
		for _, in := range inputs {
			if ii, err := os.Stat(in); err == nil && os.SameFile(fi, ii) {
				return fmt.Errorf("%w: %s is the input file %s, which writing would destroy before it is read: write to another file", ErrOutputIsInput, path, in)
			}
		}
		return nil
	}
}

// Policy says what happens to a bad record.
type Policy int

const (
	// Fail stops the job at the first bad record, with an error naming
	// file, line and column. The default.
	Fail Policy = iota
	// Skip counts bad records and reports the count at the end.
	Skip
	// DeadLetter writes each bad record and the reason to a file, itself
	// part of every checkpoint (exactly once, like the output).
	DeadLetter
)

// String returns the policy's name.
func (p Policy) String() string {
	switch p {
	case Skip:
		return "skip"
	case DeadLetter:
		return "dead-letter"
	}
	return "fail"
}

// Config configures a run. Its embedded ckpt.Config sets the store, the
// triggers and the rest; Job names the job.
type Config struct {
	ckpt.Config
	// Job is the job's name (required).
	Job string
	// OnBadRecord is the bad-record policy; DeadLetterPath its file.
	OnBadRecord    Policy
	DeadLetterPath string
	// Progress, if set, is called about every ProgressEvery (default 200ms)
	// from another goroutine, and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// OnStart, if set, is called once the job is open and its input and
	// output are ready, before the first record: it says whether the run
	// resumes, and from where. (Run also logs it, at level Info.)
	OnStart func(Start)
	// Params are the options that shape the output, such as a
	// conversion's formats or an aggregation's columns. They are recorded
	// in every checkpoint's metadata (as "param.NAME"), and resuming with
	// other values is refused with ErrParamsChanged.
	Params map[string]string
}

// paramPrefix marks the metadata keys that hold Params.
const paramPrefix = "param."

// Func processes one record: it may update the state and write to out. It
// may return a *source.RecordError to have the record handled by the
// bad-record policy; any other error stops the job.
type Func[S, R any, W Output] func(ctx context.Context, rec R, st *S, out W) error

// Option is an optional part of a run.
type Option[S any, W Output] func(*options[S, W])

type options[S any, W Output] struct {
	atEnd  func(ctx context.Context, st *S, out W) error
	onOpen func(ctx context.Context, j Job, st *S) error
}

// Job is what OnOpen's function may use of the run's job: open keyed
// state on it (ckpt.NewKeyed) and register functions to run before every
// checkpoint's capture.
type Job interface {
	ckpt.KeyedJob
	OnCapture(fn func() error)
}

// OnOpen runs fn once the job is open and its state restored, before the
// first record: the place to open keyed state (ckpt.NewKeyed), which
// lives as long as the run, and to move buffered changes into it before
// every checkpoint (Job.OnCapture). st is the restored state.
func OnOpen[S any, W Output](fn func(ctx context.Context, j Job, st *S) error) Option[S, W] {
	return func(o *options[S, W]) { o.onOpen = fn }
}

// AtEnd runs fn once the input is exhausted, before the final checkpoint:
// the place to write results that need all the input, such as an
// aggregation's groups. If the job dies during fn, the next run resumes
// from the last checkpoint, whose output does not have fn's writes, and
// fn runs again.
func AtEnd[S any, W Output](fn func(ctx context.Context, st *S, out W) error) Option[S, W] {
	return func(o *options[S, W]) { o.atEnd = fn }
}

// Progress is a snapshot of a running job.
type Progress struct {
	Records  int64         // records read since the job began, across resumes
	Consumed int64         // input bytes read, in this run's input
	Size     int64         // total input bytes, -1 if unknown
	Start    int64         // Consumed when this run started (its resume point)
	Elapsed  time.Duration // since this run started
	Done     bool          // the last call
	// StartRecords is Records when this run started.
	StartRecords int64
	// Stream is set for a source over a log that grows (see Lagging),
	// and Lag is then how many of its records the job has not read yet
	// (-1 until the server has said).
	Stream bool
	Lag    int64
}

// Start describes how a run begins.
type Start struct {
	Job      string           `json:"job"`
	Resumed  *ckpt.Checkpoint `json:"resumed,omitempty"` // the checkpoint the run resumes from; nil if from the beginning
	Records  int64            `json:"records"`           // records read before this run (the checkpoint's)
	Consumed int64            `json:"consumed"`          // input bytes before the resume point, -1 if unknown
	Size     int64            `json:"size"`              // total input bytes, -1 if unknown
}

// Result describes a finished (or already finished, or stopped) run: a
// summary for people, and for scripts (it encodes as JSON with these
// names).
type Result struct {
	Job          string           `json:"job"`
	Resumed      *ckpt.Checkpoint `json:"resumed,omitempty"` // where this run started; nil if from the beginning
	Final        *ckpt.Checkpoint `json:"final,omitempty"`   // the final checkpoint; nil if the run did not finish
	Records      int64            `json:"records"`           // records read since the job began, across resumes
	Read         int64            `json:"read"`              // records read in this run
	Bytes        int64            `json:"bytes"`             // input bytes read in this run, -1 if unknown
	Checkpoints  int              `json:"checkpoints"`       // checkpoints taken in this run (the final one included)
	Skipped      int64            `json:"skipped"`           // bad records skipped since the job began
	DeadLettered int64            `json:"dead_lettered"`     // bad records written to the dead-letter file since the job began
	Duration     time.Duration    `json:"duration_ns"`       // of this run
}

// state wraps the user's state with the runner's own counters, so that
// they are restored exactly once too.
type state[S any] struct {
	User         S     `json:"user"`
	Skipped      int64 `json:"skipped,omitempty"`
	DeadLettered int64 `json:"dead_lettered,omitempty"`
}

// Run runs the job: it resumes from the newest checkpoint (or starts),
// feeds every record to fn, checkpoints per cfg's triggers, and finishes
// with a final checkpoint. fn may update the state and write to out; it
// may return a *source.RecordError to have a record handled by the
// bad-record policy. After SIGINT/SIGTERM it returns an error matching
// ckpt.ErrInterrupted once the shutdown checkpoint is saved.
//
// A job that finished in an earlier run is not run again: Run returns
// ErrAlreadyDone, or, if the input changed since, an error matching
// source.ErrInputChanged (the job must be restarted to take the new
// input).
func Run[S, R any, W Output](ctx context.Context, cfg Config, open Opener[R], output SinkOpener[W], fn Func[S, R, W], opts ...Option[S, W]) (Result, error) {
	began := time.Now()
	var o options[S, W]
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.Job == "" {
		return Result{}, errors.New("no job name")
	}
	if cfg.OnBadRecord == DeadLetter && cfg.DeadLetterPath == "" {
		return Result{}, errors.New("the dead-letter policy needs a file to write bad records to")
	}
	if len(cfg.Params) > 0 {
		md := maps.Clone(cfg.Metadata)
		if md == nil {
			md = make(map[string]string, len(cfg.Params))
		}
		for k, v := range cfg.Params {
			md[paramPrefix+k] = v
		}
		cfg.Metadata = md
	}
	// Outputs that cannot be resumed are refused before anything is
	// created (the store, the job's lock).
	if pc, ok := any(output).(interface{ precheck() error }); ok {
		if err := pc.precheck(); err != nil {
			return Result{Job: cfg.Job}, err
		}
	}
	if cfg.OnBadRecord == DeadLetter {
		if err := sink.CheckPath(cfg.DeadLetterPath); err != nil {
			return Result{Job: cfg.Job}, err
		}
	}
	job, err := ckpt.Open[state[S]](ctx, cfg.Job, cfg.Config)
	if err != nil {
		return Result{Job: cfg.Job}, err
	}
	defer job.Close()
	res := Result{Job: cfg.Job, Resumed: job.Resumed(), Bytes: -1}
	if cp := job.Resumed(); cp != nil {
		if err := sameParams(cp, cfg.Params); err != nil {
			return res, err
		}
	}
	if job.Done() {
		res.Final = job.Resumed()
		res.Records = res.Final.Records
		res.Skipped, res.DeadLettered = job.State.Skipped, job.State.DeadLettered
		if err := checkFinished(ctx, cfg, res.Final, open, output); err != nil {
			return res, err
		}
		return res, fmt.Errorf("%w (checkpoint %d, %s)", ErrAlreadyDone, res.Final.Seq, res.Final.Time.Format(time.RFC3339))
	}
	if o.onOpen != nil {
		if err := o.onOpen(ctx, job, &job.State.User); err != nil {
			return res, err
		}
	}
	r, err := newRun(ctx, job, cfg, open, output, began)
	if err != nil {
		return res, err
	}
	defer r.close()
	r.started()
	if err := r.loop(ctx, fn, o.atEnd); err != nil {
		return r.result(res), err
	}
	final, err := job.Finish(ctx)
	if err != nil {
		return r.result(res), err
	}
	res = r.result(res)
	res.Final = final
	if c, ok := any(r.out).(Completer); ok {
		if err := c.Complete(ctx); err != nil {
			return res, fmt.Errorf("job %s finished at checkpoint %d, but its output was not completed: %w (run the job again to complete it)", cfg.Job, final.Seq, err)
		}
	}
	if err := r.close(); err != nil {
		return res, err
	}
	res.Duration = time.Since(began)
	return res, nil
}

// checkFinished checks, for a job that finished, that its input and
// outputs are still those of its final checkpoint cp: a rerun on new
// input (a file rewritten with today's data, a pattern that now matches
// nothing) or on an output deleted or edited since must not be told the
// job is complete.
func checkFinished[R any, W Output](ctx context.Context, cfg Config, cp *ckpt.Checkpoint, open Opener[R], output SinkOpener[W]) error {
	src, err := open(ctx, cp.Source)
	if err != nil {
		return fmt.Errorf("job %s finished at checkpoint %d; %w (restart the job to process the input as it is now)", cfg.Job, cp.Seq, err)
	}
	src.Close()
	var pos positions
	if len(cp.Sink) > 0 {
		if err := json.Unmarshal(cp.Sink, &pos); err != nil {
			return fmt.Errorf("bad output position in checkpoint %d: %w", cp.Seq, err)
		}
	}
	if err := output.Verify(ctx, pos.Output); err != nil {
		return fmt.Errorf("job %s finished at checkpoint %d; %w (restart the job to write it again)", cfg.Job, cp.Seq, err)
	}
	if len(pos.DeadLetter) > 0 && cfg.DeadLetterPath != "" && !removedEmpty(cfg.DeadLetterPath, pos.DeadLetter) {
		if err := sink.VerifyFile(cfg.DeadLetterPath, pos.DeadLetter); err != nil {
			return fmt.Errorf("job %s finished at checkpoint %d; its dead-letter file: %w (restart the job to write it again)", cfg.Job, cp.Seq, err)
		}
	}
	return nil
}

// removedEmpty reports whether path, at position pos, was empty and is
// gone: a dead-letter file without letters, deleted, loses nothing.
func removedEmpty(path string, pos json.RawMessage) bool {
	var p sink.FilePosition
	if json.Unmarshal(pos, &p) != nil || p.Length != 0 {
		return false
	}
	_, err := os.Stat(path)
	return errors.Is(err, os.ErrNotExist)
}

type run[S, R any, W Output] struct {
	job   *ckpt.Job[state[S]]
	cfg   Config
	src   Source[R]
	out   W
	dl    *sink.File
	dlBuf []byte
	// dlPos is the dead-letter file's position in the checkpoint resumed
	// from, carried into every checkpoint of a run with another policy:
	// a later dead-letter run then appends to the letters written before
	// instead of starting the file over.
	dlPos  json.RawMessage
	closed bool

	sized       Sized   // the source, if it is one
	lagging     Lagging // the source, if it is one
	flushedRecs int64   // job.Records() at the last checkpoint's capture
	checkpoints int     // Flushes: checkpoints taken in this run
	records     atomic.Int64
	consumed    atomic.Int64
	start       int64
	startRecs   int64
	began       time.Time
	stopProg    chan struct{}
	progDone    chan struct{}
}

// positions are the sinks' positions in a checkpoint.
type positions struct {
	Output     json.RawMessage `json:"output"`
	DeadLetter json.RawMessage `json:"dead_letter,omitempty"`
}

func newRun[S, R any, W Output](ctx context.Context, job *ckpt.Job[state[S]], cfg Config, open Opener[R], output SinkOpener[W], began time.Time) (*run[S, R, W], error) {
	// began is set before the progress goroutine starts: it reads it.
	r := &run[S, R, W]{job: job, cfg: cfg, began: began}
	var srcPos json.RawMessage
	var pos positions
	if cp := job.Resumed(); cp != nil {
		srcPos = cp.Source
		if len(cp.Sink) > 0 {
			if err := json.Unmarshal(cp.Sink, &pos); err != nil {
				return nil, fmt.Errorf("bad output position in checkpoint %d: %w", cp.Seq, err)
			}
		}
	}
	src, err := open(ctx, srcPos)
	if err != nil {
		return nil, restartHint(err)
	}
	r.src = src
	var inputs []string
	if in, ok := src.(InputFiles); ok {
		inputs = in.Paths()
	}
	if r.out, err = output.Open(ctx, pos.Output, inputs); err != nil {
		src.Close()
		return nil, restartHint(err)
	}
	r.dlPos = pos.DeadLetter
	if cfg.OnBadRecord == DeadLetter {
		var outFile fs.FileInfo
		if f, ok := any(r.out).(interface{ Stat() (fs.FileInfo, error) }); ok {
			outFile, _ = f.Stat()
		}
		refuse := notOneOf(cfg.DeadLetterPath, inputs, "the output", outFile)
		if r.dl, err = sink.OpenFileWith(cfg.DeadLetterPath, pos.DeadLetter, sink.FileOptions{Refuse: refuse, Compression: sink.CompressionOf(cfg.DeadLetterPath)}); err != nil {
			src.Close()
			r.out.Close()
			return nil, restartHint(err)
		}
	}
	job.Bind(src, r)
	if sz, ok := src.(Sized); ok {
		r.sized = sz
	}
	if lg, ok := src.(Lagging); ok {
		r.lagging = lg
	}
	r.start = r.consumedNow()
	r.startRecs = job.Records()
	r.flushedRecs = r.startRecs
	r.records.Store(job.Records())
	r.consumed.Store(r.start)
	if cfg.Progress != nil {
		r.stopProg, r.progDone = make(chan struct{}), make(chan struct{})
		go r.reportProgress()
	}
	return r, nil
}

// consumedNow is the source's Consumed, or 0 if it does not know.
func (r *run[S, R, W]) consumedNow() int64 {
	if r.sized == nil {
		return 0
	}
	return r.sized.Consumed()
}

// started says how the run begins: in the log, and to OnStart.
func (r *run[S, R, W]) started() {
	st := Start{Job: r.cfg.Job, Resumed: r.job.Resumed(), Records: r.startRecs, Consumed: -1, Size: -1}
	if r.sized != nil {
		st.Consumed, st.Size = r.start, r.sized.Size()
	}
	log := r.cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cp := st.Resumed; cp != nil {
		log.Info("resuming from a checkpoint", "job", st.Job, "checkpoint", cp.Seq, "records", cp.Records, "taken", cp.Time.Format(time.RFC3339))
	} else {
		log.Debug("starting from the beginning", "job", st.Job)
	}
	if r.cfg.OnStart != nil {
		r.cfg.OnStart(st)
	}
}

// sameParams checks params against those recorded in cp. A checkpoint
// that records none (its job had no Params) is not checked.
func sameParams(cp *ckpt.Checkpoint, params map[string]string) error {
	var diffs []string
	recorded := false
	for k, was := range cp.Metadata {
		name, ok := strings.CutPrefix(k, paramPrefix)
		if !ok {
			continue
		}
		recorded = true
		if now, ok := params[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s was %s, now unset", name, shown(was)))
		} else if now != was {
			diffs = append(diffs, fmt.Sprintf("%s was %s, now %s", name, shown(was), shown(now)))
		}
	}
	if !recorded {
		return nil
	}
	for name, now := range params {
		if _, ok := cp.Metadata[paramPrefix+name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s was unset, now %s", name, shown(now)))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	slices.Sort(diffs)
	return restartHint(fmt.Errorf("%w (checkpoint %d): %s", ErrParamsChanged, cp.Seq, strings.Join(diffs, "; ")))
}

// shown renders a param's value for a message.
func shown(v string) string {
	if v == "" {
		return strconv.Quote(v)
	}
	return v
}

func restartHint(err error) error {
	if errors.Is(err, source.ErrInputChanged) || errors.Is(err, sink.ErrOutputChanged) || errors.Is(err, ErrParamsChanged) {
		return fmt.Errorf("%w; refusing to resume (restart the job to start over)", err)
	}
	return err
}

// Flush and Sync make the run a ckpt.Sink over the output and the
// dead-letter file together.
func (r *run[S, R, W]) Flush() (json.RawMessage, error) {
	r.checkpoints++
	r.flushedRecs = r.job.Records()
	var pos positions
	var err error
	if pos.Output, err = r.out.Flush(); err != nil {
		return nil, err
	}
	pos.DeadLetter = r.dlPos
	if r.dl != nil {
		if pos.DeadLetter, err = r.dl.Flush(); err != nil {
			return nil, err
		}
	}
	return json.Marshal(pos)
}

// Sync makes both outputs durable.
func (r *run[S, R, W]) Sync(ctx context.Context) error {
	if r.dl != nil {
		if err := r.dl.Sync(ctx); err != nil {
			return err
		}
	}
	return r.out.Sync(ctx)
}

// CommitManifest lets a transactional output commit the manifest with its
// rows (the dead-letter file, synced before, is covered by the checkpoint).
func (r *run[S, R, W]) CommitManifest(ctx context.Context, m ckpt.ManifestCommit) (bool, error) {
	if mc, ok := any(r.out).(ckpt.ManifestCommitter); ok {
		return mc.CommitManifest(ctx, m)
	}
	return false, nil
}

// progressBatch is how many records pass between updates of the counters
// the progress reporter reads, and between context checks.
const progressBatch = 1024

func (r *run[S, R, W]) loop(ctx context.Context, fn Func[S, R, W], atEnd func(context.Context, *S, W) error) error {
	job := r.job
	st := &job.State
	last := r.consumedNow()
	if cf, ok := any(r.out).(CheckpointFirst); ok && cf.CheckpointFirst() && job.Resumed() == nil {
		if _, err := job.Checkpoint(ctx); err != nil {
			return err
		}
	}
	var n int
	for {
		rec, err := r.src.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, stream.ErrIdle) {
			if err := r.idle(ctx); err != nil {
				return err
			}
			continue
		}
		if err == nil {
			err = fn(ctx, rec, &st.User, r.out)
		}
		if err != nil {
			if err := r.bad(err); err != nil {
				return err
			}
		}
		cur := r.consumedNow()
		if err := job.Advance(ctx, 1, cur-last); err != nil {
			return err
		}
		last = cur
		if n++; n == progressBatch {
			n = 0
			r.records.Store(job.Records())
			r.consumed.Store(cur)
			if ctx.Err() != nil {
				return r.stop(ctx)
			}
		}
	}
	r.records.Store(job.Records())
	r.consumed.Store(r.consumedNow())
	if atEnd != nil {
		return atEnd(ctx, &st.User, r.out)
	}
	return nil
}

// idle runs while an unbounded source waits for records: the progress
// counters are brought up to date, a cancelled context stops the run, and
// a trigger that fired (the interval, a shutdown signal) takes its
// checkpoint, but only if records were read since the last one: an idle
// stream is not checkpointed over and over.
func (r *run[S, R, W]) idle(ctx context.Context) error {
	r.records.Store(r.job.Records())
	r.consumed.Store(r.consumedNow())
	if ctx.Err() != nil {
		return r.stop(ctx)
	}
	if r.job.Stopping() || r.job.Records() != r.flushedRecs {
		return r.job.Advance(ctx, 0, 0)
	}
	return nil
}

// stop takes a shutdown checkpoint after the context was cancelled.
func (r *run[S, R, W]) stop(ctx context.Context) error {
	if _, err := r.job.Checkpoint(context.WithoutCancel(ctx)); err != nil {
		return errors.Join(ctx.Err(), err)
	}
	return fmt.Errorf("%w (checkpoint saved)", context.Cause(ctx))
}

// bad applies the bad-record policy to err, or returns err if it is not a
// bad record or the policy is to fail.
func (r *run[S, R, W]) bad(err error) error {
	var re *source.RecordError
	if !errors.As(err, &re) || r.cfg.OnBadRecord == Fail {
		if re != nil {
			return fmt.Errorf("bad record: %w (set the bad-record policy to skip or dead-letter to go on)", err)
		}
		return err
	}
	st := &r.job.State
	if r.cfg.OnBadRecord == Skip {
		st.Skipped++
		return nil
	}
	st.DeadLettered++
	r.dlBuf = appendDeadLetter(r.dlBuf[:0], re)
	_, werr := r.dl.Write(r.dlBuf)
	return werr
}

func (r *run[S, R, W]) result(res Result) Result {
	res.Records = r.job.Records()
	res.Read = res.Records - r.startRecs
	if r.sized != nil {
		res.Bytes = r.consumedNow() - r.start
	}
	res.Checkpoints = r.checkpoints
	res.Duration = time.Since(r.began)
	res.Skipped = r.job.State.Skipped
	res.DeadLettered = r.job.State.DeadLettered
	return res
}

func (r *run[S, R, W]) reportProgress() {
	defer close(r.progDone)
	every := r.cfg.ProgressEvery
	if every <= 0 {
		every = 200 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.cfg.Progress(r.progress(false))
		case <-r.stopProg:
			r.cfg.Progress(r.progress(true))
			return
		}
	}
}

func (r *run[S, R, W]) progress(done bool) Progress {
	size := int64(-1)
	if r.sized != nil {
		size = r.sized.Size()
	}
	var lag int64
	if r.lagging != nil {
		lag = r.lagging.Lag()
	}
	return Progress{Records: r.records.Load(), Consumed: r.consumed.Load(), Size: size, Start: r.start,
		StartRecords: r.startRecs, Elapsed: time.Since(r.began), Done: done, Stream: r.lagging != nil, Lag: lag}
}

func (r *run[S, R, W]) close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	// A checkpoint in flight syncs the files: let it end first.
	werr := r.job.Wait()
	if r.stopProg != nil {
		close(r.stopProg)
		<-r.progDone
	}
	err := errors.Join(werr, r.src.Close(), r.out.Close())
	if r.dl != nil {
		err = errors.Join(err, r.dl.Close())
	}
	return err
}

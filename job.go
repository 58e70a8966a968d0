package ckpt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/internal/shutdown"
	"github.com/ckptdev/ckpt/store"
)

// Every says when checkpoints are taken: whichever condition is met first.
// A zero field is off; the zero value takes checkpoints only by hand, on a
// shutdown signal and at the end.
//
// Automatic checkpoints are spaced so that capturing the state takes at
// most about a tenth of the job's time: when a state of 1 MiB or more
// takes d (10 ms or more) to encode and write, the next automatic
// checkpoint waits at least 9·d, whatever the triggers say. Only the
// state counts: the time the output takes to flush or sync does not, and
// a smaller state is never held back.
type Every struct {
	Records  int64         // after this many records
	Bytes    int64         // after this many input bytes
	Interval time.Duration // after this much time
}

// Config configures a job. The zero value is usable: a local store in
// ./.ckpt, JSON state compressed with S2, three checkpoints kept, a
// checkpoint on SIGINT/SIGTERM.
type Config struct {
	// Store is the store's URL (see store.ParseURL). Empty means
	// DefaultStore. Ignored when Backend is set.
	Store string
	// Backend is an already open store; the job does not close it.
	Backend store.Store
	// Every sets the automatic triggers.
	Every Every
	// Retain is how many of the newest checkpoints are kept, besides
	// savepoints. Zero means 3; a negative value keeps all.
	Retain int
	// Codec encodes the state. Nil means codec.JSON.
	Codec codec.Codec
	// Compression compresses the state's chunks: codec.Zstd or codec.S2.
	// The zero value (codec.None) means the default, DefaultCompression;
	// Uncompressed, not this field, stores state uncompressed.
	Compression codec.Compression
	// Uncompressed turns compression of state off, whatever Compression
	// says.
	Uncompressed bool
	// NoSignals leaves SIGINT and SIGTERM alone. By default the first one
	// makes the next Advance take a shutdown checkpoint and return
	// ErrInterrupted; a second one, however soon after, ends the process
	// at once (killed by that signal), which is safe: the next run resumes
	// from the last checkpoint. SIGINT is handled also in a process
	// started with it ignored (a script's background job).
	NoSignals bool
	// Restart discards the job's checkpoints, savepoints included, and
	// starts from the beginning.
	Restart bool
	// Metadata is recorded in every checkpoint.
	Metadata map[string]string
	// Logger receives warnings (a corrupt checkpoint skipped, a stale lock
	// taken over) and debug events. Nil means slog.Default().
	Logger *slog.Logger
	// Owner identifies this process in the job's lock. The zero value means
	// this process's pid and host name.
	Owner store.Owner
	// Observer, if set, is told of every checkpoint committed or failed
	// and of the restore (see Observer; package metrics exports them to
	// Prometheus).
	Observer Observer
	// Memory is the memory budget of each of the job's keyed states (see
	// Keyed), in bytes: past it, a state spills its changes to local disk
	// and reads what it does not hold from there. Zero means no budget:
	// keyed state stays in memory whatever its size.
	Memory int64
	// LocalDir is where keyed states keep their runs on local disk (a
	// cache of the store, reused on resume when it verifies). Empty means
	// a directory under os.TempDir().
	LocalDir string
}

// DefaultCompression is the compression of state when Config.Compression
// is zero. S2 rather than Zstd, measured (docs/BENCHMARKS.md): it saves
// and loads a large state about twice as fast on the same CPU, for about
// 1.6 times the bytes; Zstd is the choice where bytes cost more than CPU
// (a slow network to the store). Checkpoints written with S2 are of
// format version 2, which ckpt before S2 refuses as newer.
const DefaultCompression = codec.S2

func (c *Config) validate() error {
	if c.Every.Records < 0 || c.Every.Bytes < 0 || c.Every.Interval < 0 {
		return errors.New("ckpt: Every fields must not be negative")
	}
	if _, err := codec.ParseCompression(c.Compression.String()); err != nil {
		return fmt.Errorf("ckpt: Config.Compression: %w", err)
	}
	if c.Memory < 0 {
		return errors.New("ckpt: Memory must not be negative")
	}
	return nil
}

// PositionSource is a source that can say where it is: the position from
// which a resumed run continues. It is recorded as JSON in the checkpoint.
type PositionSource interface {
	Position() (json.RawMessage, error)
}

// Sink is a sink whose output is part of every checkpoint (for a file,
// its length). The engine uses it for step one of the commit protocol:
// Flush, synchronously, at the instant of the checkpoint; then Sync, which
// may run in the background while the job goes on writing, and must return
// before the manifest is written.
type Sink interface {
	// Flush hands buffered output to the operating system and returns the
	// position that covers everything written so far.
	Flush() (json.RawMessage, error)
	// Sync makes everything flushed so far durable. It may run concurrently
	// with writes of later output, never with Flush.
	Sync(ctx context.Context) error
}

// ManifestCommitter is a Sink that commits the checkpoint's manifest in the
// same transaction as its output, so that output and checkpoint become
// durable together or not at all (a database sink). The engine calls it
// after Sync, instead of writing the manifest to the store itself.
type ManifestCommitter interface {
	// CommitManifest writes m together with the output flushed so far. It
	// returns false, having done nothing, if this sink cannot (then the
	// engine writes the manifest to the store).
	CommitManifest(ctx context.Context, m ManifestCommit) (bool, error)
}

// ManifestCommit is a manifest to write: the store object's name and
// bytes, and the lock name and fencing token the writer holds, so that a
// transactional sink can refuse the commit of a writer that lost its lease.
type ManifestCommit struct {
	Name  string
	Body  []byte
	Lock  string
	Token uint64
}

// Job is a running job with typed state. Its State field holds the state
// restored from the newest valid checkpoint (or the zero value); the user
// updates it and every checkpoint saves it.
//
// A Job is used from one goroutine, except that signals and the interval
// timer may fire at any time.
type Job[S any] struct {
	// State is saved in every checkpoint and restored on resume.
	State S

	name    string
	cfg     Config
	codec   codec.Codec
	comp    codec.Compression
	st      store.Store
	ownSt   bool
	w       *writer
	log     *slog.Logger
	resumed *Checkpoint

	records, bytes         int64 // counted since the job began, across resumes
	nextRecords, nextBytes int64 // thresholds of the count triggers
	pending                atomic.Uint32
	timer                  *time.Timer
	stopSignals            func()

	src  PositionSource
	sink Sink

	// last is when the last checkpoint's capture ended, and gap the least
	// time before the next automatic one, so that capturing a large state
	// takes at most about a tenth of the job's time (see tooSoon).
	last time.Time
	gap  time.Duration

	// At most one automatic checkpoint is in flight: its manifest is being
	// committed in the background. inflight is closed when it ends and
	// bgErr then holds its error.
	inflight chan struct{}
	bgErr    error

	// kh holds the job's keyed states (NewKeyed).
	kh keyedHost

	closeOnce sync.Once
}

// Open opens the job called name for writing, taking its lock (a second
// writer is refused with ErrLocked), and restores State from the newest
// checkpoint that verifies. A corrupt newer checkpoint is logged as a
// warning and skipped; if checkpoints exist and none verifies, Open fails
// with ErrNoValidCheckpoint rather than start over silently.
func Open[S any](ctx context.Context, name string, cfg Config) (*Job[S], error) {
	if err := ValidJobName(name); err != nil {
		return nil, fmt.Errorf("ckpt: %w", err)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	j := &Job[S]{name: name, cfg: cfg, codec: cfg.Codec, comp: cfg.Compression, log: cfg.Logger}
	if j.comp == codec.None {
		j.comp = DefaultCompression
	}
	if j.codec == nil {
		j.codec = codec.JSON{}
	}
	if cfg.Uncompressed {
		j.comp = codec.None
	}
	if j.log == nil {
		j.log = slog.Default()
	}
	j.kh = keyedHost{job: name, codec: j.codec, comp: j.comp, dir: keyedDir(cfg.LocalDir, name), memory: cfg.Memory}
	retain := cfg.Retain
	if retain == 0 {
		retain = 3
	}
	j.st = cfg.Backend
	if j.st == nil {
		st, err := OpenStore(ctx, cfg.Store, j.log)
		if err != nil {
			return nil, err
		}
		j.st, j.ownSt = st, true
	}
	owner := cfg.Owner
	if owner.ID == "" {
		owner = processOwner()
	}
	w, err := openWriter(ctx, j.st, name, owner, retain, j.log)
	if err != nil {
		j.closeStore()
		return nil, err
	}
	j.w = w
	if cfg.Restart {
		if err := w.removeAll(ctx); err != nil {
			j.Close()
			return nil, fmt.Errorf("ckpt: restart job %q: %w", name, err)
		}
	}
	restoreStart := time.Now()
	if err := j.restore(ctx); err != nil {
		j.Close()
		return nil, err
	}
	observeRestore(cfg.Observer, name, j.resumed, restoreStart)
	j.arm()
	return j, nil
}

// restore loads the newest checkpoint whose manifest and blobs verify.
func (j *Job[S]) restore(ctx context.Context) error {
	cp, skipped, err := newestValid(j.name, j.w.kept, j.log, func(cp *Checkpoint) error {
		var zero S
		j.State = zero
		if err := readState(ctx, j.st, cp, "state", j.codec, &j.State); err != nil {
			return err
		}
		return j.kh.fetch(ctx, j.st, cp)
	})
	if err != nil || cp == nil {
		var zero S
		j.State = zero
		return err
	}
	j.resumed = cp
	j.w.trustOnly(cp)
	j.records, j.bytes = cp.Records, cp.Bytes
	if skipped > 0 {
		j.log.Warn("ckpt: resumed from an older checkpoint", "job", j.name, "seq", cp.Seq, "skipped", skipped)
	}
	return nil
}

// arm sets the count thresholds, the interval timer and the signal handler.
func (j *Job[S]) arm() {
	j.resetCounts()
	if d := j.cfg.Every.Interval; d > 0 {
		j.timer = time.AfterFunc(d, func() { j.pending.CompareAndSwap(0, uint32(TriggerInterval)) })
	}
	if !j.cfg.NoSignals {
		j.stopSignals = shutdown.Watch(func(sig os.Signal) {
			j.log.Info("ckpt: signal received; checkpointing before exit (signal again to exit at once)", "job", j.name, "signal", sig.String())
			j.pending.Store(uint32(TriggerShutdown))
		})
	}
}

func (j *Job[S]) resetCounts() {
	j.nextRecords, j.nextBytes = math.MaxInt64, math.MaxInt64
	if n := j.cfg.Every.Records; n > 0 {
		j.nextRecords = j.records + n
	}
	if n := j.cfg.Every.Bytes; n > 0 {
		j.nextBytes = j.bytes + n
	}
}

// Name returns the job's name.
func (j *Job[S]) Name() string { return j.name }

// Store returns the store the job writes to.
func (j *Job[S]) Store() store.Store { return j.st }

// Resumed returns the checkpoint the job resumed from, or nil if it
// started from the beginning.
func (j *Job[S]) Resumed() *Checkpoint { return j.resumed }

// Done reports whether the job had already finished: it resumed from the
// final checkpoint that Finish took.
func (j *Job[S]) Done() bool { return j.resumed != nil && j.resumed.Final }

// Records and Bytes return the input counted since the job began.
func (j *Job[S]) Records() int64 { return j.records }

// Bytes returns the input bytes counted since the job began.
func (j *Job[S]) Bytes() int64 { return j.bytes }

// Stopping reports whether a shutdown signal has arrived.
func (j *Job[S]) Stopping() bool { return Trigger(j.pending.Load()) == TriggerShutdown }

// Bind attaches the source and sink whose positions every checkpoint
// records. Either may be nil.
func (j *Job[S]) Bind(src PositionSource, sink Sink) { j.src, j.sink = src, sink }

// Advance counts records and bytes of input just processed and takes a
// checkpoint if a trigger has fired. Call it after the state reflects them.
// It costs two additions and three comparisons when nothing is due.
//
// Automatic checkpoints commit in the background: Advance returns once
// state and positions are captured, and the error of a failed background
// commit is returned once, by the next Advance (or Checkpoint, Wait or
// Close). After a
// shutdown signal Advance takes the shutdown checkpoint synchronously and
// returns ErrInterrupted: the caller stops and exits; the next run resumes.
func (j *Job[S]) Advance(ctx context.Context, records, bytes int64) error {
	j.records += records
	j.bytes += bytes
	if j.records < j.nextRecords && j.bytes < j.nextBytes && j.pending.Load() == 0 {
		return nil
	}
	return j.fire(ctx)
}

func (j *Job[S]) fire(ctx context.Context) error {
	t := Trigger(j.pending.Load())
	switch {
	case t == TriggerShutdown:
	case t == TriggerInterval:
	case j.records >= j.nextRecords:
		t = TriggerRecords
	default:
		t = TriggerBytes
	}
	if t != TriggerShutdown && j.tooSoon() {
		return nil
	}
	if _, err := j.commit(ctx, t, false, "", t != TriggerShutdown); err != nil {
		return err
	}
	if t == TriggerShutdown {
		return ErrInterrupted
	}
	return nil
}

// captureShare bounds the share of a job's time that capturing state for
// automatic checkpoints may take: after a capture that took d, the next
// automatic checkpoint waits until (captureShare-1)·d has passed.
const captureShare = 10

// slowCapture is the capture time from which automatic checkpoints are
// spaced out; below it, the triggers are followed exactly.
const slowCapture = 10 * time.Millisecond

// largeState is the raw state size from which a slow capture spaces
// checkpoints out. A smaller state is fast to capture whatever the clock
// said: a capture that took long was held up by a loaded machine, not by
// the state, and its checkpoints are not thinned out.
const largeState = 1 << 20

// tooSoon postpones an automatic checkpoint that would come sooner than
// the gap the last capture calls for, re-arming the trigger that fired.
// A small state never waits (its capture takes microseconds); a state of
// hundreds of MiB, which takes seconds to encode, is not encoded every
// second. A failed background commit is never postponed: the next commit
// reports it.
func (j *Job[S]) tooSoon() bool {
	since := time.Since(j.last)
	if j.gap <= 0 || since >= j.gap || j.failedInBackground() {
		return false
	}
	j.resetCounts()
	if j.pending.CompareAndSwap(uint32(TriggerInterval), 0) && j.timer != nil {
		j.timer.Reset(j.gap - since)
	}
	return true
}

// failedInBackground reports whether the checkpoint in flight has ended
// with an error, without waiting for it.
func (j *Job[S]) failedInBackground() bool {
	if j.inflight == nil {
		return false
	}
	select {
	case <-j.inflight:
		return j.bgErr != nil
	default:
		return false
	}
}

// Checkpoint takes a checkpoint now (trigger manual).
func (j *Job[S]) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	return j.commit(ctx, TriggerManual, false, "", false)
}

// Savepoint takes a checkpoint now that retention keeps until it is
// deleted, with an optional label.
func (j *Job[S]) Savepoint(ctx context.Context, label string) (*Checkpoint, error) {
	return j.commit(ctx, TriggerManual, true, label, false)
}

// Finish takes the final checkpoint: the job is complete, and opening it
// again reports Done.
func (j *Job[S]) Finish(ctx context.Context) (*Checkpoint, error) {
	cp, err := j.commit(ctx, TriggerFinal, false, "", false)
	if err == nil {
		// A finished job is not resumed: its keyed states' local copies
		// go when it closes.
		j.kh.finished = true
	}
	return cp, err
}

// commit takes a checkpoint: the writer captures state and positions in
// the calling goroutine (after the previous checkpoint has ended), then
// commits, in the background when async, else before returning. The job
// goes on processing while the background part runs; state and positions
// were captured at one instant, so the checkpoint is consistent whatever
// the job writes meanwhile. See the protocol in writer.go.
func (j *Job[S]) commit(ctx context.Context, t Trigger, savepoint bool, label string, async bool) (*Checkpoint, error) {
	if j.w == nil {
		return nil, fmt.Errorf("ckpt: job %q: %w", j.name, store.ErrClosed)
	}
	if err := j.wait(); err != nil {
		return nil, err
	}
	cp := &Checkpoint{
		Trigger:   t,
		Savepoint: savepoint,
		Label:     label,
		Final:     t == TriggerFinal,
		Records:   j.records,
		Bytes:     j.bytes,
		// A copy: the manifest may be encoded in the background, while
		// the caller goes on changing the map it configured.
		Metadata: maps.Clone(j.cfg.Metadata),
	}
	start := time.Now()
	if err := j.kh.beforeCapture(); err != nil {
		return nil, err
	}
	j.kh.freeze(cp)
	took, err := j.w.capture(ctx, cp, j.src, j.sink, []stateInput{{name: "state", codec: j.codec, value: &j.State}}, j.comp)
	if err != nil {
		settleKeyed(cp)
		observeCommit(j.cfg.Observer, j.name, nil, start, err)
		return nil, err
	}
	j.last = time.Now()
	j.gap = 0
	if took >= slowCapture && cp.plainRawSize() >= largeState {
		j.gap = (captureShare - 1) * took
	}
	j.resetCounts()
	if t != TriggerShutdown {
		j.pending.CompareAndSwap(uint32(TriggerInterval), 0)
	}
	if j.timer != nil {
		j.timer.Reset(max(j.cfg.Every.Interval, j.gap))
	}
	w, sink := j.w, j.sink
	if !async {
		cp, err := w.commit(ctx, cp, sink)
		observeCommit(j.cfg.Observer, j.name, cp, start, err)
		return cp, err
	}
	done := make(chan struct{})
	j.inflight = done
	bg := context.WithoutCancel(ctx)
	go func() {
		defer close(done)
		_, j.bgErr = w.commit(bg, cp, sink)
		observeCommit(j.cfg.Observer, j.name, cp, start, j.bgErr)
		if j.bgErr != nil {
			// Make the next Advance take the commit path, which reports
			// the error, rather than wait for the next trigger.
			j.pending.CompareAndSwap(0, uint32(TriggerInterval))
		}
	}()
	return cp, nil
}

// wait waits for the checkpoint in flight, if any, and returns its error.
// A failed background checkpoint leaves the previous one valid; its error
// is returned once, by the next call that checkpoints (or by Close).
func (j *Job[S]) wait() error {
	if j.inflight == nil {
		return nil
	}
	<-j.inflight
	j.inflight = nil
	err := j.bgErr
	j.bgErr = nil
	return err
}

// Wait waits until the automatic checkpoint in flight, if any, is
// committed, and returns its error.
func (j *Job[S]) Wait() error { return j.wait() }

// Close waits for a checkpoint in flight and releases the job's lock
// without taking another. Work since the last checkpoint is redone by the
// next run. It returns the error of the checkpoint in flight, if it
// failed. Calling Close twice is harmless.
func (j *Job[S]) Close() error {
	var err error
	j.closeOnce.Do(func() {
		err = j.wait()
		if j.timer != nil {
			j.timer.Stop()
		}
		if j.stopSignals != nil {
			j.stopSignals()
		}
		if j.w != nil {
			err = errors.Join(err, j.w.close(context.Background()))
			j.w = nil
		}
		j.kh.close()
		j.closeStore()
	})
	return err
}

func (j *Job[S]) closeStore() {
	if j.ownSt && j.st != nil {
		j.st.Close()
	}
}

// Package eventlog records what asset runs did: the runs themselves, and an
// append-only log of events (a step started, a materialization, a failure,
// a retry) with, for every asset and partition, its latest materialization
// and latest failure kept in a state table updated in the same transaction.
//
// Two backends share one implementation over database/sql: SQLite (pure
// Go, one file, no server; the embedded default) and PostgreSQL (shared by
// many machines). Both take many concurrent writers, in one process or in
// many.
//
// Writes are batched: Append queues an event and a writer goroutine commits
// queued events in one transaction every BatchSize events or FlushInterval,
// whichever comes first. Flush (and Record, which is Append then Flush)
// returns when everything appended before it is durable; concurrent
// flushes share a transaction (group commit).
package eventlog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store"
)

// Errors to check with errors.Is.
var (
	// ErrNotFound: no such run.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous: a run id prefix matches more than one run.
	ErrAmbiguous = errors.New("ambiguous run id")
	// ErrAlreadyResumed: the run already has a child run (each run is
	// resumed at most once; resume the child instead).
	ErrAlreadyResumed = errors.New("run already resumed")
	// ErrClosed: the log was used after Close.
	ErrClosed = errors.New("event log closed")
	// ErrCorrupt: the log's file is damaged (SQLite).
	ErrCorrupt = errors.New("damaged")
)

// RunStatus is where a run is in its life. A run whose process died stays
// RunStarted in the log; Run.Alive tells it apart from a live one.
type RunStatus string

// The run statuses.
const (
	RunStarted  RunStatus = "started"
	RunSuccess  RunStatus = "success"
	RunFailure  RunStatus = "failure"
	RunCanceled RunStatus = "canceled"
)

// Run is one execution of a selection of assets.
type Run struct {
	ID string `json:"id"`
	// Parent is the run this one resumes ("" for a fresh run); Root is
	// the first run of the chain (itself for a fresh run).
	Parent string    `json:"parent,omitempty"`
	Root   string    `json:"root"`
	Status RunStatus `json:"status"`
	// Created is when the run started; Ended when it finished (zero while
	// running); Heartbeat when its process last said it was alive.
	Created   time.Time `json:"created"`
	Ended     time.Time `json:"ended,omitzero"`
	Heartbeat time.Time `json:"heartbeat,omitzero"`
	// Host and PID name the process that runs it.
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
	// Spec is what the run was asked to do, owned by its caller (the asset
	// package keeps the selection, partitions and options there).
	Spec json.RawMessage `json:"spec,omitempty"`
	// Error says why it failed or was canceled.
	Error string `json:"error,omitempty"`
	// HeartbeatInterval is how often the run's process records a
	// heartbeat; DeadAfter how old its last heartbeat may be before the
	// run counts as dead (zero: six intervals). Other processes judge the
	// run by these, whatever their own settings (see Alive).
	HeartbeatInterval time.Duration `json:"heartbeat_interval_ns,omitempty"`
	DeadAfter         time.Duration `json:"dead_after_ns,omitempty"`
}

// Kind is the kind of an event.
type Kind string

// The event kinds.
const (
	// KindStepStart: an asset (partition) began computing.
	KindStepStart Kind = "step_start"
	// KindMaterialization: an asset (partition) was computed and its value saved.
	// The event carries a Materialization.
	KindMaterialization Kind = "materialization"
	// KindStepFailure: an asset (partition) failed after its last attempt, or
	// a blocking check failed.
	KindStepFailure Kind = "step_failure"
	// KindStepRetry: an attempt failed and another follows.
	KindStepRetry Kind = "step_retry"
	// KindStepSkipped: not computed because an upstream did not succeed.
	KindStepSkipped Kind = "step_skipped"
	// KindStepFresh: not computed because, when its turn came, it was
	// fresh (its upstream was recomputed to the data versions it was
	// computed from).
	KindStepFresh Kind = "step_fresh"
	// KindStepReused: a resumed run took the materialization of an earlier
	// run of its chain instead of computing.
	KindStepReused Kind = "step_reused"
	// KindStepCanceled: the run was canceled before the step ended.
	KindStepCanceled Kind = "step_canceled"
	// KindMessage: a free-form message of the run.
	KindMessage Kind = "message"
)

// Outcome is how a step (one asset partition of a run) ended: the
// vocabulary of step results, in the log and in the asset package, which
// re-exports it as asset.Outcome.
type Outcome string

// The outcomes.
const (
	// OutcomeMaterialized: computed, saved and recorded.
	OutcomeMaterialized Outcome = "materialized"
	// OutcomeReused: a resumed run took what an earlier run of its chain
	// materialized.
	OutcomeReused Outcome = "reused"
	// OutcomeFresh: a run that computes only what is stale found it fresh
	// when its turn came (its upstream was recomputed to the same data
	// versions).
	OutcomeFresh Outcome = "fresh"
	// OutcomeFailed: its last attempt failed, or a blocking check did.
	OutcomeFailed Outcome = "failed"
	// OutcomeSkipped: not computed because an upstream did not succeed.
	OutcomeSkipped Outcome = "skipped"
	// OutcomeCanceled: not computed, or interrupted, because the run was
	// canceled.
	OutcomeCanceled Outcome = "canceled"
	// OutcomeInterrupted: started and never ended: its run is still
	// computing it, or died doing so.
	OutcomeInterrupted Outcome = "interrupted"
)

// Kind returns the kind of the event that records a step ending with o
// (KindStepStart for OutcomeInterrupted, which no event ends).
func (o Outcome) Kind() Kind {
	switch o {
	case OutcomeMaterialized:
		return KindMaterialization
	case OutcomeReused:
		return KindStepReused
	case OutcomeFresh:
		return KindStepFresh
	case OutcomeFailed:
		return KindStepFailure
	case OutcomeSkipped:
		return KindStepSkipped
	case OutcomeCanceled:
		return KindStepCanceled
	}
	return KindStepStart
}

// Outcome returns the outcome of a step whose newest event is of kind k:
// OutcomeInterrupted for KindStepStart, and "" for the kinds that say
// nothing of how a step ended (KindStepRetry, KindMessage).
func (k Kind) Outcome() Outcome {
	switch k {
	case KindMaterialization:
		return OutcomeMaterialized
	case KindStepReused:
		return OutcomeReused
	case KindStepFresh:
		return OutcomeFresh
	case KindStepFailure:
		return OutcomeFailed
	case KindStepSkipped:
		return OutcomeSkipped
	case KindStepCanceled:
		return OutcomeCanceled
	case KindStepStart:
		return OutcomeInterrupted
	}
	return ""
}

// Event is one entry of the log.
type Event struct {
	ID        int64     `json:"id"` // assigned when committed; increasing
	RunID     string    `json:"run_id"`
	Time      time.Time `json:"time"`
	Kind      Kind      `json:"kind"`
	Key       string    `json:"key,omitempty"`
	Partition string    `json:"partition,omitempty"`
	// Materialization is set for KindMaterialization events.
	Materialization *Materialization `json:"materialization,omitempty"`
	Attempt         int              `json:"attempt,omitempty"`
	Error           string           `json:"error,omitempty"`
	Message         string           `json:"message,omitempty"`
	// Worker names the worker process that computed the step, for a run
	// executed by a pool of workers ("" in process).
	Worker string `json:"worker,omitempty"`
}

// Materialization describes one saved value of an asset (partition): how
// it was made and where it is. The value itself is never in the log; Value
// references its blobs in the store.
type Materialization struct {
	// DataVersion identifies the data: by default a hash of CodeVersion
	// and the Inputs, or what the asset's code supplied.
	DataVersion string `json:"data_version"`
	CodeVersion string `json:"code_version,omitempty"`
	// Inputs maps every upstream asset (partition) read, as "key" or
	// "key[partition]", to the data version it had.
	Inputs map[string]string `json:"inputs,omitempty"`
	// Value references the serialized value in the store (nil for an
	// asset that keeps its data itself); Store names that store when it is
	// not the default one.
	Value *ckpt.StateRef `json:"value,omitempty"`
	Store string         `json:"store,omitempty"`
	// External is what an asset that keeps its own data (a file, a table)
	// reported about it instead of a value.
	External json.RawMessage `json:"external,omitempty"`
	// Duration of the successful attempt; Attempt is its number (1 based).
	Duration time.Duration `json:"duration_ns"`
	Attempt  int           `json:"attempt,omitempty"`
	// Rows is the value's length when it has one (-1 when unknown); Bytes
	// is its serialized size in the store.
	Rows     int64             `json:"rows"`
	Bytes    int64             `json:"bytes"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Checks   []CheckResult     `json:"checks,omitempty"`
}

// ChecksPassed reports whether every blocking check passed.
func (m *Materialization) ChecksPassed() bool {
	for _, c := range m.Checks {
		if c.Blocking && !c.Passed {
			return false
		}
	}
	return true
}

// CheckResult is the outcome of one check run on a materialization.
type CheckResult struct {
	Name     string `json:"name"`
	Passed   bool   `json:"passed"`
	Blocking bool   `json:"blocking,omitempty"`
	Message  string `json:"message,omitempty"`
}

// State is what the log knows of one asset partition: its latest
// materialization and its latest failure, either of which may be absent.
type State struct {
	Key       string `json:"key"`
	Partition string `json:"partition,omitempty"`
	// Materialization is the newest KindMaterialization event, nil if none.
	Materialization *Event `json:"materialization,omitempty"`
	// Failure is the newest KindStepFailure event, nil if none.
	Failure *Event `json:"failure,omitempty"`
}

// Failed reports whether the newest outcome is a failure.
func (s *State) Failed() bool {
	return s.Failure != nil && (s.Materialization == nil || s.Failure.ID > s.Materialization.ID)
}

// Options configure a Log. The zero value means the defaults given.
type Options struct {
	// BatchSize: the writer commits when this many events are queued.
	// Zero means 512.
	BatchSize int
	// FlushInterval: queued events are committed at least this often.
	// Zero means 50ms.
	FlushInterval time.Duration
	// Schema (PostgreSQL only) puts the tables in this schema, created if
	// missing. Empty means the connection's search_path.
	Schema string
	// SyncFull (SQLite only) fsyncs the log at every commit, so that a
	// committed event survives a machine crash. By default the log is in
	// WAL mode with synchronous=NORMAL: every commit survives a crash of
	// the process, and a machine crash can lose only the newest commits (a
	// suffix of the log, so nothing recorded ever names a lost upstream);
	// the assets they recorded are then computed again.
	SyncFull bool
	// Logger receives warnings. Nil means slog.Default().
	Logger *slog.Logger
}

func (o *Options) fill() error {
	if o.BatchSize < 0 || o.FlushInterval < 0 {
		return errors.New("eventlog: BatchSize and FlushInterval must not be negative")
	}
	if o.BatchSize == 0 {
		o.BatchSize = 512
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = 50 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Schema != "" && !validIdent(o.Schema) {
		return fmt.Errorf("eventlog: schema %q: use letters, digits and '_', not starting with a digit", o.Schema)
	}
	return nil
}

func validIdent(s string) bool {
	if s == "" || len(s) > 63 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Log is an open event log. Its methods are safe for concurrent use.
type Log struct {
	db   *sql.DB
	d    *dialect
	opts Options
	b    *batcher
	url  string

	// Statements of the writer, prepared once: a materialization is
	// committed alone far more often than not.
	insertOne, upsertMat, upsertFail *sql.Stmt
}

// Open opens (creating it and its tables if needed) the event log at url:
// "postgres://..." or "postgresql://..." for PostgreSQL; "sqlite:PATH" or a
// plain file path for SQLite.
func Open(ctx context.Context, url string, o Options) (*Log, error) {
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		return OpenPostgres(ctx, url, o)
	}
	path := strings.TrimPrefix(url, "sqlite:")
	path = strings.TrimPrefix(path, "//") // sqlite:///abs/path
	if path == "" {
		return nil, errors.New("eventlog: empty location")
	}
	return OpenSQLite(ctx, path, o)
}

func open(ctx context.Context, db *sql.DB, d *dialect, url string, o Options) (*Log, error) {
	l := &Log{db: db, d: d, opts: o, url: url}
	if err := l.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	for _, p := range []struct {
		st **sql.Stmt
		q  string
	}{{&l.insertOne, insertTrackedSQL}, {&l.upsertMat, upsertMaterialization}, {&l.upsertFail, upsertFailure}} {
		st, err := db.PrepareContext(ctx, d.q(p.q))
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("eventlog: prepare statements on %s: %w", l, err)
		}
		*p.st = st
	}
	l.b = newBatcher(l)
	return l, nil
}

// DSN returns the location the log was opened at, with its credentials:
// for a caller that opens connections of its own to the same database.
func (l *Log) DSN() string { return l.url }

// String returns the location the log was opened at, without a password.
func (l *Log) String() string { return redact(l.url) }

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(an address that does not parse)"
	}
	return store.Redact(p)
}

// Backend returns "sqlite" or "postgres".
func (l *Log) Backend() string { return l.d.name }

// Close flushes queued events and closes the log.
func (l *Log) Close() error {
	err := l.b.close()
	if cerr := l.db.Close(); err == nil {
		err = cerr
	}
	return err
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

package asset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/asset/eventlog"
	"github.com/ckptdev/ckpt/store"
)

// Config says where an Instance keeps values and events. The zero value
// keeps both in the local store .ckpt: values under assets/, the event
// log in the SQLite file .ckpt/assets.db.
type Config struct {
	// Store is the URL of the store for values (see store.ParseURL);
	// empty means ckpt.DefaultStore. Ignored when Backend is set.
	Store string
	// Backend is an already open store; the instance does not close it.
	Backend store.Store
	// Prefix is where in the store values live; empty means "assets/".
	Prefix string
	// EventLog is the event log's location: a SQLite file path (or
	// "sqlite:PATH"), or a postgres:// URL. Empty means assets.db in the
	// store's directory, for a local store; other stores need one.
	// Ignored when Log is set.
	EventLog string
	// Log is an already open event log; the instance does not close it.
	Log *eventlog.Log
	// EventLogOptions configure the event log the instance opens.
	EventLogOptions eventlog.Options
	// Parallelism bounds the assets computed at once; 0 means GOMAXPROCS.
	Parallelism int
	// HeartbeatInterval is how often a run records that it is alive; 0
	// means 5s. DeadAfter is how old a run's last heartbeat must be for the
	// run to count as dead when its process cannot be checked (another
	// host); 0 means 6 heartbeats. A run records both, and every process
	// judges it by them, whatever its own settings; these judge only runs
	// that recorded none.
	HeartbeatInterval time.Duration
	DeadAfter         time.Duration
	// WorkDir is where runs restore File values; empty means os.TempDir().
	WorkDir string
	// Logger receives the runs' progress. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock that decides which time partitions exist; nil means
	// time.Now.
	Now func() time.Time
	// Executor computes the steps of runs on workers (package
	// asset/riverexec: a pool of processes on many machines, through a
	// PostgreSQL job queue); nil computes them in the calling process.
	Executor Executor
}

// Instance is a graph bound to where its values and events are kept. Its
// methods are safe for concurrent use; several instances (in one process
// or many) may share the same store and event log.
type Instance struct {
	g       *Graph
	st      store.Store
	ownSt   bool
	log     *eventlog.Log
	ownLog  bool
	prefix  string
	workDir string
	logger  *slog.Logger
	cfg     Config
	fileSeq atomic.Int64

	mu     sync.Mutex
	stores map[string]store.Store // per-asset stores, by URL
	remote map[string]*remoteRun  // runs whose steps this worker computed
}

// Open validates g and opens the store and the event log cfg names.
func Open(ctx context.Context, g *Graph, cfg Config) (*Instance, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if cfg.Parallelism < 0 || cfg.HeartbeatInterval < 0 || cfg.DeadAfter < 0 {
		return nil, errors.New("asset: Config: Parallelism, HeartbeatInterval and DeadAfter must not be negative")
	}
	in := &Instance{g: g, cfg: cfg, stores: map[string]store.Store{}, remote: map[string]*remoteRun{}}
	in.logger = cfg.Logger
	if in.logger == nil {
		in.logger = slog.Default()
	}
	in.prefix = cfg.Prefix
	if in.prefix == "" {
		in.prefix = "assets/"
	}
	if !strings.HasSuffix(in.prefix, "/") || store.ValidPrefix(in.prefix) != nil {
		return nil, fmt.Errorf("asset: Config.Prefix %q must be a valid store prefix ending in /", in.prefix)
	}
	in.workDir = cfg.WorkDir
	if in.workDir == "" {
		in.workDir = os.TempDir()
	}
	if in.cfg.Parallelism == 0 {
		in.cfg.Parallelism = runtime.GOMAXPROCS(0)
	}
	if in.cfg.HeartbeatInterval == 0 {
		in.cfg.HeartbeatInterval = 5 * time.Second
	}
	if in.cfg.DeadAfter == 0 {
		in.cfg.DeadAfter = 6 * in.cfg.HeartbeatInterval
	}
	if in.cfg.Now == nil {
		in.cfg.Now = time.Now
	}

	storeURL := cfg.Store
	if storeURL == "" {
		storeURL = ckpt.DefaultStore
	}
	if cfg.Backend != nil {
		in.st = cfg.Backend
	} else {
		st, err := ckpt.OpenStore(ctx, storeURL, in.logger)
		if err != nil {
			return nil, fmt.Errorf("asset: %w", err)
		}
		in.st, in.ownSt = st, true
	}

	if cfg.Log != nil {
		in.log = cfg.Log
		return in, nil
	}
	logURL := cfg.EventLog
	if logURL == "" {
		loc, err := store.ParseURL(storeURL)
		if cfg.Backend != nil || err != nil || loc.Scheme != "file" {
			in.Close()
			return nil, errors.New("asset: Config.EventLog is required unless the store is a local directory (give a SQLite file or a postgres:// URL)")
		}
		logURL = filepath.Join(loc.Path, "assets.db")
	}
	l, err := eventlog.Open(ctx, logURL, cfg.EventLogOptions)
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("asset: %w", err)
	}
	in.log, in.ownLog = l, true
	return in, nil
}

// Graph returns the instance's graph.
func (in *Instance) Graph() *Graph { return in.g }

// EventLog returns the instance's event log.
func (in *Instance) EventLog() *eventlog.Log { return in.log }

// Store returns the instance's store.
func (in *Instance) Store() store.Store { return in.st }

// Liveness returns how the instance tells a dead run from a live one.
func (in *Instance) Liveness() eventlog.Liveness {
	return eventlog.Liveness{DeadAfter: in.cfg.DeadAfter}
}

// CheckEventLog returns an error wrapping ErrEventLogEmpty when the event
// log has no runs but the store holds asset values: the log is likely not
// the one they were recorded in (opening a mistyped location creates a
// new, empty log), and everything would look never materialized. Values
// small enough to live in the event log itself leave nothing in the store:
// a graph of only such values is not detected.
func (in *Instance) CheckEventLog(ctx context.Context) error {
	runs, err := in.log.Runs(ctx, eventlog.RunFilter{Limit: 1})
	if err != nil {
		return fmt.Errorf("asset: %w", err)
	}
	if len(runs) > 0 {
		return nil
	}
	names, err := in.st.List(ctx, in.prefix)
	if err != nil {
		return fmt.Errorf("asset: list the values in the store: %w", err)
	}
	if len(names) == 0 {
		return nil
	}
	where := in.cfg.Store
	if where == "" {
		where = ckpt.DefaultStore
	}
	return fmt.Errorf("asset: the event log at %s is %w but the store %s holds %d value %s: is it the event log they were recorded in?",
		in.log, ErrEventLogEmpty, where, len(names), plural(len(names), "blob", "blobs"))
}

// plural returns one or many, as n asks.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Close closes what Open opened. Runs must have returned.
func (in *Instance) Close() error {
	var errs []error
	if in.ownLog && in.log != nil {
		errs = append(errs, in.log.Close())
	}
	in.mu.Lock()
	for _, st := range in.stores {
		errs = append(errs, st.Close())
	}
	in.stores = map[string]store.Store{}
	in.mu.Unlock()
	if in.ownSt && in.st != nil {
		errs = append(errs, in.st.Close())
	}
	return errors.Join(errs...)
}

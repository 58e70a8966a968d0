// Package riverexec executes the steps of asset runs on a pool of worker
// processes, on any number of machines, through River
// (github.com/riverqueue/river), a job queue on PostgreSQL.
//
// The submitting process plans a run as always and hands each step whose
// upstream is done to River as a job; the other steps wait in a table of
// the run's steps and are enqueued, in the same transaction that commits
// the last of their upstream, as it completes. Workers (Work, or the
// `workers` command of package assetcli) take jobs from River, compute
// the step, and commit in one PostgreSQL transaction: the materialization
// (or failure) event, the step's new state, the jobs of the steps it made
// ready, the run's end when it was the last step, and the completion of
// its River job. That transaction first checks the step's fencing token:
// each execution of a step takes a lease that increments the token, and
// a worker that another presumed dead and took over from cannot commit.
//
// Dead workers are found by heartbeat, not by River's time-based rescue:
// every worker records a heartbeat every HeartbeatInterval, and any
// worker takes over the steps of one whose heartbeat is older than
// DeadAfter by enqueuing a new job for each, fencing the old execution
// out, in one transaction. A step whose function uses a ckpt job resumes
// on the new worker from the dead one's last checkpoint in the shared
// store.
//
// River's tables and this package's own live in one schema (Schema,
// default "ckpt_river") of the event log's database, created and
// migrated on first use. The event log must be on PostgreSQL; the store
// of values must be reachable by every worker (S3 or PostgreSQL).
package riverexec

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Config configures an Executor and the workers. The zero value means the
// documented defaults. Submitters and workers of the same runs must agree
// on Schema and Queue.
type Config struct {
	// Schema holds River's tables and the runs' steps, in the event
	// log's database. Empty means "ckpt_river".
	Schema string
	// Queue is the River queue of the steps. Empty means "ckpt_assets".
	Queue string
	// HeartbeatInterval is how often a worker records that it is alive
	// and checks the leases of its steps. Zero means 5s.
	HeartbeatInterval time.Duration
	// DeadAfter is how old a worker's last heartbeat must be for the
	// others to take its steps over. Zero means 3 heartbeat intervals.
	DeadAfter time.Duration
	// PollInterval is how often a process following a run reads its
	// progress. Zero means 200ms.
	PollInterval time.Duration
	// Logger receives the workers' and the executor's messages. Nil means
	// slog.Default().
	Logger *slog.Logger
}

func (c *Config) fill() error {
	if c.HeartbeatInterval < 0 || c.DeadAfter < 0 || c.PollInterval < 0 {
		return errors.New("riverexec: Config: durations must not be negative")
	}
	if c.Schema == "" {
		c.Schema = "ckpt_river"
	}
	if !validIdent(c.Schema) {
		return fmt.Errorf("riverexec: schema %q: use letters, digits and '_', not starting with a digit", c.Schema)
	}
	if c.Queue == "" {
		c.Queue = "ckpt_assets"
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = 3 * c.HeartbeatInterval
	}
	if c.DeadAfter <= c.HeartbeatInterval {
		return fmt.Errorf("riverexec: DeadAfter (%s) must be longer than HeartbeatInterval (%s)", c.DeadAfter, c.HeartbeatInterval)
	}
	if c.PollInterval == 0 {
		c.PollInterval = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
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

// ErrFenced: a worker's lease on a step was taken over (it was presumed
// dead, or the run was canceled) and its outcome was not committed.
var ErrFenced = errors.New("riverexec: lease on the step lost")

// stepArgs are the arguments of a step's River job.
type stepArgs struct {
	Run       string `json:"run"`
	Idx       int    `json:"idx"`
	Key       string `json:"key"`
	Partition string `json:"partition,omitempty"`
	Attempt   int    `json:"attempt"`
}

func (stepArgs) Kind() string { return "ckpt_asset_step" }

func stepName(key, part string) string {
	if part == "" {
		return key
	}
	return key + "[" + part + "]"
}

// workerID names a worker process: host, pid and a random suffix, so that
// a restarted process with a reused pid is another worker.
func workerID(suffix string) string {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), suffix)
}

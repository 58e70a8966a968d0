// Package stream holds what sources and sinks over logs share: positions
// in a partitioned, append-only log (a JetStream stream, a Kafka topic),
// the bound of a bounded run, and the signals an unbounded source gives
// the pipeline runner. It links nothing but the standard library; the
// clients of each system live in packages of their own (stream/natsstream).
//
// A log is a set of partitions, each an ordered sequence of records
// numbered by offset. A JetStream stream is one partition (0) whose
// offsets are stream sequences; a Kafka topic has many. A reader's
// position is, for every partition it reads, the offset of the next record
// to read: a resume starts exactly there, whatever was acknowledged to the
// server, so the position recorded in a checkpoint is the only truth.
package stream

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrIdle is returned by Next of an unbounded source when no record
	// arrived within its poll interval. It is not an end: the caller may
	// take a checkpoint or stop, then call Next again.
	ErrIdle = errors.New("no record arrived yet")
	// ErrRecordsLost: records after the position the job resumes from are
	// no longer in the log (its retention removed them before the job read
	// them). Going on would skip them silently.
	ErrRecordsLost = errors.New("records after the checkpoint's position are gone from the log")
	// ErrLogChanged: the log was deleted and created again (or replaced)
	// since the checkpoint: its offsets no longer name the same records.
	ErrLogChanged = errors.New("the log is not the one the checkpoint was taken on")
)

// Offset is a partition's offset: the next record to read (in a source's
// position) or the first not to read (in a bound).
type Offset struct {
	Partition int32  `json:"partition"`
	Next      uint64 `json:"next"`
}

// Position is a reader's place in a log, as a checkpoint records it.
type Position struct {
	// Log names the log for people and errors (an address without
	// credentials).
	Log string `json:"log"`
	// Incarnation tells one life of the log from the next: JetStream's
	// stream creation time, Kafka's topic id. A log deleted and created
	// again under the same name has another, and its offsets name other
	// records.
	Incarnation string `json:"incarnation,omitempty"`
	// Filter is the subjects (or keys) read, empty for all.
	Filter []string `json:"filter,omitempty"`
	// Offsets holds, per partition read, the offset of the next record.
	Offsets []Offset `json:"offsets"`
	// Until is the bound of a bounded run, resolved when the job first
	// started (so "now" means the same records in every resume), or nil.
	Until *Bound `json:"until,omitempty"`
	// Lag is how many records of the log (matching Filter) were not yet
	// read when the position was taken; -1 if unknown.
	Lag int64 `json:"lag"`
}

// Next returns the offset of the next record of partition p, and whether
// the position has one.
func (p *Position) Next(partition int32) (uint64, bool) {
	for _, o := range p.Offsets {
		if o.Partition == partition {
			return o.Next, true
		}
	}
	return 0, false
}

// Bound is where a bounded run ends: before the first record at or past
// End in its partition, or before the first record stored after Time.
type Bound struct {
	End  []Offset  `json:"end,omitempty"`
	Time time.Time `json:"time,omitzero"`
}

// Until is a bound as given by a user, before it is resolved: a sequence
// (the last to read, inclusive), a time (the last record read is stored
// at or before it), or Now (what the log holds when the job first starts).
type Until struct {
	Seq  uint64
	Time time.Time
	Now  bool
}

// IsZero reports whether u bounds nothing: an unbounded run.
func (u Until) IsZero() bool { return u.Seq == 0 && u.Time.IsZero() && !u.Now }

// String returns u as ParseUntil reads it ("" when unbounded).
func (u Until) String() string {
	switch {
	case u.Now:
		return "now"
	case u.Seq > 0:
		return strconv.FormatUint(u.Seq, 10)
	case !u.Time.IsZero():
		return u.Time.UTC().Format(time.RFC3339Nano)
	}
	return ""
}

// ParseUntil reads a bound: "now", a sequence number (the last record to
// read, inclusive), or an RFC 3339 time (the last record read was stored
// at or before it). The empty string is no bound.
func ParseUntil(s string) (Until, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Until{}, nil
	case strings.EqualFold(s, "now"):
		return Until{Now: true}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n == 0 {
			return Until{}, errors.New("--until 0: sequences start at 1")
		}
		return Until{Seq: n}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return Until{Time: t}, nil
	}
	return Until{}, fmt.Errorf("%q is not a bound: use now, a sequence number, or a time as 2026-01-02T15:04:05Z", s)
}

// SameFilter reports whether two filters select the same subjects.
func SameFilter(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

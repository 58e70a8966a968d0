package natsstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/source"
	"github.com/ckptdev/ckpt/stream"
)

// DefaultPollWait is how long Next waits for a message before it returns
// stream.ErrIdle, letting the runner take an interval or shutdown
// checkpoint.
const DefaultPollWait = 100 * time.Millisecond

// SourceConfig configures a stream source.
type SourceConfig struct {
	// URL is the stream's address (see ParseAddress); its subject
	// parameters filter the stream.
	URL string
	// Until bounds the run; the zero value reads until stopped.
	Until stream.Until
	// PollWait is how long Next waits before returning stream.ErrIdle;
	// zero means DefaultPollWait.
	PollWait time.Duration
	// Conn, if set, is used instead of a connection of the source's own
	// (and is not closed by Close).
	Conn *nats.Conn
}

// Msg is one message read from a stream. Its Line is the payload as a
// line of input (File is the stream's address, Line and Offset its stream
// sequence), so that a JSON payload is read as JSON Lines are. A Msg and
// its slices are valid until the next call to Next.
type Msg struct {
	source.Line
	Subject string
	Seq     uint64
	Time    time.Time // when the server stored it
	Header  nats.Header
	Data    []byte
}

// Source reads a stream from a position. It is a pipeline source
// (Next, Position, Close) over *Msg; Lines adapts it to *source.Line.
type Source struct {
	addr  Address
	nc    *nats.Conn
	ownNC bool
	js    jetstream.JetStream
	st    jetstream.Stream
	cons  jetstream.Consumer
	it    jetstream.MessagesContext
	wait  time.Duration

	incarnation string
	next        uint64 // the stream sequence of the next message to read
	bound       *stream.Bound
	end         uint64 // from bound: the first sequence not to read; 0 for none
	done        bool
	// The watchdog cancels wake when Next returned no message (got)
	// for a poll wait; mu guards cancelWake and closed against it.
	wake       context.Context
	mu         sync.Mutex
	cancelWake context.CancelFunc
	closed     bool
	watchdog   *time.Timer
	got        atomic.Bool

	lag      atomic.Int64
	consumed atomic.Int64
	msg      Msg
}

// OpenSource opens the stream at pos, a position a checkpoint recorded,
// or at its first message when pos is nil; a fresh open resolves
// cfg.Until (for "now", the stream's last sequence) into the position, so
// that every resume reads up to the same message (a position with a
// bound keeps it whatever cfg.Until says; one without takes cfg.Until's,
// resolved then). Resuming is refused
// when the stream was created again since the checkpoint or when messages
// after the position were removed before they were read (both match
// source.ErrInputChanged).
func OpenSource(ctx context.Context, cfg SourceConfig, pos json.RawMessage) (*Source, error) {
	addr, err := ParseAddress(cfg.URL)
	if err != nil {
		return nil, err
	}
	s := &Source{addr: addr, wait: cfg.PollWait, nc: cfg.Conn}
	if s.wait <= 0 {
		s.wait = DefaultPollWait
	}
	if s.nc == nil {
		if s.nc, err = connect(addr.Server); err != nil {
			return nil, err
		}
		s.ownNC = true
	}
	if err := s.open(ctx, cfg, pos); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Source) open(ctx context.Context, cfg SourceConfig, raw json.RawMessage) error {
	var err error
	if s.js, err = jetstream.New(s.nc); err != nil {
		return err
	}
	if s.st, err = s.js.Stream(ctx, s.addr.Stream); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("%s: no such stream on the server: %w", s.addr.Display, err)
		}
		return fmt.Errorf("%s: %w", s.addr.Display, err)
	}
	info := s.st.CachedInfo()
	s.incarnation = info.Created.UTC().Format(time.RFC3339Nano)
	s.lag.Store(-1)
	if raw == nil {
		s.next = 1
		s.bound = resolve(cfg.Until, info)
	} else {
		var p stream.Position
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("%s: bad position in the checkpoint: %w", s.addr.Display, err)
		}
		next, ok := p.Next(0)
		if !ok || next == 0 {
			return fmt.Errorf("%s: the checkpoint's position holds no stream sequence", s.addr.Display)
		}
		if p.Incarnation != s.incarnation {
			return fmt.Errorf("%s: %w: %w: the stream was created at %s, the checkpoint's at %s, and its sequences name other messages", s.addr.Display, source.ErrInputChanged, stream.ErrLogChanged, s.incarnation, p.Incarnation)
		}
		if !stream.SameFilter(p.Filter, s.addr.Subjects) {
			return fmt.Errorf("%s: %w: the checkpoint read subjects %q, this run %q", s.addr.Display, source.ErrInputChanged, p.Filter, s.addr.Subjects)
		}
		if first := info.State.FirstSeq; next < first {
			return fmt.Errorf("%s: %w: %w: the job's next message is sequence %d, and the stream now starts at %d (its retention removed messages the job had not read)", s.addr.Display, source.ErrInputChanged, stream.ErrRecordsLost, next, first)
		}
		s.next, s.bound = next, p.Until
		if s.bound == nil {
			// An unbounded job given a bound now (to drain what it has
			// not read and finish) keeps it in its next checkpoints.
			s.bound = resolve(cfg.Until, info)
		}
		s.lag.Store(p.Lag)
	}
	if s.bound != nil {
		if len(s.bound.End) > 0 {
			s.end = s.bound.End[0].Next
		}
	}
	return nil
}

// resolve turns a user's bound into one recorded in the position.
func resolve(u stream.Until, info *jetstream.StreamInfo) *stream.Bound {
	switch {
	case u.Now:
		return &stream.Bound{End: []stream.Offset{{Next: info.State.LastSeq + 1}}}
	case u.Seq > 0:
		return &stream.Bound{End: []stream.Offset{{Next: u.Seq + 1}}}
	case !u.Time.IsZero():
		return &stream.Bound{Time: u.Time.UTC()}
	}
	return nil
}

// start creates the consumer: ordered and ephemeral, it acknowledges
// nothing and is recreated by the client after a server restart from the
// last message delivered, in order.
func (s *Source) start(ctx context.Context) error {
	var err error
	s.cons, err = s.js.OrderedConsumer(ctx, s.addr.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: s.addr.Subjects,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    s.next,
	})
	if err != nil {
		return fmt.Errorf("%s: read from sequence %d: %w", s.addr.Display, s.next, err)
	}
	if s.it, err = s.cons.Messages(jetstream.PullMaxMessages(1024)); err != nil {
		return fmt.Errorf("%s: read from sequence %d: %w", s.addr.Display, s.next, err)
	}
	s.rewake()
	s.watchdog = time.AfterFunc(s.wait, s.tick)
	return nil
}

// Next returns the next message, io.EOF at the bound of a bounded run,
// or stream.ErrIdle when none arrived within the poll wait.
//
// Waiting costs no timer per message: Next waits on a context that a
// watchdog, ticking every poll wait, cancels when no message was returned
// during the last tick. Deciding that a bounded run has read everything
// up to its bound (a rare path) waits with a timer of its own, so that a
// message already queued is always returned first.
func (s *Source) Next() (*Msg, error) {
	if s.done || (s.end > 0 && s.next >= s.end) {
		s.done = true
		return nil, io.EOF
	}
	if s.it == nil {
		if err := s.start(context.Background()); err != nil {
			return nil, err
		}
	}
	m, err := s.it.Next(jetstream.NextContext(s.wake))
	if errors.Is(err, context.Canceled) {
		s.rewake()
		if m, err = s.idle(); m == nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read at sequence %d: %w", s.addr.Display, s.next, err)
	}
	s.got.Store(true)
	meta, err := m.Metadata()
	if err != nil {
		return nil, fmt.Errorf("%s: read at sequence %d: %w", s.addr.Display, s.next, err)
	}
	seq := meta.Sequence.Stream
	if (s.end > 0 && seq >= s.end) || (s.bound != nil && !s.bound.Time.IsZero() && meta.Timestamp.After(s.bound.Time)) {
		// Past the bound: not read; the position is this message, every
		// one before it done with.
		s.next = max(s.next, seq)
		s.done = true
		return nil, io.EOF
	}
	s.next = seq + 1
	s.lag.Store(int64(meta.NumPending))
	data := m.Data()
	s.consumed.Add(int64(len(data)))
	s.msg = Msg{
		Line:    source.Line{Text: data, File: s.addr.Display, Line: int64(seq), Offset: int64(seq)},
		Subject: m.Subject(),
		Seq:     seq,
		Time:    meta.Timestamp,
		Header:  m.Headers(),
		Data:    data,
	}
	return &s.msg, nil
}

// idle is Next with nothing delivered for a tick: stream.ErrIdle for an
// unbounded run. A bounded run checks whether it has read everything up
// to its bound: it asks for the stream's last sequence (and the server's
// clock), then for the consumer's pending count. When none is pending,
// every message up to that sequence was delivered and is queued here
// already, so a wait that returns none proves them all read: io.EOF if
// that reaches the bound. A message that the wait returns is returned.
func (s *Source) idle() (jetstream.Msg, error) {
	if s.bound == nil {
		return nil, stream.ErrIdle
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	si, err := s.st.Info(ctx)
	if err != nil {
		return nil, stream.ErrIdle // the server is away; the client reconnects
	}
	ci, err := s.cons.Info(ctx)
	if err != nil {
		return nil, stream.ErrIdle
	}
	s.lag.Store(int64(ci.NumPending))
	if ci.NumPending > 0 {
		return nil, stream.ErrIdle
	}
	upTo, now := si.State.LastSeq, si.TimeStamp // the server's clock, which stamps messages
	if now.IsZero() {
		now = time.Now() // a server too old to say
	}
	if !((s.end > 0 && upTo+1 >= s.end) || (!s.bound.Time.IsZero() && now.After(s.bound.Time))) {
		return nil, stream.ErrIdle // the bound is still ahead
	}
	m, err := s.it.Next(jetstream.NextMaxWait(s.wait))
	if errors.Is(err, nats.ErrTimeout) {
		// Every message up to upTo was read or filtered out: the final
		// position says so, so that messages the stream's retention
		// removes later are not taken for unread ones.
		next := upTo + 1
		if s.end > 0 {
			next = min(next, s.end)
		}
		s.next = max(s.next, next)
		s.done = true
		return nil, io.EOF
	}
	return m, err
}

// rewake gives Next a new context to wait on, the last one cancelled.
func (s *Source) rewake() {
	s.mu.Lock()
	s.wake, s.cancelWake = context.WithCancel(context.Background())
	s.mu.Unlock()
}

// tick is the watchdog: it cancels Next's wait if no message was
// returned since the last tick, and runs again a poll wait later.
func (s *Source) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if !s.got.Swap(false) {
		s.cancelWake()
	}
	s.watchdog.Reset(s.wait)
}

// Position returns the sequence of the next message to read, the bound
// and the lag, for the checkpoint.
func (s *Source) Position() (json.RawMessage, error) {
	return json.Marshal(stream.Position{
		Log:         s.addr.Display,
		Incarnation: s.incarnation,
		Filter:      s.addr.Subjects,
		Offsets:     []stream.Offset{{Next: s.next}},
		Until:       s.bound,
		Lag:         s.lag.Load(),
	})
}

// Lag returns how many messages matching the filter the stream holds past
// the last one read, as the server last said; -1 before it said.
func (s *Source) Lag() int64 { return s.lag.Load() }

// Consumed returns the payload bytes read in this run.
func (s *Source) Consumed() int64 { return s.consumed.Load() }

// Size is -1: a stream has no size known in advance.
func (s *Source) Size() int64 { return -1 }

// Close stops reading and closes the source's connection.
func (s *Source) Close() error {
	s.mu.Lock()
	s.closed = true
	if s.watchdog != nil {
		s.watchdog.Stop()
		s.cancelWake()
	}
	s.mu.Unlock()
	if s.it != nil {
		s.it.Stop()
	}
	if s.ownNC && s.nc != nil {
		s.nc.Close()
	}
	return nil
}

// Messages opens the stream as a pipeline source of messages.
func Messages(cfg SourceConfig) pipeline.Opener[*Msg] {
	return func(ctx context.Context, pos json.RawMessage) (pipeline.Source[*Msg], error) {
		return OpenSource(ctx, cfg, pos)
	}
}

// Lines opens the stream as a pipeline source of lines, one per message
// (its payload), as JSON Lines are read from a file.
func Lines(cfg SourceConfig) pipeline.Opener[*source.Line] {
	return func(ctx context.Context, pos json.RawMessage) (pipeline.Source[*source.Line], error) {
		s, err := OpenSource(ctx, cfg, pos)
		if err != nil {
			return nil, err
		}
		return lines{s}, nil
	}
}

type lines struct{ *Source }

func (l lines) Next() (*source.Line, error) {
	m, err := l.Source.Next()
	if err != nil {
		return nil, err
	}
	return &m.Line, nil
}

package natsstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink"
)

// SinkConfig configures a stream sink.
type SinkConfig struct {
	// URL is the stream's address: subject=S publishes every message to
	// S, prefix=P to P followed by the subject passed to Publish.
	URL string
	// Job names the job in every message id (required).
	Job string
	// Conn, if set, is used instead of a connection of the sink's own
	// (and is not closed by Close).
	Conn *nats.Conn
}

// SinkPosition is a stream sink's position in a checkpoint.
type SinkPosition struct {
	Stream      string `json:"stream"`
	Incarnation string `json:"incarnation"`
	// Epoch is chosen when the job starts from the beginning (a restart
	// chooses another): message ids of one epoch never name messages of
	// another.
	Epoch string `json:"epoch"`
	// Count is the number of messages the job's output holds: the next
	// one published is Count+1.
	Count uint64 `json:"count"`
	// LastSeq is the stream sequence of the last one the server
	// acknowledged (0 before the first): a resume looks for the job's
	// messages after it.
	LastSeq uint64 `json:"last_seq"`
}

// Sink publishes messages to a stream exactly once. Every message carries
// the header Nats-Msg-Id = ckpt/JOB/EPOCH/N, N its 1-based place in the
// job's output: a resume that publishes message N again is deduplicated
// by the server within the stream's duplicate window, and, beyond it, is
// not published at all, since opening at a checkpoint's position reads
// the stream after the position's LastSeq and skips the messages of this
// epoch it already holds.
type Sink struct {
	addr   Address
	nc     *nats.Conn
	ownNC  bool
	js     jetstream.JetStream
	prefix string // ckpt/JOB/EPOCH/
	pos    SinkPosition
	fresh  bool
	// skip: messages up to this number are in the stream already (found
	// at open) and are not published again.
	skip    uint64
	futures []jetstream.PubAckFuture
	id      []byte
}

// OpenSink opens a stream for publishing at a position a checkpoint
// recorded, or fresh (a new epoch) when pos is nil. The stream must exist.
func OpenSink(ctx context.Context, cfg SinkConfig, pos json.RawMessage) (*Sink, error) {
	addr, err := ParseAddress(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Job == "" {
		return nil, errors.New("a stream sink needs the job's name for its message ids")
	}
	if len(addr.Subjects) > 1 || (len(addr.Subjects) == 1) == (addr.Prefix != "") {
		return nil, fmt.Errorf("%w: %s: an output stream takes one subject to publish to (subject=S) or a prefix for the subjects read (prefix=P)", ErrBadAddress, addr.Display)
	}
	s := &Sink{addr: addr, nc: cfg.Conn}
	if s.nc == nil {
		// No buffer for publishes while reconnecting: they fail at once,
		// so that what the server stored of the messages in flight when
		// a connection dropped is always a prefix of them (see settle).
		if s.nc, err = connect(addr.Server, nats.ReconnectBufSize(-1)); err != nil {
			return nil, err
		}
		s.ownNC = true
	}
	if err := s.open(ctx, cfg.Job, pos); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sink) open(ctx context.Context, job string, raw json.RawMessage) error {
	var err error
	if s.js, err = jetstream.New(s.nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(10*time.Second)); err != nil {
		return err
	}
	st, err := s.js.Stream(ctx, s.addr.Stream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("%s: no such stream on the server (create it first, with subjects that cover the ones published): %w", s.addr.Display, err)
		}
		return fmt.Errorf("%s: %w", s.addr.Display, err)
	}
	info := st.CachedInfo()
	inc := info.Created.UTC().Format(time.RFC3339Nano)
	if raw == nil {
		var b [8]byte
		rand.Read(b[:])
		s.pos = SinkPosition{Stream: s.addr.Stream, Incarnation: inc, Epoch: hex.EncodeToString(b[:])}
		s.fresh = true
	} else {
		if err := json.Unmarshal(raw, &s.pos); err != nil || s.pos.Epoch == "" {
			return fmt.Errorf("%s: bad output position in the checkpoint: %v", s.addr.Display, err)
		}
		if s.pos.Stream != s.addr.Stream {
			return fmt.Errorf("%s: %w: the checkpoint's output is stream %s", s.addr.Display, sink.ErrOutputChanged, s.pos.Stream)
		}
		if s.pos.Incarnation != inc {
			return fmt.Errorf("%s: %w: the stream was created again since the checkpoint (at %s, the checkpoint's at %s)", s.addr.Display, sink.ErrOutputChanged, inc, s.pos.Incarnation)
		}
	}
	s.prefix = "ckpt/" + job + "/" + s.pos.Epoch + "/"
	if raw != nil && info.State.LastSeq > s.pos.LastSeq {
		if err := s.findPublished(ctx, info.State.LastSeq); err != nil {
			return err
		}
	}
	return nil
}

// findPublished reads the stream's headers after the checkpoint's LastSeq
// up to last, and sets skip to the highest message number N such that
// this epoch's messages Count+1 ... N are all there: those were published
// by a run that died before its next checkpoint, and are not published
// again. Messages past a gap (a publish that failed while later ones
// succeeded) are published again and deduplicated by the server within
// its window.
func (s *Sink) findPublished(ctx context.Context, last uint64) error {
	cons, err := s.js.OrderedConsumer(ctx, s.addr.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   s.pos.LastSeq + 1,
		HeadersOnly:   true,
	})
	if err != nil {
		return fmt.Errorf("%s: look for the job's messages after sequence %d: %w", s.addr.Display, s.pos.LastSeq, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("%s: look for the job's messages after sequence %d: %w", s.addr.Display, s.pos.LastSeq, err)
	}
	defer it.Stop()
	found := map[uint64]uint64{} // message number → stream sequence
	for {
		m, err := it.Next(jetstream.NextMaxWait(10 * time.Second))
		if err != nil {
			return fmt.Errorf("%s: look for the job's messages after sequence %d: %w", s.addr.Display, s.pos.LastSeq, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		if id, ok := strings.CutPrefix(m.Headers().Get(jetstream.MsgIDHeader), s.prefix); ok {
			if n, err := strconv.ParseUint(id, 10, 64); err == nil && n > s.pos.Count {
				found[n] = meta.Sequence.Stream
			}
		}
		if meta.Sequence.Stream >= last || meta.NumPending == 0 {
			break
		}
	}
	s.skip = s.pos.Count
	for {
		seq, ok := found[s.skip+1]
		if !ok {
			break
		}
		s.skip++
		s.pos.LastSeq = max(s.pos.LastSeq, seq)
	}
	return nil
}

// CheckpointFirst is true for a sink opened fresh: its epoch must be in a
// checkpoint before the first message is published (pipeline.Run takes
// one), or a run that died before its first checkpoint would be followed
// by one publishing the same messages under another epoch.
func (s *Sink) CheckpointFirst() bool { return s.fresh }

// Publish publishes data to the sink's subject (or its prefix followed
// by subject) as the next message of the output, with the headers of h
// (those starting with Nats- left out). It returns once the message is
// handed to the client; Flush waits for the server's acknowledgements.
func (s *Sink) Publish(subject string, data []byte, h nats.Header) error {
	s.pos.Count++
	if s.pos.Count <= s.skip {
		return nil // published by the run before the resume
	}
	if len(s.addr.Subjects) == 1 {
		subject = s.addr.Subjects[0]
	} else {
		subject = s.addr.Prefix + subject
	}
	m := nats.NewMsg(subject)
	m.Data = data
	for k, v := range h {
		if !strings.HasPrefix(k, "Nats-") {
			m.Header[k] = v
		}
	}
	s.id = strconv.AppendUint(append(s.id[:0], s.prefix...), s.pos.Count, 10)
	m.Header.Set(jetstream.MsgIDHeader, string(s.id))
	for {
		f, err := s.js.PublishMsgAsync(m, jetstream.WithExpectStream(s.addr.Stream))
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			<-s.js.PublishAsyncComplete()
			continue
		}
		if err != nil {
			// The connection is down: settle what is in flight, then
			// publish this one when the server is back.
			if err := s.settle(); err != nil {
				return err
			}
			return s.publishSync(m)
		}
		s.futures = append(s.futures, f)
		return nil
	}
}

// settle waits for the server's answer to every message in flight, in
// the order they were published. From the first one not acknowledged (a
// timeout, a connection lost as the server restarted) on, it publishes
// them again, one by one, each waiting for its acknowledgement, under
// the same ids. What the server stored of them is a prefix (one
// connection delivers in order, and publishes while it is down fail at
// once instead of being buffered), so the republished ones keep the
// output's order, and those it had stored are dropped as duplicates.
func (s *Sink) settle() error {
	defer func() {
		clear(s.futures)
		s.futures = s.futures[:0]
	}()
	for i, f := range s.futures {
		select {
		case ack := <-f.Ok():
			s.pos.LastSeq = max(s.pos.LastSeq, ack.Sequence)
			continue
		case <-f.Err():
		}
		for _, f := range s.futures[i:] {
			if err := s.publishSync(f.Msg()); err != nil {
				return err
			}
		}
		break
	}
	return nil
}

// publishSync publishes m and waits for its acknowledgement, trying again
// for up to two minutes while the server cannot be reached.
func (s *Sink) publishSync(m *nats.Msg) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ack, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectStream(s.addr.Stream))
		cancel()
		if err == nil {
			s.pos.LastSeq = max(s.pos.LastSeq, ack.Sequence)
			return nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) || time.Now().After(deadline) {
			return fmt.Errorf("%s: publish message %s: %w", s.addr.Display, m.Header.Get(jetstream.MsgIDHeader), err)
		}
		time.Sleep(100 * time.Millisecond) // the client is reconnecting
	}
}

// Flush waits until the server has acknowledged (stored) every message
// published so far, and returns the position after them.
func (s *Sink) Flush() (json.RawMessage, error) {
	if err := s.settle(); err != nil {
		return nil, err
	}
	return json.Marshal(s.pos)
}

// Sync does nothing: a message the server acknowledged is stored as the
// stream's storage settings make it durable.
func (s *Sink) Sync(context.Context) error { return nil }

// Close closes the sink's connection. Messages not flushed may or may not
// be published; the next run finds those that were.
func (s *Sink) Close() error {
	if s.ownNC && s.nc != nil {
		s.nc.Close()
	}
	return nil
}

// Output publishes a run's output to a stream (see Sink).
func Output(cfg SinkConfig) pipeline.SinkOpener[*Sink] { return output(cfg) }

type output SinkConfig

func (o output) Open(ctx context.Context, pos json.RawMessage, _ []string) (*Sink, error) {
	return OpenSink(ctx, SinkConfig(o), pos)
}

// Verify checks that the stream a finished job wrote to is still the one
// it wrote to and still holds its last message.
func (o output) Verify(ctx context.Context, raw json.RawMessage) error {
	var pos SinkPosition
	if err := json.Unmarshal(raw, &pos); err != nil {
		return fmt.Errorf("bad output position in the checkpoint: %w", err)
	}
	s, err := OpenSink(ctx, SinkConfig(o), nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if s.pos.Incarnation != pos.Incarnation {
		return fmt.Errorf("%s: %w: the stream was created again since the job finished", s.addr.Display, sink.ErrOutputChanged)
	}
	return nil
}

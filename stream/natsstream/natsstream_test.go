package natsstream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/source"
	"github.com/ckptdev/ckpt/stream"
	"github.com/ckptdev/ckpt/stream/natsstream"
)

type empty struct{}

var errCrash = errors.New("simulated crash")

// toFile copies the stream's messages into a file, one line per message
// (sequence, subject, payload), failing with errCrash after crashAfter
// records of this run (0: never).
func toFile(t *testing.T, cfg pipeline.Config, src natsstream.SourceConfig, out string, crashAfter int) (pipeline.Result, error) {
	t.Helper()
	n := 0
	return pipeline.Run(context.Background(), cfg, natsstream.Messages(src), pipeline.File(out),
		func(ctx context.Context, m *natsstream.Msg, _ *empty, w *sink.File) error {
			if n++; crashAfter > 0 && n > crashAfter {
				return errCrash
			}
			_, err := fmt.Fprintf(w, "%d %s %s\n", m.Seq, m.Subject, m.Data)
			return err
		})
}

func jobConfig(t *testing.T, job string, every int64) pipeline.Config {
	return pipeline.Config{Job: job, Config: ckpt.Config{Store: filepath.Join(t.TempDir(), "store"), NoSignals: true, Every: ckpt.Every{Records: every}}}
}

func TestBoundedFilteredResume(t *testing.T) {
	n := testenv.NewNATS(t)
	s := n.NewStream(t, 0)
	var want strings.Builder
	for i := 1; i <= 60; i++ {
		sub := s.Subject + ".a"
		if i%3 == 0 {
			sub = s.Subject + ".b"
		}
		seq := s.Publish(t, sub, fmt.Appendf(nil, `{"i":%d}`, i))
		if i%3 != 0 {
			fmt.Fprintf(&want, "%d %s {\"i\":%d}\n", seq, sub, i)
		}
	}
	out := filepath.Join(t.TempDir(), "out.txt")
	cfg := jobConfig(t, "bounded", 7)
	src := natsstream.SourceConfig{URL: s.Address(s.Subject + ".a"), Until: stream.Until{Now: true}}
	// Crash twice, then finish; messages published after the first
	// start are past the bound and not read.
	if _, err := toFile(t, cfg, src, out, 15); !errors.Is(err, errCrash) {
		t.Fatalf("first run: %v", err)
	}
	for i := 0; i < 5; i++ {
		s.Publish(t, s.Subject+".a", []byte(`{"late":true}`))
	}
	if _, err := toFile(t, cfg, src, out, 9); !errors.Is(err, errCrash) {
		t.Fatalf("second run: %v", err)
	}
	res, err := toFile(t, cfg, src, out, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 40 {
		t.Errorf("records = %d, want 40", res.Records)
	}
	got, _ := os.ReadFile(out)
	if string(got) != want.String() {
		t.Errorf("output:\n%s\nwant:\n%s", got, want.String())
	}
	// Finished: a rerun says so, also once the stream's retention has
	// removed every message the job read or left out.
	if _, err := toFile(t, cfg, src, out, 0); !errors.Is(err, pipeline.ErrAlreadyDone) {
		t.Errorf("rerun: %v, want ErrAlreadyDone", err)
	}
	st, err := n.JS.Stream(context.Background(), s.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(context.Background(), jetstream.WithPurgeSequence(61)); err != nil {
		t.Fatal(err)
	}
	if _, err := toFile(t, cfg, src, out, 0); !errors.Is(err, pipeline.ErrAlreadyDone) {
		t.Errorf("rerun after a purge of what was read: %v, want ErrAlreadyDone", err)
	}
}

func TestUntilSequence(t *testing.T) {
	n := testenv.NewNATS(t)
	s := n.NewStream(t, 0)
	for i := 1; i <= 20; i++ {
		s.Publish(t, s.Subject+".x", fmt.Appendf(nil, "%d", i))
	}
	out := filepath.Join(t.TempDir(), "out.txt")
	res, err := toFile(t, jobConfig(t, "seq", 0), natsstream.SourceConfig{URL: s.Address(""), Until: stream.Until{Seq: 12}}, out, 0)
	if err != nil || res.Records != 12 {
		t.Fatalf("records %d, err %v; want 12", res.Records, err)
	}
	// A bound past the stream's end waits for messages to reach it.
	out2 := filepath.Join(t.TempDir(), "out.txt")
	done := make(chan error, 1)
	go func() {
		_, err := toFile(t, jobConfig(t, "seq2", 0), natsstream.SourceConfig{URL: s.Address(""), Until: stream.Until{Seq: 25}}, out2, 0)
		done <- err
	}()
	for i := 21; i <= 26; i++ {
		s.Publish(t, s.Subject+".x", fmt.Appendf(nil, "%d", i))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out2)
	if lines := strings.Count(string(got), "\n"); lines != 25 {
		t.Errorf("%d lines, want 25", lines)
	}
}

func TestUntilTime(t *testing.T) {
	n := testenv.NewNATS(t)
	s := n.NewStream(t, 0)
	for i := 1; i <= 5; i++ {
		s.Publish(t, s.Subject+".x", []byte("early"))
	}
	msgs := s.Messages(t)
	bound := msgs[len(msgs)-1].Time
	out := filepath.Join(t.TempDir(), "out.txt")
	res, err := toFile(t, jobConfig(t, "time", 0), natsstream.SourceConfig{URL: s.Address(""), Until: stream.Until{Time: bound}}, out, 0)
	if err != nil || res.Records != 5 {
		t.Fatalf("records %d, err %v; want 5", res.Records, err)
	}
}

// An unbounded run ends when its context is cancelled, with a checkpoint;
// the next run goes on from it.
func TestUnboundedStop(t *testing.T) {
	n := testenv.NewNATS(t)
	s := n.NewStream(t, 0)
	out := filepath.Join(t.TempDir(), "out.txt")
	cfg := jobConfig(t, "unbounded", 0)
	ctx, cancel := context.WithCancel(context.Background())
	seen := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		count := 0
		_, err := pipeline.Run(ctx, cfg, natsstream.Lines(natsstream.SourceConfig{URL: s.Address("")}), pipeline.File(out),
			func(ctx context.Context, l *source.Line, _ *empty, w *sink.File) error {
				if count++; count == 10 {
					close(seen)
				}
				_, err := fmt.Fprintf(w, "%s\n", l.Text)
				return err
			})
		done <- err
	}()
	for i := 1; i <= 10; i++ {
		s.Publish(t, s.Subject+".x", fmt.Appendf(nil, "%d", i))
	}
	<-seen
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v, want context.Canceled", err)
	}
	for i := 11; i <= 15; i++ {
		s.Publish(t, s.Subject+".x", fmt.Appendf(nil, "%d", i))
	}
	src := natsstream.SourceConfig{URL: s.Address(""), Until: stream.Until{Now: true}}
	// Given a bound, the unbounded job drains what the stream holds and
	// finishes.
	n2 := 0
	if _, err := pipeline.Run(context.Background(), cfg, natsstream.Lines(src), pipeline.File(out),
		func(ctx context.Context, l *source.Line, _ *empty, w *sink.File) error {
			n2++
			_, err := fmt.Fprintf(w, "%s\n", l.Text)
			return err
		}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	var want strings.Builder
	for i := 1; i <= 15; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if string(got) != want.String() {
		t.Errorf("output:\n%s", got)
	}
}

func TestStreamRecreatedIsRefused(t *testing.T) {
	n := testenv.NewNATS(t)
	s := n.NewStream(t, 0)
	for i := 1; i <= 10; i++ {
		s.Publish(t, s.Subject+".x", []byte("m"))
	}
	out := filepath.Join(t.TempDir(), "out.txt")
	cfg := jobConfig(t, "recreated", 3)
	src := natsstream.SourceConfig{URL: s.Address(""), Until: stream.Until{Now: true}}
	if _, err := toFile(t, cfg, src, out, 5); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := n.JS.DeleteStream(ctx, s.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := n.JS.CreateStream(ctx, jetstream.StreamConfig{Name: s.Name, Subjects: []string{s.Subject + ".>"}}); err != nil {
		t.Fatal(err)
	}
	_, err := toFile(t, cfg, src, out, 0)
	if !errors.Is(err, source.ErrInputChanged) || !errors.Is(err, stream.ErrLogChanged) {
		t.Fatalf("resume on a recreated stream: %v", err)
	}
}

func TestRecordsLostIsRefused(t *testing.T) {
	n := testenv.NewNATS(t)
	s := n.NewStream(t, 0)
	for i := 1; i <= 10; i++ {
		s.Publish(t, s.Subject+".x", []byte("m"))
	}
	out := filepath.Join(t.TempDir(), "out.txt")
	cfg := jobConfig(t, "lost", 3)
	src := natsstream.SourceConfig{URL: s.Address("")}
	if _, err := toFile(t, cfg, src, out, 4); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, _ := n.JS.Stream(ctx, s.Name)
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(8)); err != nil {
		t.Fatal(err)
	}
	_, err := toFile(t, cfg, src, out, 0)
	if !errors.Is(err, stream.ErrRecordsLost) {
		t.Fatalf("resume after messages were removed: %v", err)
	}
}

// toStream copies the source stream's messages to the sink, failing after
// crashAfter records of this run (0: never).
func toStream(cfg pipeline.Config, src natsstream.SourceConfig, dst natsstream.SinkConfig, crashAfter int) (pipeline.Result, error) {
	n := 0
	return pipeline.Run(context.Background(), cfg, natsstream.Messages(src), natsstream.Output(dst),
		func(ctx context.Context, m *natsstream.Msg, _ *empty, w *natsstream.Sink) error {
			if n++; crashAfter > 0 && n > crashAfter {
				return errCrash
			}
			return w.Publish(m.Subject, m.Data, m.Header)
		})
}

// checkCopy checks that dst holds src's payloads exactly once, in order.
func checkCopy(t *testing.T, dst *testenv.Stream, want int, skipSubject string) {
	t.Helper()
	var got []string
	for _, m := range dst.Messages(t) {
		if m.Subject != skipSubject {
			got = append(got, string(m.Data))
		}
	}
	if len(got) != want {
		t.Errorf("the output stream holds %d messages, want %d", len(got), want)
	}
	for i, g := range got {
		if g != fmt.Sprint(i+1) {
			t.Fatalf("message %d is %q, want %d: %v", i+1, g, i+1, got)
		}
	}
}

func TestSinkResumeWithinWindow(t *testing.T) {
	n := testenv.NewNATS(t)
	src, dst := n.NewStream(t, 0), n.NewStream(t, 0)
	for i := 1; i <= 50; i++ {
		src.Publish(t, src.Subject+".x", fmt.Appendf(nil, "%d", i))
	}
	cfg := jobConfig(t, "copy", 8)
	sc := natsstream.SourceConfig{URL: src.Address(""), Until: stream.Until{Now: true}}
	dc := natsstream.SinkConfig{URL: dst.Address(dst.Subject + ".copy"), Job: cfg.Job}
	for _, crash := range []int{13, 1, 20} {
		if _, err := toStream(cfg, sc, dc, crash); !errors.Is(err, errCrash) {
			t.Fatal(err)
		}
	}
	if _, err := toStream(cfg, sc, dc, 0); err != nil {
		t.Fatal(err)
	}
	checkCopy(t, dst, 50, "")
}

// A resume after the duplicate window has passed publishes nothing twice:
// the sink finds its messages in the stream.
func TestSinkResumeAfterWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a duplicate window to pass")
	}
	n := testenv.NewNATS(t)
	src, dst := n.NewStream(t, 0), n.NewStream(t, 200*time.Millisecond)
	for i := 1; i <= 30; i++ {
		src.Publish(t, src.Subject+".x", fmt.Appendf(nil, "%d", i))
	}
	cfg := jobConfig(t, "late", 10)
	sc := natsstream.SourceConfig{URL: src.Address(""), Until: stream.Until{Now: true}}
	dc := natsstream.SinkConfig{URL: dst.Address(dst.Subject + ".copy"), Job: cfg.Job}
	if _, err := toStream(cfg, sc, dc, 17); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	// Wait until the server has forgotten a message id published now:
	// by then it has forgotten those of the crashed run too.
	probe := dst.Subject + ".probe"
	ctx := context.Background()
	if _, err := n.JS.Publish(ctx, probe, nil, jetstream.WithMsgID("probe")); err != nil {
		t.Fatal(err)
	}
	for {
		ack, err := n.JS.Publish(ctx, probe, nil, jetstream.WithMsgID("probe"))
		if err != nil {
			t.Fatal(err)
		}
		if !ack.Duplicate {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling the server's window, not synchronisation
	}
	if _, err := toStream(cfg, sc, dc, 0); err != nil {
		t.Fatal(err)
	}
	checkCopy(t, dst, 30, probe)
}

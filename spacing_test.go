package ckpt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
)

// The tests in this file run in a synctest bubble: time moves only when
// every goroutine of the test waits, so intervals and the spacing of slow
// captures are checked to the exact instant, without waiting for them.
// They keep state uncompressed: the zstd encoder is shared by the whole
// process, and a bubble must not use channels another bubble made.

// advanceOne counts one record, waits for its checkpoint if one was taken,
// and fails the test on error.
func advanceOne[S any](t *testing.T, j *ckpt.Job[S]) {
	t.Helper()
	if err := j.Advance(context.Background(), 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := j.Wait(); err != nil {
		t.Fatal(err)
	}
}

// triggersOf lists the checkpoints of j, oldest first, as trigger@records.
func triggersOf[S any](t *testing.T, j *ckpt.Job[S]) []string {
	t.Helper()
	var out []string
	for _, e := range listSeqs(t, j.Store(), j.Name()) {
		out = append(out, fmt.Sprintf("%v@%d", e.Checkpoint.Trigger, e.Checkpoint.Records))
	}
	return out
}

func wantTriggers[S any](t *testing.T, j *ckpt.Job[S], when string, want ...string) {
	t.Helper()
	if got := triggersOf(t, j); !slices.Equal(got, want) {
		t.Fatalf("%s: checkpoints %v, want %v", when, got, want)
	}
}

// The interval runs from the last checkpoint, whatever took it: a
// checkpoint by interval, or one by hand, puts the next one an interval
// later, and a burst of records right after one takes none.
func TestIntervalTrigger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 50 * time.Millisecond
		j := openJob(t, t.TempDir(), ckpt.Config{Every: ckpt.Every{Interval: every}, Retain: -1, Uncompressed: true})

		time.Sleep(every - time.Millisecond)
		advanceOne(t, j)
		wantTriggers(t, j, "just before the first interval")
		time.Sleep(time.Millisecond)
		synctest.Wait() // the timer has fired
		advanceOne(t, j)
		wantTriggers(t, j, "an interval after Open", "interval@2")

		for range 5 {
			advanceOne(t, j)
		}
		wantTriggers(t, j, "a burst right after", "interval@2")

		time.Sleep(every - time.Millisecond)
		advanceOne(t, j)
		wantTriggers(t, j, "just before the second interval", "interval@2")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		advanceOne(t, j)
		wantTriggers(t, j, "an interval after the first", "interval@2", "interval@9")

		time.Sleep(every / 2)
		if _, err := j.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(every - time.Millisecond)
		advanceOne(t, j)
		wantTriggers(t, j, "just before an interval after a checkpoint by hand", "interval@2", "interval@9", "manual@9")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		advanceOne(t, j)
		wantTriggers(t, j, "an interval after a checkpoint by hand", "interval@2", "interval@9", "manual@9", "interval@11")
	})
}

// slowState is 1 MiB and takes 20 ms to encode, as if it were hundreds
// of MiB.
type slowState struct{ N int }

func (s *slowState) MarshalBinary() ([]byte, error) {
	time.Sleep(20 * time.Millisecond) // in a bubble: the clock moves, nothing waits
	b := make([]byte, 1<<20)
	b[0] = byte(s.N)
	return b, nil
}

func (s *slowState) UnmarshalBinary(b []byte) error {
	if len(b) > 0 {
		s.N = int(b[0])
	}
	return nil
}

// A small state is not spaced out, even when its capture took long (a
// loaded machine): its capture costs nothing worth saving.
func TestSlowSmallCapturesAreNotSpacedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j, err := ckpt.Open[slowSmallState](context.Background(), "small", ckpt.Config{Store: t.TempDir(), NoSignals: true,
			Codec: codec.Binary{}, Uncompressed: true, Every: ckpt.Every{Records: 1}, Retain: -1, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		for range 3 {
			advanceOne(t, j)
		}
		wantTriggers(t, j, "a 1-byte state captured in 20 ms", "records@1", "records@2", "records@3")
	})
}

// slowSmallState is one byte that takes 20 ms to encode.
type slowSmallState struct{ N int }

func (s *slowSmallState) MarshalBinary() ([]byte, error) {
	time.Sleep(20 * time.Millisecond)
	return []byte{byte(s.N)}, nil
}

func (s *slowSmallState) UnmarshalBinary(b []byte) error {
	if len(b) == 1 {
		s.N = int(b[0])
	}
	return nil
}

// A state that is slow to capture is not captured at every trigger: the
// next automatic checkpoint waits nine times the capture, so capturing
// takes at most a tenth of the job's time. A checkpoint by hand is never
// held back.
func TestSlowCapturesAreSpacedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j, err := ckpt.Open[slowState](context.Background(), "slow", ckpt.Config{Store: t.TempDir(), NoSignals: true,
			Codec: codec.Binary{}, Uncompressed: true, Every: ckpt.Every{Records: 1}, Retain: -1, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		advanceOne(t, j) // captured from 0 to 20 ms: the next waits until 200 ms
		advanceOne(t, j)
		time.Sleep(179 * time.Millisecond)
		advanceOne(t, j)
		wantTriggers(t, j, "within nine captures' time", "records@1")
		time.Sleep(time.Millisecond)
		advanceOne(t, j)
		wantTriggers(t, j, "nine captures' time after", "records@1", "records@4")
		if _, err := j.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantTriggers(t, j, "by hand", "records@1", "records@4", "manual@4")
	})
}

// slowSink takes 50 ms to flush and to sync: a database round trip.
type slowSink struct{}

func (slowSink) Flush() (json.RawMessage, error) {
	time.Sleep(50 * time.Millisecond)
	return json.RawMessage(`{}`), nil
}

func (slowSink) Sync(context.Context) error {
	time.Sleep(50 * time.Millisecond)
	return nil
}

// bigState is 1 MiB, encoded at once (in a bubble, no time passes).
type bigState struct{ N int }

func (s *bigState) MarshalBinary() ([]byte, error) {
	b := make([]byte, 1<<20)
	b[0] = byte(s.N)
	return b, nil
}

func (s *bigState) UnmarshalBinary(b []byte) error {
	if len(b) > 0 {
		s.N = int(b[0])
	}
	return nil
}

// Only capturing the state counts toward the spacing of checkpoints, not
// flushing or syncing the output: a state fast to capture behind a slow
// output (a database round trip) is checkpointed at every trigger.
func TestSlowOutputDoesNotSpaceOutCheckpoints(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j, err := ckpt.Open[bigState](context.Background(), "big", ckpt.Config{Store: t.TempDir(), NoSignals: true,
			Codec: codec.Binary{}, Uncompressed: true, Every: ckpt.Every{Records: 1}, Retain: -1, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		j.Bind(nil, slowSink{})
		for range 4 {
			if err := j.Advance(context.Background(), 1, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.Wait(); err != nil {
			t.Fatal(err)
		}
		wantTriggers(t, j, "a state captured at once behind a slow output", "records@1", "records@2", "records@3", "records@4")
	})
}

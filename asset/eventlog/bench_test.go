package eventlog

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// BenchmarkWrite measures event-log write throughput per backend:
//   - batched: events appended by one writer, committed in batches;
//   - record: each event committed on its own (Record), one writer;
//   - record-8: eight writers recording at once, sharing commits.
//
// It reports events/s.
//   - batched-starts: step starts (no state to update) appended and
//     committed in batches.
func BenchmarkWrite(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			open := be.open(b)
			l := open(Options{})
			ctx := context.Background()
			if err := l.CreateRun(ctx, Run{ID: "bench"}); err != nil {
				b.Fatal(err)
			}
			b.Run("batched-starts", func(b *testing.B) {
				for i := range b.N {
					l.Append(Event{RunID: "bench", Kind: KindStepStart, Key: fmt.Sprintf("k%d", i%100)})
				}
				if err := l.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
			b.Run("batched", func(b *testing.B) {
				for i := range b.N {
					l.Append(mat("bench", fmt.Sprintf("k%d", i%100), "", "v"))
				}
				if err := l.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
			b.Run("record", func(b *testing.B) {
				for i := range b.N {
					if err := l.Record(ctx, mat("bench", fmt.Sprintf("k%d", i%100), "", "v")); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
			b.Run("record-8", func(b *testing.B) {
				var wg sync.WaitGroup
				per := (b.N + 7) / 8
				for w := range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range per {
							if err := l.Record(ctx, mat("bench", fmt.Sprintf("w%d-%d", w, i%100), "", "v")); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(8*per)/b.Elapsed().Seconds(), "events/s")
			})
		})
	}
}

// BenchmarkLargeLog fills a log with a million events of 10,000 runs,
// then measures what runs do against it: commit one materialization, read
// one run's events, read the state of 1,000 assets.
func BenchmarkLargeLog(b *testing.B) {
	const runs, perRun = 10000, 100
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			l := be.open(b)(Options{BatchSize: 2000})
			for r := range runs {
				id := fmt.Sprintf("run%05d", r)
				if err := l.CreateRun(ctx, Run{ID: id}); err != nil {
					b.Fatal(err)
				}
				for i := range perRun {
					key := fmt.Sprintf("k%04d", (r*perRun/2+i/2)%1000)
					if i%2 == 0 {
						l.Append(Event{RunID: id, Kind: KindStepStart, Key: key})
					} else {
						l.Append(mat(id, key, "", id))
					}
				}
			}
			if err := l.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			keys := make([]string, 1000)
			for i := range keys {
				keys[i] = fmt.Sprintf("k%04d", i)
			}
			b.Run("record", func(b *testing.B) {
				for i := range b.N {
					if err := l.Record(ctx, mat("run00000", keys[i%1000], "", "new")); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("run-events", func(b *testing.B) {
				for i := range b.N {
					evs, err := l.Events(ctx, EventFilter{Runs: []string{fmt.Sprintf("run%05d", i%runs)}})
					if err != nil || len(evs) < perRun {
						b.Fatal(len(evs), err)
					}
				}
			})
			b.Run("states-1000", func(b *testing.B) {
				for range b.N {
					st, err := l.States(ctx, keys)
					if err != nil || len(st) != 1000 {
						b.Fatal(len(st), err)
					}
				}
			})
		})
	}
}

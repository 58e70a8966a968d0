package s3store_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/filestore"
)

// The benchmarks of the S3 section of docs/BENCHMARKS.md (scripts/bench.sh
// s3). The S3 service is versitygw on loopback with its posix backend on
// TMPDIR, so the numbers show the store's and the protocol's own cost,
// not a network's.

func benchStore(b *testing.B, kind string) store.Store {
	b.Helper()
	if kind == "s3" {
		return open(b, options(testenv.S3(b), "bench"))
	}
	st, err := filestore.Open(b.TempDir(), filestore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkS3SmallCheckpoint commits checkpoints of a small state (kept
// inline in the manifest: one object written per checkpoint) and reports
// the latency of Job.Checkpoint at the 50th and 99th percentile.
func BenchmarkS3SmallCheckpoint(b *testing.B) {
	for _, kind := range []string{"local", "s3"} {
		b.Run("store="+kind, func(b *testing.B) {
			st := benchStore(b, kind)
			j, err := ckpt.Open[map[string]int64](b.Context(), "small", ckpt.Config{
				Backend: st, NoSignals: true, Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			j.State = make(map[string]int64)
			for i := range 100 {
				j.State[fmt.Sprint("key-", i)] = int64(i)
			}
			lat := make([]time.Duration, 0, b.N)
			i := 0
			for b.Loop() {
				j.State[fmt.Sprint("key-", i%100)]++
				i++
				start := time.Now()
				if _, err := j.Checkpoint(b.Context()); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkS3LargeState saves and loads 256 MiB of state (random bytes,
// gob, uncompressed: the engine's own cost, not a codec's) next to one
// Put and one Get of the same bytes through the same store and client.
func BenchmarkS3LargeState(b *testing.B) {
	const size = 256 << 20
	data := content("large state", size)
	want := sha256.Sum256(data)
	st := benchStore(b, "s3")
	cfg := ckpt.Config{Backend: st, NoSignals: true, Codec: codec.Gob{}, Uncompressed: true, Retain: 1, Logger: slog.New(slog.DiscardHandler)}

	b.Run("op=write/way=raw", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if err := st.Put(b.Context(), "raw/state", bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=read/way=raw", func(b *testing.B) {
		b.SetBytes(size)
		if err := st.Put(b.Context(), "raw/state", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			rc, err := st.Get(b.Context(), "raw/state")
			if err != nil {
				b.Fatal(err)
			}
			h := sha256.New()
			_, err = io.Copy(h, rc)
			rc.Close()
			if err != nil || !bytes.Equal(h.Sum(nil), want[:]) {
				b.Fatalf("Get: %v, or the bytes differ", err)
			}
		}
	})
	b.Run("op=write/way=ckpt", func(b *testing.B) {
		b.SetBytes(size)
		j, err := ckpt.Open[[]byte](b.Context(), "large", cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer j.Close()
		first := data[0]
		for b.Loop() {
			// A new first byte each time, so that no blob is reused.
			data[0]++
			j.State = data
			if _, err := j.Checkpoint(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
		data[0] = first
	})
	b.Run("op=read/way=ckpt", func(b *testing.B) {
		b.SetBytes(size)
		j, err := ckpt.Open[[]byte](b.Context(), "large", cfg)
		if err != nil {
			b.Fatal(err)
		}
		j.State = data
		_, err = j.Checkpoint(b.Context())
		j.Close()
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			j, err := ckpt.Open[[]byte](b.Context(), "large", cfg)
			if err != nil {
				b.Fatal(err)
			}
			got := sha256.Sum256(j.State)
			j.Close()
			if got != want {
				b.Fatal("the loaded state differs from the saved one")
			}
		}
	})
}

package pgstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/internal/gen"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/filestore"
	"github.com/ckptdev/ckpt/store/pgstore"
)

func benchLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func benchPG(b *testing.B) (*testenv.Postgres, *pgstore.Store) {
	b.Helper()
	pg := testenv.NewPostgres(b)
	st, err := pgstore.Open(context.Background(), pg.URL, pgstore.Options{Logger: benchLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return pg, st
}

func benchJob[S any](b *testing.B, st store.Store, cfg ckpt.Config) *ckpt.Job[S] {
	b.Helper()
	cfg.Backend, cfg.NoSignals, cfg.Logger = st, true, benchLogger()
	j, err := ckpt.Open[S](context.Background(), "bench", cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	return j
}

// counters is the state of a record pipeline with little state.
type counters struct {
	Records, Malformed, Sum, MaxValue int64
}

type offset struct{ off int64 }

func (o *offset) Position() (json.RawMessage, error) {
	return json.Marshal(map[string]any{"file": 0, "offset": o.off})
}

// BenchmarkPostgresSmallCheckpoint measures the commit of a small
// checkpoint (a source position and four counters, state inline in the
// manifest, three checkpoints retained), taken synchronously, and reports
// the median and 99th percentile of its latency. store=local is the same
// job on the local directory store (manifest written to a temp file,
// fsynced, renamed, directory fsynced); store=postgres commits one
// statement (the fenced insert of the manifest) with the server's
// synchronous commit.
func BenchmarkPostgresSmallCheckpoint(b *testing.B) {
	b.Run("store=local", func(b *testing.B) {
		st, err := filestore.Open(b.TempDir(), filestore.Options{Logger: benchLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		benchSmall(b, st)
	})
	b.Run("store=postgres", func(b *testing.B) {
		_, st := benchPG(b)
		benchSmall(b, st)
	})
}

func benchSmall(b *testing.B, st store.Store) {
	j := benchJob[counters](b, st, ckpt.Config{})
	var src offset
	j.Bind(&src, nil)
	ctx := context.Background()
	var lat []time.Duration
	var cp *ckpt.Checkpoint
	for i := 0; b.Loop(); i++ {
		src.off += 65_536
		j.State.Records += 800
		j.State.Sum += 123_456
		j.State.MaxValue = max(j.State.MaxValue, int64(i*7%1000))
		t0 := time.Now()
		var err error
		if cp, err = j.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	if len(cp.State) != 1 || cp.State[0].Chunks[0].Data == nil {
		b.Fatalf("state %+v: want it inline in the manifest", cp.State)
	}
	entries, err := ckpt.List(ctx, st, "bench")
	if err != nil || len(entries) != min(len(lat), 3) {
		b.Fatalf("%d checkpoints in the store (%v), want %d", len(entries), err, min(len(lat), 3))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// stateBlob is state that is one byte slice, saved with codec.Binary, so
// that the engine and the store are measured rather than an encoder.
type stateBlob struct{ data []byte }

func (s *stateBlob) MarshalBinary() ([]byte, error) { return s.data, nil }
func (s *stateBlob) UnmarshalBinary(b []byte) error {
	s.data = append(s.data[:0], b...)
	return nil
}

const stateSize = 256 << 20

var stateCache struct {
	once sync.Once
	data []byte
}

// stateData returns 256 MiB of generated CSV: text that zstd compresses
// about threefold, neither zeros nor noise.
func stateData() []byte {
	stateCache.once.Do(func() {
		var buf bytes.Buffer
		buf.Grow(stateSize + 1<<20)
		for seed := uint64(1); buf.Len() < stateSize; seed++ {
			gen.Write(&buf, gen.Options{Rows: 200_000, Seed: seed})
		}
		stateCache.data = buf.Bytes()[:stateSize]
	})
	return stateCache.data
}

// mutate changes one byte in every MiB, so that every chunk of the state
// differs from the previous checkpoint's and is written again.
func mutate(data []byte, i int) {
	for off := 0; off < len(data); off += 1 << 20 {
		data[off] = 'a' + byte(i%26)
	}
}

// BenchmarkPostgresStateSave measures a checkpoint of 256 MiB of state
// into PostgreSQL: cut into 8 MiB chunks, hashed, compressed or not, each
// blob one transaction streamed with COPY in 1 MiB rows, then the
// manifest. codec=raw is the bare server: the same bytes, as 1 MiB bytea
// rows, in one COPY in one transaction over one connection.
func BenchmarkPostgresStateSave(b *testing.B) {
	data := stateData()
	b.Run("size=256MiB/codec=raw", func(b *testing.B) {
		pg, _ := benchPG(b)
		conn := pg.Conn(b)
		ctx := context.Background()
		table := pg.Schema + ".raw"
		if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (n integer, data bytea); ALTER TABLE "+table+" ALTER COLUMN data SET STORAGE EXTERNAL"); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			mutate(data, i)
			if _, err := conn.Exec(ctx, "TRUNCATE "+table); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				_, err := tx.CopyFrom(ctx, pgx.Identifier{pg.Schema, "raw"}, []string{"n", "data"}, pgx.CopyFromSlice(len(data)>>20, func(i int) ([]any, error) {
					return []any{int32(i), data[i<<20 : (i+1)<<20]}, nil
				}))
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct {
		name         string
		uncompressed bool
	}{{"binary", true}, {"binary+zstd", false}} {
		b.Run("size=256MiB/codec="+c.name, func(b *testing.B) {
			_, st := benchPG(b)
			j := benchJob[stateBlob](b, st, ckpt.Config{Codec: codec.Binary{}, Uncompressed: c.uncompressed, Retain: 1})
			j.State.data = data
			b.SetBytes(int64(len(data)))
			var cp *ckpt.Checkpoint
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				mutate(data, i)
				b.StartTimer()
				var err error
				if cp, err = j.Checkpoint(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if cp.RawSize() != int64(len(data)) {
				b.Fatalf("checkpoint holds %d raw bytes, want %d", cp.RawSize(), len(data))
			}
			b.ReportMetric(float64(cp.StoredSize())/float64(1<<20), "stored-MiB")
		})
	}
}

// BenchmarkPostgresStateLoad measures ckpt.Load of 256 MiB of state from
// PostgreSQL: every blob streamed, checked, decompressed. codec=raw reads
// the same bytes back as 1 MiB bytea rows with one SELECT.
func BenchmarkPostgresStateLoad(b *testing.B) {
	data := stateData()
	b.Run("size=256MiB/codec=raw", func(b *testing.B) {
		pg, _ := benchPG(b)
		conn := pg.Conn(b)
		ctx := context.Background()
		table := pg.Schema + ".raw"
		if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (n integer, data bytea); ALTER TABLE "+table+" ALTER COLUMN data SET STORAGE EXTERNAL"); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{pg.Schema, "raw"}, []string{"n", "data"}, pgx.CopyFromSlice(len(data)>>20, func(i int) ([]any, error) {
			return []any{int32(i), data[i<<20 : (i+1)<<20]}, nil
		})); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 0, len(data))
		for b.Loop() {
			buf = buf[:0]
			rows, err := conn.Query(ctx, "SELECT data FROM "+table+" ORDER BY n")
			if err != nil {
				b.Fatal(err)
			}
			for rows.Next() {
				buf = append(buf, rows.RawValues()[0]...)
			}
			if err := rows.Err(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if !bytes.Equal(buf, data) {
			b.Fatal("read back other bytes")
		}
	})
	for _, c := range []struct {
		name         string
		uncompressed bool
	}{{"binary", true}, {"binary+zstd", false}} {
		b.Run("size=256MiB/codec="+c.name, func(b *testing.B) {
			_, st := benchPG(b)
			j := benchJob[stateBlob](b, st, ckpt.Config{Codec: codec.Binary{}, Uncompressed: c.uncompressed, Retain: 1})
			j.State.data = data
			cp, err := j.Checkpoint(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			var got stateBlob
			for b.Loop() {
				if err := ckpt.Load(context.Background(), st, cp, &got); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if !bytes.Equal(got.data, data) {
				b.Fatal("loaded other bytes")
			}
		})
	}
}

package riverexec_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
	"github.com/ckptdev/ckpt/asset/riverexec"
	"github.com/ckptdev/ckpt/internal/testenv"
)

// spinGraph has n partitions of CPU work: spin rounds of SHA-256 each.
func spinGraph(n, spin int) *asset.Graph {
	g := asset.New()
	asset.Define(g, asset.Spec{Key: "spin", Partitions: asset.StaticPartitions(parts(n)...)}, func(c *asset.Context) (string, error) {
		sum := sha256.Sum256([]byte(c.Partition))
		for range spin {
			sum = sha256.Sum256(sum[:])
		}
		return fmt.Sprintf("%x", sum[:8]), nil
	})
	return g
}

// spinFor returns the rounds of SHA-256 that take about d on this CPU.
func spinFor(d time.Duration) int {
	const rounds = 200000
	sum := sha256.Sum256(nil)
	start := time.Now()
	for range rounds {
		sum = sha256.Sum256(sum[:])
	}
	return int(float64(rounds) * float64(d) / float64(time.Since(start)))
}

// BenchmarkRiverScaling backfills 1,000 partitions of about 50ms of CPU
// each on one worker process, then on two (each computing one step at a
// time), and reports both times and the speedup, measured in one run.
func BenchmarkRiverScaling(b *testing.B) {
	const n = 1000
	spin := spinFor(50 * time.Millisecond)
	var one, two time.Duration
	for range b.N {
		one += backfillOnWorkers(b, n, spin, 1)
		two += backfillOnWorkers(b, n, spin, 2)
	}
	b.ReportMetric(one.Seconds()/float64(b.N), "s/1-worker")
	b.ReportMetric(two.Seconds()/float64(b.N), "s/2-workers")
	b.ReportMetric(float64(one)/float64(two), "speedup")
	b.ReportMetric(cpuScaling(b), "cpu-scaling")
}

// spinChild computes SHA-256 rounds for CKPT_RIVER_SPINFOR and prints
// how many.
func spinChild() int {
	d, err := time.ParseDuration(os.Getenv("CKPT_RIVER_SPINFOR"))
	if err != nil {
		return 2
	}
	sum := sha256.Sum256(nil)
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		for range 1000 {
			sum = sha256.Sum256(sum[:])
		}
	}
	fmt.Println(n)
	return 0
}

// cpuScaling returns how much more SHA-256 two processes compute than
// one in the same time, on this machine now: the most two workers can
// gain, whatever the executor (2 on an idle 2-CPU machine).
func cpuScaling(b *testing.B) float64 {
	spin := func(procs int) int {
		outs := make([][]byte, procs)
		var wg sync.WaitGroup
		for i := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.Command(os.Args[0])
				cmd.Env = append(os.Environ(), "CKPT_RIVER_SPINFOR=5s")
				out, err := cmd.Output()
				if err != nil {
					b.Errorf("spin: %v", err)
				}
				outs[i] = out
			}()
		}
		wg.Wait()
		total := 0
		for _, o := range outs {
			n, _ := strconv.Atoi(string(bytes.TrimSpace(o)))
			total += n
		}
		return total
	}
	one := spin(1)
	two := spin(2)
	if one == 0 {
		return 0
	}
	return float64(two) / float64(one)
}

// backfillOnWorkers materializes spinGraph(n) through workers worker
// processes and returns the time from submission to the run's end.
func backfillOnWorkers(b *testing.B, n, spin, workers int) time.Duration {
	b.Helper()
	b.StopTimer()
	store, events := b.TempDir(), testenv.NewPostgresDatabase(b)
	env := append(os.Environ(), "CKPT_RIVER_CHILD=1", "CKPT_RIVER_PARTS="+strconv.Itoa(n), "CKPT_RIVER_SPIN="+strconv.Itoa(spin))
	var procs []*exec.Cmd
	var wg sync.WaitGroup
	ready := make(chan struct{}, workers)
	for range workers {
		cmd := exec.Command(os.Args[0], "workers", "--parallel", "1", "--store", store, "--events", events)
		cmd.Env = env
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		procs = append(procs, cmd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			signaled := false
			for {
				k, err := out.Read(buf)
				if k > 0 && !signaled {
					signaled = true
					ready <- struct{}{} // "worker ... started"
				}
				if err != nil {
					return
				}
			}
		}()
	}
	for range workers {
		<-ready
	}
	ex, err := riverexec.New(riverexec.Config{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer ex.Close()
	in, err := asset.Open(context.Background(), spinGraph(n, spin), asset.Config{Store: store, EventLog: events, Logger: quiet, Executor: ex})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	b.StartTimer()
	start := time.Now()
	run, err := in.Materialize(context.Background(), asset.MaterializeOptions{})
	took := time.Since(start)
	b.StopTimer()
	if err != nil || run.Steps.Count(asset.OutcomeMaterialized) != n {
		b.Fatalf("backfill on %d workers: %v", workers, err)
	}
	for _, p := range procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		p.Wait()
	}
	wg.Wait()
	b.StartTimer()
	return took
}

// BenchmarkRiverStepOverhead computes 500 steps that do nothing in
// process (one at a time) and on one River worker (one at a time), both
// with the event log on PostgreSQL, and reports the difference per step:
// what the executor adds to a step.
func BenchmarkRiverStepOverhead(b *testing.B) {
	const n = 500
	var inproc, river time.Duration
	for range b.N {
		b.StopTimer()
		g := spinGraph(n, 0)
		store := b.TempDir()
		// The same PostgreSQL event log for both.
		in, err := asset.Open(context.Background(), g, asset.Config{Store: store, EventLog: testenv.NewPostgresDatabase(b), Logger: quiet, Parallelism: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if _, err := in.Materialize(context.Background(), asset.MaterializeOptions{}); err != nil {
			b.Fatal(err)
		}
		inproc += time.Since(start)
		b.StopTimer()
		in.Close()

		events := testenv.NewPostgresDatabase(b)
		cfg := riverexec.Config{PollInterval: 20 * time.Millisecond, Logger: quiet}
		wctx, stop := context.WithCancel(context.Background())
		win, err := asset.Open(context.Background(), g, asset.Config{Store: store, EventLog: events, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		started := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- riverexec.Work(wctx, win, riverexec.WorkOptions{Config: cfg, Parallel: 1, Started: func(string) { close(started) }})
		}()
		<-started
		ex, err := riverexec.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		sin, err := asset.Open(context.Background(), g, asset.Config{Store: store, EventLog: events, Logger: quiet, Executor: ex})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start = time.Now()
		if _, err := sin.Materialize(context.Background(), asset.MaterializeOptions{}); err != nil {
			b.Fatal(err)
		}
		river += time.Since(start)
		b.StopTimer()
		stop()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		sin.Close()
		win.Close()
		ex.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(inproc.Microseconds())/1000/float64(b.N*n), "ms/step-in-process")
	b.ReportMetric(float64(river.Microseconds())/1000/float64(b.N*n), "ms/step-river")
	b.ReportMetric(float64((river-inproc).Microseconds())/1000/float64(b.N*n), "ms/step-overhead")
}

// BenchmarkRiverDispatch submits a backfill of 10,000 partitions to a
// running worker and reports the time to submit it (plan, record, enqueue
// the steps) and the time until the first step has started.
func BenchmarkRiverDispatch(b *testing.B) {
	const n = 10000
	g := spinGraph(n, 0)
	var submit, first time.Duration
	for range b.N {
		b.StopTimer()
		store, events := b.TempDir(), testenv.NewPostgresDatabase(b)
		cfg := riverexec.Config{PollInterval: 20 * time.Millisecond, Logger: quiet}
		wctx, stop := context.WithCancel(context.Background())
		win, err := asset.Open(context.Background(), g, asset.Config{Store: store, EventLog: events, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		started := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- riverexec.Work(wctx, win, riverexec.WorkOptions{Config: cfg, Parallel: 2, Started: func(string) { close(started) }})
		}()
		<-started
		ex, err := riverexec.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		sin, err := asset.Open(context.Background(), g, asset.Config{Store: store, EventLog: events, Logger: quiet, Executor: ex})
		if err != nil {
			b.Fatal(err)
		}
		// Connect and migrate before the clock starts, as a submitter that
		// has run before.
		if _, err := ex.Submitted(context.Background(), sin, "none"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		run, err := sin.Materialize(context.Background(), asset.MaterializeOptions{Detach: true})
		if err != nil {
			b.Fatal(err)
		}
		submit += time.Since(start)
		for {
			evs, err := sin.EventLog().Events(context.Background(), eventlog.EventFilter{Runs: []string{run.ID}, Kinds: []eventlog.Kind{eventlog.KindStepStart}, Limit: 1})
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) > 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		first += time.Since(start)
		b.StopTimer()
		if err := sin.Cancel(context.Background(), run.ID); err != nil {
			b.Fatal(err)
		}
		stop()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		sin.Close()
		win.Close()
		ex.Close()
		b.StartTimer()
	}
	b.ReportMetric(submit.Seconds()/float64(b.N), "s-to-submit")
	b.ReportMetric(first.Seconds()/float64(b.N), "s-to-first-start")
}

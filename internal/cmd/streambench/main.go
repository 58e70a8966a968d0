// Command streambench measures ckpt's JetStream source in one run and
// prints a Markdown table of ratios:
//
//   - messages per second from a stream into a JSON Lines file: a ckpt
//     pipeline checkpointing every second (and every 100,000 messages, the
//     CLI's defaults for a stream) vs a plain consumer loop that writes
//     the same bytes with no checkpoints; and `ckpt convert` itself;
//   - resume latency after a SIGKILL: from starting the process to its
//     first new message, vs a plain consumer started at the same sequence.
//
// Every side runs as a process of its own, from exec to exit, and the
// sides alternate; the table shows medians of -runs runs.
//
//	go run ./internal/cmd/streambench -ckpt .bin/ckpt -nats nats://127.0.0.1:4222
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/stream"
	"github.com/ckptdev/ckpt/stream/natsstream"
)

var (
	bin      = flag.String("ckpt", ".bin/ckpt", "the ckpt binary")
	natsURL  = flag.String("nats", "nats://127.0.0.1:4222", "the NATS server (with JetStream)")
	dir      = flag.String("dir", filepath.Join(os.TempDir(), "ckpt-streambench"), "work directory")
	messages = flag.Int("messages", 1_000_000, "messages in the stream")
	runs     = flag.Int("runs", 3, "runs per side of each comparison")
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "child-ckpt" || os.Args[1] == "child-plain") {
		if err := child(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "streambench:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	abs, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	*bin = abs
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	nc, err := nats.Connect(*natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	var b [4]byte
	rand.Read(b[:])
	name := "BENCH_" + hex.EncodeToString(b[:])
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{strings.ToLower(name) + ".>"}, Storage: jetstream.FileStorage}); err != nil {
		return err
	}
	defer js.DeleteStream(context.Background(), name)
	fmt.Fprintf(os.Stderr, "publishing %d messages to %s\n", *messages, name)
	var payloadBytes int
	for i := 1; i <= *messages; i++ {
		p := fmt.Appendf(nil, `{"id":%d,"region":"r%d","amount":"%d.%02d","note":"an order of the benchmark"}`, i, i%7, i%1000, i%100)
		payloadBytes += len(p)
		if _, err := js.PublishAsync(strings.ToLower(name)+".orders", p); err != nil {
			return err
		}
		if i%4000 == 0 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	addr := strings.TrimSuffix(*natsURL, "/") + "/" + name

	fmt.Printf("Stream: %d messages of %d bytes on average (JSON objects), file storage, one subject\n\n", *messages, payloadBytes / *messages)
	fmt.Println("| measure | ckpt | baseline | ratio | target |")
	fmt.Println("|---|---|---|---|---|")

	// Throughput: stream → JSON Lines file, whole stream, from exec to exit.
	var withCk, plain, cli []time.Duration
	var cpuCk, cpuPlain, cpuCLI []time.Duration
	sides := []string{"ckpt", "plain", "cli"}
	for r := 0; r < *runs; r++ {
		// Each run starts with another side, so that none is always the
		// one after a given other.
		for k := range sides {
			side := sides[(r+k)%len(sides)]
			out := filepath.Join(*dir, side+".jsonl")
			store := filepath.Join(*dir, side+"-store")
			os.Remove(out)
			os.RemoveAll(store)
			var cmd *exec.Cmd
			switch side {
			case "ckpt":
				cmd = exec.Command(self, "child-ckpt", addr, out, store, "now")
			case "plain":
				cmd = exec.Command(self, "child-plain", addr, out, "1", "now")
			case "cli":
				cmd = exec.Command(*bin, "convert", addr, out, "--until", "now", "--store", store, "--no-progress")
			}
			cmd.Stderr = os.Stderr
			start := time.Now()
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s: %w", side, err)
			}
			took := time.Since(start)
			cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			switch side {
			case "ckpt":
				withCk, cpuCk = append(withCk, took), append(cpuCk, cpu)
			case "plain":
				plain, cpuPlain = append(plain, took), append(cpuPlain, cpu)
			case "cli":
				cli, cpuCLI = append(cli, took), append(cpuCLI, cpu)
			}
		}
		if err := sameFiles(filepath.Join(*dir, "ckpt.jsonl"), filepath.Join(*dir, "plain.jsonl"), filepath.Join(*dir, "cli.jsonl")); err != nil {
			return err
		}
	}
	mc, mp, ml := median(withCk), median(plain), median(cli)
	rate := func(d time.Duration) string {
		return fmt.Sprintf("%s msg/s", group(int64(float64(*messages)/d.Seconds())))
	}
	fmt.Printf("| stream → JSONL file, checkpoint every 1 s / 100,000 messages vs plain consumer loop, no checkpoints: wall time | %s (%s) | %s (%s) | %+.1f%% | at most +10%% |\n",
		secs(mc), rate(mc), secs(mp), rate(mp), 100*(mc.Seconds()/mp.Seconds()-1))
	cc, cp, cl := median(cpuCk), median(cpuPlain), median(cpuCLI)
	fmt.Printf("| the same runs: CPU time (user + system) | %s | %s | %+.1f%% | |\n",
		secs(cc), secs(cp), 100*(cc.Seconds()/cp.Seconds()-1))
	fmt.Printf("| `ckpt convert` (validates each payload as JSON) vs the same plain loop: wall time | %s (%s) | %s (%s) | %+.1f%% | |\n",
		secs(ml), rate(ml), secs(mp), rate(mp), 100*(ml.Seconds()/mp.Seconds()-1))
	fmt.Printf("| the same runs: CPU time (user + system) | %s | %s | %+.1f%% | |\n",
		secs(cl), secs(cp), 100*(cl.Seconds()/cp.Seconds()-1))

	// Resume latency: a ckpt child reading the stream is killed halfway,
	// then started again: exec to its first new message. The baseline is
	// a plain consumer started at the same sequence.
	var resume, fresh []time.Duration
	for r := 0; r < *runs; r++ {
		out := filepath.Join(*dir, "resume.jsonl")
		store := filepath.Join(*dir, "resume-store")
		os.Remove(out)
		os.RemoveAll(store)
		cmd := exec.Command(self, "child-ckpt", addr, out, store, "")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		half := int64(payloadBytes / 2)
		for {
			if fi, err := os.Stat(out); err == nil && fi.Size() > half {
				break
			}
			time.Sleep(time.Millisecond) // polling the output
		}
		cmd.Process.Kill()
		cmd.Wait()
		d, seq, err := firstMessage(exec.Command(self, "child-ckpt", addr, out, store, ""))
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		resume = append(resume, d)
		d, _, err = firstMessage(exec.Command(self, "child-plain", addr, filepath.Join(*dir, "fresh.jsonl"), strconv.FormatUint(seq, 10), ""))
		if err != nil {
			return fmt.Errorf("fresh consumer: %w", err)
		}
		fresh = append(fresh, d)
	}
	mr, mf := median(resume), median(fresh)
	fmt.Printf("| resume after SIGKILL halfway: exec to the first new message vs a plain consumer started at that sequence | %s | %s | %+.1f ms | under 100 ms |\n",
		ms(mr), ms(mf), float64(mr-mf)/float64(time.Millisecond))
	return nil
}

// firstMessage runs an unbounded child that prints "first SEQ" at its
// first message, returns the time from exec to that line and the
// sequence, and kills it.
func firstMessage(cmd *exec.Cmd) (time.Duration, uint64, error) {
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	took := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("no first message: %w", err)
	}
	seq, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "first ")), 10, 64)
	return took, seq, err
}

// child runs one side: child-ckpt ADDR OUT STORE UNTIL, or child-plain
// ADDR OUT STARTSEQ UNTIL ("now" or "" for unbounded). Both write each
// payload and a line end, and print "first SEQ" at their first message.
func child(mode string, args []string) error {
	ctx := context.Background()
	addr, out, until := args[0], args[1], args[3]
	first := false
	announce := func(seq uint64) {
		if !first {
			first = true
			fmt.Printf("first %d\n", seq)
		}
	}
	if path := os.Getenv("STREAMBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path + "." + mode)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if mode == "child-ckpt" {
		u, err := stream.ParseUntil(until)
		if err != nil {
			return err
		}
		cfg := pipeline.Config{Job: "bench", Config: ckpt.Config{Store: args[2], Every: ckpt.Every{Records: 100_000, Interval: time.Second}}}
		_, err = pipeline.Run(ctx, cfg, natsstream.Messages(natsstream.SourceConfig{URL: addr, Until: u}), pipeline.File(out),
			func(ctx context.Context, m *natsstream.Msg, _ *struct{}, w *sink.File) error {
				announce(m.Seq)
				b := append(w.Buffered(), m.Data...)
				return w.Commit(append(b, '\n'))
			})
		return err
	}
	startSeq, err := strconv.ParseUint(args[2], 10, 64)
	if err != nil {
		return err
	}
	a, err := natsstream.ParseAddress(addr)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(a.Server)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	st, err := js.Stream(ctx, a.Stream)
	if err != nil {
		return err
	}
	last := uint64(0)
	if until == "now" {
		last = st.CachedInfo().State.LastSeq
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: startSeq})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return err
	}
	defer it.Stop()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 64<<10)
	for {
		m, err := it.Next()
		if err != nil {
			return err
		}
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		announce(meta.Sequence.Stream)
		w.Write(m.Data())
		w.WriteByte('\n')
		if last > 0 && meta.Sequence.Stream >= last {
			break
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

func sameFiles(paths ...string) error {
	want, err := os.ReadFile(paths[0])
	if err != nil {
		return err
	}
	for _, p := range paths[1:] {
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if string(got) != string(want) {
			return fmt.Errorf("%s and %s differ: the sides did not write the same bytes", paths[0], p)
		}
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
func ms(d time.Duration) string   { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

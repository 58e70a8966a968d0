package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/ckptdev/ckpt/pipeline"
)

// openPTY returns a new pseudo-terminal: a real terminal for the code under
// test (slave), and the other side for the test to type into and read
// from (master).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

func TestDeleteAsksOnATerminal(t *testing.T) {
	for _, c := range []struct {
		typed   string
		code    int
		deleted bool
	}{
		{"y\n", exitOK, true},
		{"YES\n", exitOK, true},
		{"n\n", exitError, false},
		{"\n", exitError, false},
		{"yep, sure\n", exitError, false},
	} {
		t.Run(strings.TrimSpace(c.typed), func(t *testing.T) {
			dir, _ := ordersStore(t)
			master, tty := openPTY(t)
			if _, err := master.Write([]byte(c.typed)); err != nil {
				t.Fatal(err)
			}
			r := ckptRun(t, tty, "checkpoints", "delete", "--store", dir, "--job", "orders", "3")
			r.want(t, c.code)
			if want := fmt.Sprintf("Delete savepoint 3 of job \"orders\" (before-migration) from store %s? [y/N] ", dir); !strings.HasPrefix(r.stderr, want) {
				t.Errorf("prompt %q, want %q", r.stderr, want)
			}
			got := seqs(t, dir, "orders")
			if deleted := !slices.Contains(got, 3); deleted != c.deleted {
				t.Errorf("typed %q: checkpoints %v, deleted = %v, want %v", c.typed, got, deleted, c.deleted)
			}
			if !c.deleted && !strings.Contains(r.stderr, "nothing deleted") {
				t.Errorf("declining should say nothing was deleted:\n%s", r.stderr)
			}
		})
	}
}

// TestColourOnlyOnATerminal checks both sides of the rule: colour when
// stdout is a terminal, none when it is not (a pipe, a file, a buffer).
func TestColourOnlyOnATerminal(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	dir, _ := ordersStore(t)
	args := []string{"checkpoints", "verify", "--store", dir, "--job", "orders"}

	master, tty := openPTY(t)
	read := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(master) // until the terminal is closed (EIO)
		read <- b
	}()
	var stderr bytes.Buffer
	if code := run(context.Background(), args, strings.NewReader(""), tty, &stderr); code != exitOK {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	tty.Close()
	out := <-read
	if !bytes.Contains(out, []byte("checkpoint 1: \x1b[32mok\x1b[0m")) {
		t.Errorf("no colour on a terminal: %q", out)
	}

	r := ckptRun(t, nil, args...).want(t, exitOK)
	if strings.Contains(r.stdout, "\x1b") || !strings.Contains(r.stdout, "checkpoint 1: ok") {
		t.Errorf("escape codes when stdout is not a terminal: %q", r.stdout)
	}
	t.Setenv("NO_COLOR", "1")
	master, tty = openPTY(t)
	go func() {
		b, _ := io.ReadAll(master)
		read <- b
	}()
	run(context.Background(), args, strings.NewReader(""), tty, &stderr)
	tty.Close()
	if out := <-read; bytes.Contains(out, []byte("\x1b")) || !bytes.Contains(out, []byte("checkpoint 1: ok")) {
		t.Errorf("escape codes despite NO_COLOR: %q", out)
	}
}

func TestDeleteAllAsksOnATerminal(t *testing.T) {
	dir, _ := ordersStore(t)
	master, tty := openPTY(t)
	if _, err := master.Write([]byte("y\n")); err != nil {
		t.Fatal(err)
	}
	r := ckptRun(t, tty, "checkpoints", "delete", "--all", "--store", dir, "--job", "orders").want(t, exitOK)
	if want := fmt.Sprintf("Delete job \"orders\" and all 5 of its checkpoints (1 savepoint) from store %s? [y/N] ", dir); !strings.HasPrefix(r.stderr, want) {
		t.Errorf("prompt %q, want %q", r.stderr, want)
	}
	if got := jobsIn(t, dir); len(got) != 0 {
		t.Errorf("jobs left after delete --all: %v", got)
	}
}

// TestProgressOnlyOnATerminal: convert draws its progress bar when stderr
// is a terminal, and writes none of it to a pipe or a file, or with
// --no-progress or --quiet.
func TestProgressOnlyOnATerminal(t *testing.T) {
	dir := t.TempDir()
	in := writeInput(t, dir, "in.csv", "a,b\n1,2\n3,4\n")
	convert := func(stderr io.Writer, extra ...string) int {
		args := append([]string{"convert", in, filepath.Join(dir, "out.jsonl"), "--restart"}, extra...)
		return run(context.Background(), args, strings.NewReader(""), io.Discard, stderr)
	}

	master, tty := openPTY(t)
	read := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(master) // until the terminal is closed (EIO)
		read <- b
	}()
	if code := convert(tty); code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	tty.Close()
	if out := <-read; !bytes.Contains(out, []byte("\r100.0% [")) || !bytes.Contains(out, []byte("2 records")) {
		t.Errorf("no progress bar on a terminal: %q", out)
	}

	// On a narrow terminal every drawn line fits, keeping the rate.
	master, tty = openPTY(t)
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 30}); err != nil {
		t.Fatal(err)
	}
	go func() {
		b, _ := io.ReadAll(master)
		read <- b
	}()
	if code := convert(tty); code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	tty.Close()
	out := string(<-read)
	drawn := 0
	for _, line := range strings.FieldsFunc(out, func(r rune) bool { return r == '\r' || r == '\n' }) {
		line = strings.ReplaceAll(line, "\x1b[K", "")
		if strings.Contains(line, "/s") {
			drawn++
		}
		if n := len([]rune(line)); n > 29 && !strings.HasPrefix(line, "convert: done") {
			t.Errorf("a line of %d columns on a 30-column terminal: %q", n, line)
		}
	}
	if drawn == 0 {
		t.Errorf("no progress line with the rate on a 30-column terminal: %q", out)
	}

	for _, extra := range [][]string{nil, {"--no-progress"}, {"--quiet"}} {
		var stderr bytes.Buffer
		if code := convert(&stderr, extra...); code != exitOK {
			t.Fatalf("%v: exit code %d: %s", extra, code, stderr.String())
		}
		if strings.Contains(stderr.String(), "\r") || strings.Contains(stderr.String(), "records") {
			t.Errorf("%v: progress written to a non-terminal: %q", extra, stderr.String())
		}
	}
	for _, flag := range []string{"--no-progress", "--quiet"} {
		master, tty = openPTY(t)
		go func() {
			b, _ := io.ReadAll(master)
			read <- b
		}()
		convert(tty, flag)
		tty.Close()
		if out := <-read; bytes.Contains(out, []byte("\r")) {
			t.Errorf("%s on a terminal: %q", flag, out)
		}
	}
}

// A log line during a run on a terminal clears the progress line, is
// printed, and the progress line is drawn again below it.
func TestLogLinesAboveTheProgressLine(t *testing.T) {
	master, tty := openPTY(t)
	read := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(master)
		read <- b
	}()
	a := newApp(strings.NewReader(""), io.Discard, tty)
	root := newRootCmd(a)
	var pf pipelineFlags
	cmd := &cobra.Command{Use: "convert"}
	pf.add(cmd)
	root.AddCommand(cmd)
	if err := a.setup(cmd); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	cfg, err := pf.config(a, cmd, target{verb: "convert", output: out, id: "file:" + out, isFile: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Progress(pipeline.Progress{Records: 5, Consumed: 50, Size: 100, Elapsed: time.Second})
	cfg.Logger.Warn("slow store")
	cfg.Progress(pipeline.Progress{Records: 10, Consumed: 100, Size: 100, Elapsed: time.Second, Done: true})
	tty.Close()
	got := string(<-read)
	i := strings.Index(got, "msg=\"slow store\"")
	if i < 0 {
		t.Fatalf("no log line: %q", got)
	}
	if !strings.Contains(got[:i], "\r\x1b[Ktime=") {
		t.Errorf("the log line is not printed on a cleared line: %q", got)
	}
	if after := got[i:]; !strings.Contains(after, "\n 50.0%") {
		t.Errorf("the progress line is not drawn again below the log line: %q", got)
	}
}

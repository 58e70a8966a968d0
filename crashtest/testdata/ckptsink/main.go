// Command ckptsink is a small resumable job in ckpt's style, for the crash
// harness's tests: it copies INPUT's lines to OUTPUT, numbered, and every
// 50 lines records {lines done, output length} in state.json, atomically
// (temp file, rename). On resume it truncates OUTPUT to the recorded length,
// as ckpt's file sink does, and announces its phases to a listening
// harness.
//
// With -broken it skips the truncation: lines written after the last
// checkpoint appear twice after a crash. With -inplace it rewrites
// state.json in place instead of replacing it: a crash between the
// truncation and the write (a window of microseconds, which it announces as
// a phase) leaves it empty. The harness must find both.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/ckptdev/ckpt/internal/crashpoint"
)

var inplace *bool

type state struct {
	Lines  int64 `json:"lines"`
	Length int64 `json:"length"`
}

func main() {
	broken := flag.Bool("broken", false, "skip truncating the output on resume")
	inplace = flag.Bool("inplace", false, "rewrite state.json in place")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: ckptsink [-broken] INPUT OUTPUT")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *broken); err != nil {
		fmt.Fprintln(os.Stderr, "ckptsink:", err)
		os.Exit(1)
	}
}

func run(input, output string, broken bool) error {
	var st state
	b, err := os.ReadFile("state.json")
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("state.json: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	out, err := os.OpenFile(output, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	if !broken {
		if err := out.Truncate(st.Length); err != nil {
			return err
		}
	}
	if _, err := out.Seek(0, 2); err != nil {
		return err
	}
	in, err := os.Open(input)
	if err != nil {
		return err
	}
	defer in.Close()
	sc := bufio.NewScanner(in)
	var n int64
	for sc.Scan() {
		n++
		if n <= st.Lines {
			continue
		}
		// One write per line, unbuffered: a kill leaves output beyond the
		// last checkpoint, which a resume must cut off.
		if _, err := fmt.Fprintf(out, "%d: %s\n", n, sc.Text()); err != nil {
			return err
		}
		if n%50 == 0 {
			if err := checkpoint(out, n); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return checkpoint(out, n)
}

// checkpoint records the position, atomically.
func checkpoint(out *os.File, lines int64) error {
	length, err := out.Seek(0, 1)
	if err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.PhaseStateCaptured)
	b, _ := json.Marshal(state{Lines: lines, Length: length})
	if *inplace {
		f, err := os.Create("state.json")
		if err != nil {
			return err
		}
		crashpoint.Hit("state-truncated")
		_, err = f.Write(b)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	if err := os.WriteFile("state.json.tmp", b, 0o644); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.PhaseBlobsWritten)
	if err := os.Rename("state.json.tmp", "state.json"); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.PhaseManifestCommitted)
	return nil
}

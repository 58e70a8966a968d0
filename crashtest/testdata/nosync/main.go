// Command nosync is a small resumable job for the power-loss tests of the
// crash harness. It copies INPUT's lines to OUTPUT, numbered, and every 50
// lines commits {lines done, output length} to state.json the durable way
// (temporary file, fsync, rename, fsync of the directory); on resume it
// truncates OUTPUT to the committed length. All its file I/O goes through
// ckpt's file-system seam, as ckpt's own does, so that `crashtest
// --power-loss` can cut the power on it.
//
// With -nosync it does not fsync OUTPUT before committing the state: every
// kill leaves the output whole (the operating system keeps what was
// written), so kills alone find nothing, and a power loss takes the lines
// that state.json says were written.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/ckptdev/ckpt/internal/vfs"
)

type state struct {
	Lines  int64 `json:"lines"`
	Length int64 `json:"length"`
}

func main() {
	nosync := flag.Bool("nosync", false, "do not fsync the output before committing the state")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: nosync [-nosync] INPUT OUTPUT")
		os.Exit(2)
	}
	if err := run(vfs.Default(), flag.Arg(0), flag.Arg(1), !*nosync); err != nil {
		fmt.Fprintln(os.Stderr, "nosync:", err)
		os.Exit(1)
	}
}

func run(fsys vfs.FS, input, output string, syncOutput bool) error {
	var st state
	if f, err := fsys.Open("state.json"); err == nil {
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("state.json: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	out, err := fsys.OpenFile(output, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := fsys.SyncDir("."); err != nil {
		return err
	}
	if err := out.Truncate(st.Length); err != nil {
		return err
	}
	if _, err := out.Seek(st.Length, io.SeekStart); err != nil {
		return err
	}
	in, err := os.Open(input)
	if err != nil {
		return err
	}
	defer in.Close()
	sc := bufio.NewScanner(in)
	var n int64
	length := st.Length
	for sc.Scan() {
		n++
		if n <= st.Lines {
			continue
		}
		m, err := fmt.Fprintf(out, "%d %s\n", n, sc.Text())
		if err != nil {
			return err
		}
		length += int64(m)
		if n%50 == 0 {
			if syncOutput {
				if err := out.Sync(); err != nil {
					return err
				}
			}
			if err := commit(fsys, state{Lines: n, Length: length}); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return commit(fsys, state{Lines: n, Length: length})
}

// commit replaces state.json durably.
func commit(fsys vfs.FS, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	f, err := fsys.CreateTemp(".", "state-*.tmp")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(f.Name(), "state.json"); err != nil {
		return err
	}
	return fsys.SyncDir(".")
}

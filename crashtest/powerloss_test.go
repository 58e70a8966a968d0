package crashtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/crashtest"
)

// copyJob is a small resumable job in ckpt's style, over a crashtest.FS:
// it copies /in.txt to /out/out.txt line by line and every 5 lines commits
// {lines, output length} to /ckpt/state.json with the durable replace
// (temp file, write, fsync, rename, fsync the directory), after making the
// output durable. On restart it truncates the output to the committed
// length. skip leaves one fsync out.
func copyJob(skip string) func(context.Context, crashtest.FS) error {
	return func(ctx context.Context, fsys crashtest.FS) error {
		var st struct{ Lines, Length int64 }
		if f, err := fsys.Open("/ckpt/state.json"); err == nil {
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
		for _, dir := range []string{"/out", "/ckpt"} {
			if _, err := fsys.Stat(dir); errors.Is(err, fs.ErrNotExist) {
				if err := fsys.Mkdir(dir, 0o755); err != nil {
					return err
				}
				if err := fsys.SyncDir("/"); err != nil {
					return err
				}
			}
		}
		out, err := fsys.OpenFile("/out/out.txt", os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer out.Close()
		if err := out.Truncate(st.Length); err != nil {
			return err
		}
		if _, err := out.Seek(st.Length, io.SeekStart); err != nil {
			return err
		}
		in, err := fsys.Open("/in.txt")
		if err != nil {
			return err
		}
		defer in.Close()
		commit := func(lines, length int64) error {
			if skip != "output fsync" {
				if err := out.Sync(); err != nil {
					return err
				}
			}
			if skip != "output dir fsync" && lines <= 5 {
				if err := fsys.SyncDir("/out"); err != nil {
					return err
				}
			}
			tmp, err := fsys.CreateTemp("/ckpt", "state-*")
			if err != nil {
				return err
			}
			b, _ := json.Marshal(struct{ Lines, Length int64 }{lines, length})
			if _, err := tmp.Write(b); err != nil {
				return err
			}
			if skip != "state fsync" {
				if err := tmp.Sync(); err != nil {
					return err
				}
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			if err := fsys.Rename(tmp.Name(), "/ckpt/state.json"); err != nil {
				return err
			}
			return fsys.SyncDir("/ckpt")
		}
		sc := bufio.NewScanner(in)
		var n int64
		length := st.Length
		for sc.Scan() {
			if n++; n <= st.Lines {
				continue
			}
			line := fmt.Sprintf("%d: %s\n", n, sc.Text())
			if _, err := io.WriteString(out, line); err != nil {
				return err
			}
			length += int64(len(line))
			if n%5 == 0 {
				if err := commit(n, length); err != nil {
					return err
				}
			}
		}
		if err := sc.Err(); err != nil {
			return err
		}
		return commit(n, length)
	}
}

func setupInput(fsys crashtest.FS) error {
	f, err := fsys.OpenFile("/in.txt", os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	for i := range 23 {
		fmt.Fprintf(f, "line %d\n", i)
	}
	return f.Close()
}

// Every crash point of a job with all its fsyncs recovers to the
// uninterrupted result; leaving out any one of them is found.
func TestPowerLoss(t *testing.T) {
	for _, skip := range []string{"", "output fsync", "output dir fsync", "state fsync"} {
		t.Run("skip="+skip, func(t *testing.T) {
			rep, err := crashtest.PowerLoss(context.Background(), crashtest.PowerLossConfig{
				Setup:   setupInput,
				Job:     copyJob(skip),
				Compare: []string{"/out/out.txt"},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", rep)
			if rep.Tried != len(rep.Operations) || rep.Tried < 20 {
				t.Errorf("%d crash points tried of %d operations", rep.Tried, len(rep.Operations))
			}
			if got, want := rep.Failed(), skip != ""; got != want {
				t.Fatalf("failed = %v, want %v", got, want)
			}
			if skip != "" && !strings.Contains(rep.String(), "FAILED: power lost before operation") {
				t.Errorf("report:\n%s", rep)
			}
		})
	}
}

// The job sees the same file system API as package os gives.
func TestPowerLossUninterruptedResult(t *testing.T) {
	rep, err := crashtest.PowerLoss(context.Background(), crashtest.PowerLossConfig{
		Setup: setupInput, Job: copyJob(""), Compare: []string{"/out/out.txt"}, MaxPoints: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tried > 3 || rep.Tried == 0 {
		t.Errorf("MaxPoints 3: %d tried", rep.Tried)
	}
	if !bytes.Contains([]byte(strings.Join(rep.Operations, "\n")), []byte("rename /ckpt/state-")) {
		t.Errorf("operations do not show the rename:\n%s", strings.Join(rep.Operations, "\n"))
	}
}

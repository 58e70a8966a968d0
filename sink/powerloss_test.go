package sink_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/internal/vfs"
	"github.com/ckptdev/ckpt/sink"
)

// A file sink cut off by a power loss at any of its operations resumes
// from the position its last Sync returned: the output up to it is there,
// whole, and what came after is cut off. A second writer is refused on the
// in-memory file system as on the real one.
func TestFilePowerLoss(t *testing.T) {
	const path = "/out/out.txt"
	base := vfs.NewMemFS()
	if err := base.Mkdir("/out", 0o755); err != nil {
		t.Fatal(err)
	}
	base.SyncAll()
	// write writes three batches, each flushed and synced, and returns
	// the position of the last batch whose Sync returned.
	write := func(fsys vfs.FS, pos json.RawMessage, from int) (json.RawMessage, error) {
		w, err := sink.OpenFileWith(path, pos, sink.FileOptions{FS: fsys})
		if err != nil {
			return pos, err
		}
		defer w.Close()
		if _, err := sink.OpenFileWith(path, pos, sink.FileOptions{FS: fsys}); !errors.Is(err, sink.ErrOutputBusy) && !errors.Is(err, vfs.ErrCrashed) {
			return pos, fmt.Errorf("second writer: %v, want ErrOutputBusy", err)
		}
		for batch := from; batch < 3; batch++ {
			if _, err := w.WriteString(strings.Repeat(fmt.Sprintf("batch %d\n", batch), 10)); err != nil {
				return pos, err
			}
			p, err := w.Flush()
			if err != nil {
				return pos, err
			}
			if err := w.Sync(t.Context()); err != nil {
				return pos, err
			}
			pos = p
		}
		return pos, nil
	}
	ref := base.CrashClone()
	counter := vfs.NewCrashing(ref, 0)
	if _, err := write(counter, nil, 0); err != nil {
		t.Fatal(err)
	}
	want, _ := ref.ReadFile(path)
	ops := counter.Ops()
	for at := 1; at <= len(ops); at++ {
		live := base.CrashClone()
		crashing := vfs.NewCrashing(live, at)
		pos, err := write(crashing, nil, 0)
		if !errors.Is(err, vfs.ErrCrashed) {
			t.Fatalf("before operation %d (%s): %v, want a crash", at, ops[at-1], err)
		}
		after := live.CrashClone()
		from := 0
		if pos != nil {
			var p sink.FilePosition
			if err := json.Unmarshal(pos, &p); err != nil {
				t.Fatal(err)
			}
			from = int(p.Length) / len("batch 0\n") / 10
		}
		if _, err := write(after, pos, from); err != nil {
			t.Fatalf("power lost before operation %d (%s): resume from %s: %v", at, ops[at-1], pos, err)
		}
		if got, _ := after.ReadFile(path); string(got) != string(want) {
			t.Fatalf("power lost before operation %d (%s): output\n%s\nwant\n%s", at, ops[at-1], got, want)
		}
	}
}

package crashtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/crashtest"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/store/filestore"
)

// ckptJob is the job of docs/CRASHTEST.md: a ckpt job whose store and
// output are on the file system PowerLoss gives it.
func ckptJob(ctx context.Context, fsys crashtest.FS) error {
	quiet := slog.New(slog.DiscardHandler)
	st, err := filestore.Open("/ckpt", filestore.Options{FS: fsys, Logger: quiet})
	if err != nil {
		return err
	}
	defer st.Close()
	job, err := ckpt.Open[struct{ Next, Sum int }](ctx, "orders", ckpt.Config{
		Backend: st, NoSignals: true, Logger: quiet, Every: ckpt.Every{Records: 4},
	})
	if err != nil {
		return err
	}
	defer job.Close()
	var pos json.RawMessage
	if cp := job.Resumed(); cp != nil {
		pos = cp.Sink
	}
	if job.Done() {
		return nil
	}
	out, err := sink.OpenFileWith("/out/result.txt", pos, sink.FileOptions{FS: fsys})
	if err != nil {
		return err
	}
	defer out.Close()
	job.Bind(nil, out)
	for i := job.State.Next; i < 20; i++ {
		job.State.Sum += i
		job.State.Next = i + 1
		fmt.Fprintf(out, "%d %d\n", i, job.State.Sum)
		if err := job.Advance(ctx, 1, 0); err != nil {
			return err
		}
	}
	_, err = job.Finish(ctx)
	return err
}

// A ckpt job with a file store and a file output survives a power loss
// before any of its file-system operations.
func TestPowerLossCkptJob(t *testing.T) {
	rep, err := crashtest.PowerLoss(t.Context(), crashtest.PowerLossConfig{
		Setup:   func(fsys crashtest.FS) error { return fsys.Mkdir("/out", 0o755) },
		Job:     ckptJob,
		Compare: []string{"/out/result.txt"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() {
		t.Fatalf("%s", rep)
	}
	if rep.Tried < 50 {
		t.Fatalf("only %d crash points: the job's I/O does not go through the FS it was given", rep.Tried)
	}
}

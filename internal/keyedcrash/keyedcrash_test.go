//go:build linux

package keyedcrash_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/store"
	_ "github.com/ckptdev/ckpt/store/pgstore"
	_ "github.com/ckptdev/ckpt/store/s3store"
)

const (
	envStore = "CKPT_KEYED_CHILD_STORE"
	envDir   = "CKPT_KEYED_CHILD_DIR"
	// envInMemory, set to 1, lifts the child's memory budget: its state
	// stays in memory, and checkpoints copy its changes after the pause.
	envInMemory = "CKPT_KEYED_CHILD_IN_MEMORY"
	job         = "keyed"
	records     = 120_000
	space       = 20_000
)

type position struct {
	Next int `json:"next"`
}

// TestKeyedChild is the process the crash loops kill: it applies records
// (puts, read-modify-writes and deletes chosen by each record's number)
// to a keyed state that spills past a small memory budget (or, with
// envInMemory, stays in memory), checkpointing every few thousand
// records, and at the end writes the state in key order to out.txt.
func TestKeyedChild(t *testing.T) {
	url, dir := os.Getenv(envStore), os.Getenv(envDir)
	if url == "" {
		t.Skip("the child process of the keyed crash loops; runs only as that")
	}
	if err := runChild(url, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(0)
}

func runChild(url, dir string) error {
	ctx := context.Background()
	memory := int64(256 << 10)
	if os.Getenv(envInMemory) == "1" {
		memory = 0
	}
	j, err := ckpt.Open[position](ctx, job, ckpt.Config{
		Store:    url,
		Every:    ckpt.Every{Records: 3000},
		Memory:   memory,
		LocalDir: filepath.Join(dir, "local"),
		Codec:    codec.Gob{},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	defer j.Close()
	if j.Done() {
		return nil
	}
	k, err := ckpt.NewKeyed[string, int64](j, "totals", ckpt.KeyedOptions[int64]{})
	if err != nil {
		return err
	}
	// Where each run starts, for the loop to check that runs resume.
	if f, err := os.OpenFile(filepath.Join(dir, "starts"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintln(f, j.State.Next)
		f.Close()
	}
	for i := j.State.Next; i < records; i++ {
		r := rand.New(rand.NewPCG(uint64(i), 99))
		key := fmt.Sprintf("key-%05d", r.IntN(space))
		switch op := r.IntN(20); {
		case op == 0:
			err = k.Delete(key)
		case op < 4:
			err = k.Put(key, int64(i))
		default:
			var v int64
			if v, _, err = k.Get(key); err == nil {
				err = k.Put(key, v*3+int64(i)%1000)
			}
		}
		if err != nil {
			return err
		}
		j.State.Next = i + 1
		if err := j.Advance(ctx, 1, 0); err != nil {
			return err
		}
	}
	var out bytes.Buffer
	if err := k.Range(func(key string, v int64) bool {
		fmt.Fprintf(&out, "%s,%d\n", key, v)
		return true
	}); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "out.tmp")
	if err := os.WriteFile(tmp, out.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "out.txt")); err != nil {
		return err
	}
	_, err = j.Finish(ctx)
	return err
}

// child runs the child on url and dir, sending it SIGKILL after delay
// unless it ends first; a negative delay never kills.
func child(t *testing.T, url, dir string, env []string, delay time.Duration) (killed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKeyedChild$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), env...), envStore+"="+url, envDir+"="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timer <-chan time.Time
	if delay >= 0 {
		timer = time.After(delay)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("child failed: %v\n%s", err, out.String())
		}
		return false
	case <-timer:
		cmd.Process.Kill() // SIGKILL
		err := <-done
		if err == nil {
			return false
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child failed: %v\n%s", err, out.String())
		}
		return true
	}
}

// crashLoop kills the child on url at random moments until it has been
// killed minKills times and then finishes, and checks its output against
// an uninterrupted run's and the store against its manifests.
func crashLoop(t *testing.T, url string, env []string, open func() store.Store) {
	if testing.Short() {
		t.Skip("a kill loop: runs without -short")
	}
	minKills := 10
	if os.Getenv("CKPT_LONG") == "1" {
		minKills = 50
	}
	ref := t.TempDir()
	child(t, ref, ref, nil, -1)
	want, err := os.ReadFile(filepath.Join(ref, "out.txt"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(uint64(len(url)), 11))
	window, kills := 150*time.Millisecond, 0
	for attempt := 0; ; attempt++ {
		if attempt > 500 {
			t.Fatalf("no run finished after %d attempts", attempt)
		}
		if child(t, url, dir, env, time.Duration(r.Int64N(int64(window)))) {
			kills++
			window += window / 8
			continue
		}
		if kills >= minKills {
			break
		}
		// Finished too soon: kill more before the end next time.
		window = window * 3 / 4
		st := open()
		err := ckpt.DeleteJob(context.Background(), st, job, ckpt.AdminOptions{})
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "out.txt"))
		os.Remove(filepath.Join(dir, "starts"))
	}
	starts, _ := os.ReadFile(filepath.Join(dir, "starts"))
	resumed := len(strings.Fields(string(starts))) - strings.Count("\n"+string(starts), "\n0\n")
	t.Logf("%d kills, %d runs resumed from a checkpoint", kills, resumed)
	if resumed < 2 {
		t.Fatalf("only %d runs resumed from a checkpoint: the kills came too early to test resuming", resumed)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("after %d kills the output differs from an uninterrupted run's (%d bytes, want %d)", kills, len(got), len(want))
	}
	st := open()
	defer st.Close()
	checkNoOrphans(t, st)
}

// checkNoOrphans lists the job's blobs: each must be named by a kept
// manifest, and each blob a manifest names must be there.
func checkNoOrphans(t *testing.T, st store.Store) {
	t.Helper()
	bc, err := ckpt.CheckBlobs(context.Background(), st, job)
	if err != nil {
		t.Fatal(err)
	}
	if len(bc.Unreferenced) > 0 || len(bc.Missing) > 0 {
		t.Errorf("%d blobs: %d named by no kept checkpoint (%q), %d named by one but missing (%q)",
			bc.Blobs, len(bc.Unreferenced), bc.Unreferenced, len(bc.Missing), bc.Missing)
	}
}

func openURL(t *testing.T, url string) func() store.Store {
	return func() store.Store {
		st, err := ckpt.OpenStore(context.Background(), url, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
}

func TestKilledKeyedJobLocal(t *testing.T) {
	url := filepath.Join(t.TempDir(), "store")
	crashLoop(t, url, nil, openURL(t, url))
}

// The same on a state held in memory, whose checkpoints copy the changed
// values in the background while the job changes them.
func TestKilledKeyedJobInMemory(t *testing.T) {
	url := filepath.Join(t.TempDir(), "store")
	crashLoop(t, url, []string{envInMemory + "=1"}, openURL(t, url))
}

func TestKilledKeyedJobS3(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill loop: runs without -short")
	}
	b := testenv.S3(t)
	url := b.URL("ckpt")
	for _, kv := range b.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	crashLoop(t, url, b.Env(), openURL(t, url))
}

func TestKilledKeyedJobPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill loop: runs without -short")
	}
	pg := testenv.NewPostgres(t)
	crashLoop(t, pg.URL, nil, openURL(t, pg.URL))
}

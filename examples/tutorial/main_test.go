package main

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/internal/gen"
)

// The tutorial's promise: kill -9 at any moment, run again, and
// processed.txt ends exactly as one uninterrupted run writes it.
func TestTutorialSurvivesKill9(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tutorial")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var data bytes.Buffer
	if err := gen.Write(&data, gen.Options{Rows: 100_000, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	run := func(wd string) *exec.Cmd {
		cmd := exec.Command(bin, "data.csv", "processed.txt")
		cmd.Dir = wd
		return cmd
	}
	for _, d := range []string{"ref", "crash"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, "data.csv"), data.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := run(filepath.Join(dir, "ref")).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}

	r := rand.New(rand.NewPCG(4, 4))
	kills := 0
	for window := 20 * time.Millisecond; ; window += window / 8 {
		cmd := run(filepath.Join(dir, "crash"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run after %d kills: %v", kills, err)
			}
		case <-time.After(time.Duration(r.Int64N(int64(window)))):
			cmd.Process.Kill()
			var ee *exec.ExitError
			if err := <-done; err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			kills++
			continue
		}
		break
	}
	got, err := os.ReadFile(filepath.Join(dir, "crash", "processed.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "ref", "processed.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("after %d kills, processed.txt differs from an uninterrupted run's (%d vs %d bytes)", kills, len(got), len(want))
	}
	t.Logf("%d kills", kills)
}

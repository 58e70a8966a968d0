package main

import (
	"bytes"
	"context"
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
	if testing.Short() {
		t.Skip("a kill -9 loop: skipped with -short")
	}
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

// Once finished, the tutorial runs on other input with -restart; without
// it, it says the input changed and what to pass.
func TestTutorialOnOtherInput(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := context.Background()
	write := func(data string) {
		t.Helper()
		if err := os.WriteFile("data.csv", []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a,b\n1,2\n")
	if code := run(ctx, []string{"data.csv", "processed.txt"}); code != 0 {
		t.Fatalf("first run: exit code %d", code)
	}
	if code := run(ctx, []string{"data.csv", "processed.txt"}); code != 0 {
		t.Fatalf("rerun of the finished job: exit code %d", code)
	}
	write("a,b\n3,4\n5,6\n")
	if code := run(ctx, []string{"data.csv", "processed.txt"}); code != 1 {
		t.Fatalf("other input without -restart: exit code %d, want 1", code)
	}
	if code := run(ctx, []string{"-restart", "data.csv", "processed.txt"}); code != 0 {
		t.Fatalf("-restart: exit code %d", code)
	}
	if b, _ := os.ReadFile("processed.txt"); string(b) != "row 1: 3 | 4\nrow 2: 5 | 6\n" {
		t.Fatalf("processed.txt after -restart: %q", b)
	}
	if code := run(ctx, []string{"only-one-argument"}); code != 2 {
		t.Fatalf("usage: exit code %d, want 2", code)
	}
}

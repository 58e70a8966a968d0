package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// --memory small enough that the groups spill gives the output of no
// limit, the checkpoints record what they wrote beside the full size, and
// the finished job leaves no local runs beside its store.
func TestAggregateMemory(t *testing.T) {
	dir := t.TempDir()
	var in strings.Builder
	in.WriteString("g,v\n")
	for i := range 30000 {
		fmt.Fprintf(&in, "g%d,%d.%d\n", i%9000, i, i%10)
	}
	if err := os.WriteFile(filepath.Join(dir, "in.csv"), []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, memory := range []string{"0", "64KiB"} {
		out := filepath.Join(dir, "out-"+memory+".csv")
		ckptRun(t, nil, "aggregate", filepath.Join(dir, "in.csv"), out, "--group-by", "g", "--agg", "count,sum:v",
			"--memory", memory, "--every", "2000", "--interval", "0", "--job", "agg-"+strings.ToLower(memory), "-q").want(t, exitOK)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	if outs[0] != outs[1] || strings.Count(outs[0], "\n") != 9001 {
		t.Fatalf("outputs differ, or not 9000 groups")
	}
	r := ckptRun(t, nil, "checkpoints", "list", "--store", filepath.Join(dir, ".ckpt"), "--job", "agg-64kib", "--json").want(t, exitOK)
	var cps []checkpointJSON
	if err := json.Unmarshal([]byte(r.stdout), &cps); err != nil || len(cps) == 0 {
		t.Fatalf("list --json: %v\n%s", err, r.stdout)
	}
	last := cps[len(cps)-1]
	if last.SizeBytes <= 0 || last.FullSizeBytes <= last.SizeBytes {
		t.Errorf("final checkpoint: size_bytes %d, full_size_bytes %d: want a small part of the whole", last.SizeBytes, last.FullSizeBytes)
	}
	if _, err := os.Stat(filepath.Join(dir, ".ckpt-keyed")); !os.IsNotExist(err) {
		t.Errorf("local runs left beside the store of finished jobs: %v", err)
	}
	r = ckptRun(t, nil, "checkpoints", "show", "--store", filepath.Join(dir, ".ckpt"), "--job", "agg-64kib").want(t, exitOK)
	if !strings.Contains(r.stdout, "KEYED STATE") || !strings.Contains(r.stdout, "written by this checkpoint") {
		t.Errorf("show does not list the keyed state and sizes:\n%s", r.stdout)
	}
}

// --memory sets the runtime's soft memory limit to 1.75 times itself,
// unless GOMEMLIMIT sets one or there is no budget.
func TestAggregateMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	setMemoryLimit(512 << 20)
	if got := debug.SetMemoryLimit(-1); got != 896<<20 {
		t.Fatalf("limit %d, want %d", got, 896<<20)
	}
	debug.SetMemoryLimit(prev)
	setMemoryLimit(0)
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Fatalf("no budget: limit %d, want %d", got, prev)
	}
	t.Setenv("GOMEMLIMIT", "2GiB")
	setMemoryLimit(512 << 20)
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Fatalf("with GOMEMLIMIT set: limit %d, want %d", got, prev)
	}
}

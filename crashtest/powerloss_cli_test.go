package crashtest_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/crashtest"
)

// A job that commits its state before its output is durable passes every
// kill test, since a killed process leaves the page cache to the operating
// system; with PowerLoss every kill is a power cut, and the harness finds
// the missing fsync. The same job with the fsync passes both.
func TestPowerLossFindsMissingFsync(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program and kill-loops it")
	}
	bin := build(t, "./testdata/nosync")
	work := t.TempDir()
	lines(t, work, "in.txt", 20000)
	for _, tc := range []struct {
		nosync, powerLoss, wantFail bool
	}{
		{nosync: true, powerLoss: false, wantFail: false},
		{nosync: true, powerLoss: true, wantFail: true},
		{nosync: false, powerLoss: true, wantFail: false},
	} {
		t.Run(fmt.Sprintf("nosync=%v,powerloss=%v", tc.nosync, tc.powerLoss), func(t *testing.T) {
			cmd := []string{bin, "in.txt", "out.txt"}
			if tc.nosync {
				cmd = []string{bin, "-nosync", "in.txt", "out.txt"}
			}
			rep := run(t, crashtest.Config{Command: cmd, Workdir: work, Compare: []string{"out.txt"}, Kills: 8, Shrink: -1, PowerLoss: tc.powerLoss})
			if rep.Failed() != tc.wantFail {
				t.Fatalf("failed = %v, want %v:\n%s", rep.Failed(), tc.wantFail, rep)
			}
			if !tc.powerLoss {
				return
			}
			if undone(rep) == 0 {
				t.Errorf("no power cut undid anything:\n%s", rep)
			}
		})
	}
}

// undone counts the changes the power cuts of a crash test undid.
func undone(rep *crashtest.Report) int {
	n := 0
	for _, tr := range rep.Trials {
		for _, r := range tr.Runs {
			n += r.Undone
		}
	}
	return n
}

// `ckpt convert` and `ckpt aggregate` resume exactly after power cuts: every
// fsync their commit protocol needs is there.
func TestCkptCommandsSurvivePowerLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ckpt and kill-loops it")
	}
	ckpt := build(t, "../cmd/ckpt")
	work := t.TempDir()
	awkwardCSV(t, filepath.Join(work, "in.csv"), 30000)
	for _, tc := range []struct {
		name    string
		args    []string
		compare string
	}{
		{"convert", []string{"convert", "in.csv", "out.jsonl", "--every", "2000"}, "out.jsonl"},
		{"aggregate", []string{"aggregate", "in.csv", "by_region.csv", "--group-by", "region", "--agg", "count,sum:amount", "--every", "2000"}, "by_region.csv"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := run(t, crashtest.Config{
				Command:   append([]string{ckpt, "--quiet"}, tc.args...),
				Workdir:   work,
				Compare:   []string{tc.compare},
				Kills:     kills(4, 10),
				Shrink:    -1,
				PowerLoss: true,
			})
			if rep.Failed() {
				t.Fatalf("ckpt %s failed its power-loss test:\n%s", tc.name, rep)
			}
			if undone(rep) == 0 {
				t.Errorf("no power cut undid anything:\n%s", rep)
			}
		})
	}
}

// Power loss is simulated for the files a program changes through ckpt; a
// program that changes none is told so, instead of passing a test that
// proved nothing more than kills.
func TestPowerLossNeedsCkptIO(t *testing.T) {
	work := t.TempDir()
	lines(t, work, "in.txt", 10)
	_, err := crashtest.Run(context.Background(), crashtest.Config{
		Command:   []string{"sh", "-c", "cp in.txt out.txt"},
		Workdir:   work,
		Compare:   []string{"out.txt"},
		Kills:     1,
		PowerLoss: true,
	})
	if !errors.Is(err, crashtest.ErrConfig) || !strings.Contains(err.Error(), "changed no file through ckpt") {
		t.Fatalf("err = %v, want a configuration error saying no file was changed through ckpt", err)
	}
}

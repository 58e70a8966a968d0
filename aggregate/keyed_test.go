package aggregate_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/aggregate"
)

// manyGroupsInput is arithInput's columns over groups of ids up to
// groups, a few of them with a NUL byte in the group value.
func manyGroupsInput(rows, groups int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 2))
	mixed := []string{"1.5", "2.25", "-0.1", "0.000000000000000000001", "1e3", "-0", "7", "0.1", "0.2", ""}
	bigs := []string{"9223372036854775807", "-9223372036854775808", "9223372036854775806", "1"}
	var b strings.Builder
	b.WriteString("g,money,mixed,big,id\n")
	for i := range rows {
		if i%997 == 500 {
			b.WriteString("g1,oops,1,1,1\n")
			continue
		}
		g := fmt.Sprintf("g%d", r.IntN(groups))
		if r.IntN(50) == 0 {
			g += "\x00z"
		}
		fmt.Fprintf(&b, "%s,%d.%02d,%s,%s,%d\n", g, r.IntN(100000), r.IntN(100),
			mixed[r.IntN(len(mixed))], bigs[r.IntN(len(bigs))], 1<<53+r.IntN(1000))
	}
	return b.String()
}

// Groups past the memory budget, handed to the keyed state at frequent
// checkpoints, spilled and merged, come out as those of one run that
// held them all in memory and never checkpointed.
func TestManyGroupsPastTheBudgetMatchInMemory(t *testing.T) {
	in := manyGroupsInput(50_000, 8000, 4)
	var outs []string
	for _, memory := range []int64{0, 48 << 10} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "in.csv"), []byte(in), 0o644); err != nil {
			t.Fatal(err)
		}
		opts := aggOptions(dir, 0)
		if memory > 0 {
			opts.Pipeline.Memory = memory
			opts.Pipeline.LocalDir = filepath.Join(dir, "local")
			opts.Pipeline.Every.Records = 1000
		}
		res, err := aggregate.Run(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		if memory > 0 && res.Checkpoints < 40 {
			t.Fatalf("%d checkpoints", res.Checkpoints)
		}
		b, err := os.ReadFile(filepath.Join(dir, "out.csv"))
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	if n := strings.Count(outs[0], "\n"); n < 7000 {
		t.Fatalf("%d groups", n)
	}
	if outs[0] != outs[1] {
		t.Fatal("the groups written past the memory budget differ from those held in memory")
	}
}

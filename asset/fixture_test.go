package asset_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ckptdev/ckpt/asset"
)

// faults makes assets fail on purpose: key -> failures left (-1: always).
type faults struct {
	mu   sync.Mutex
	left map[string]int
}

func newFaults() *faults { return &faults{left: map[string]int{}} }

func (f *faults) set(key string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left[key] = n
}

func (f *faults) hit(c *asset.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := name(c.Key, c.Partition)
	n, ok := f.left[k]
	if !ok {
		n, ok = f.left[c.Key]
		k = c.Key
	}
	if !ok || n == 0 {
		return nil
	}
	if n > 0 {
		f.left[k] = n - 1
	}
	return fmt.Errorf("injected failure of %s (attempt %d)", name(c.Key, c.Partition), c.Attempt)
}

// Summary is the value of the report asset.
type Summary struct {
	Count int
	Text  string
}

// pipeline is the graph most tests use:
//
//	raw ──> clean ──> joined ──> report
//	customers ──────────┘
//	other ──> other2
type pipeline struct {
	g       *asset.Graph
	calls   *counter
	faults  *faults
	version map[string]string // code versions, read when defined
	// hook, if set, is called as each compute starts.
	hook func(*asset.Context)
}

func newPipeline(versions map[string]string) *pipeline {
	p := &pipeline{g: asset.New(), calls: newCounter(), faults: newFaults(), version: versions}
	g := p.g
	enter := func(c *asset.Context) error {
		p.calls.add(c)
		if p.hook != nil {
			p.hook(c)
		}
		if err := c.Err(); err != nil {
			return err
		}
		return p.faults.hit(c)
	}
	raw := asset.Define(g, asset.Spec{Key: "raw", CodeVersion: p.version["raw"], Group: "ingest"}, func(c *asset.Context) ([]int, error) {
		if err := enter(c); err != nil {
			return nil, err
		}
		out := make([]int, 10)
		for i := range out {
			out[i] = i + 1
		}
		return out, nil
	})
	customers := asset.Define(g, asset.Spec{Key: "customers", CodeVersion: p.version["customers"], Group: "ingest"}, func(c *asset.Context) (map[string]string, error) {
		if err := enter(c); err != nil {
			return nil, err
		}
		return map[string]string{"2": "ann", "4": "bob", "6": "cy", "8": "dee", "10": "eve"}, nil
	})
	clean := asset.Define1(g, asset.Spec{Key: "clean", CodeVersion: p.version["clean"]}, raw, func(c *asset.Context, in []int) ([]int, error) {
		if err := enter(c); err != nil {
			return nil, err
		}
		var out []int
		for _, v := range in {
			if v%2 == 0 {
				out = append(out, v)
			}
		}
		return out, nil
	})
	joined := asset.Define2(g, asset.Spec{Key: "joined", CodeVersion: p.version["joined"]}, clean, customers, func(c *asset.Context, ids []int, names map[string]string) ([]string, error) {
		if err := enter(c); err != nil {
			return nil, err
		}
		out := make([]string, 0, len(ids))
		for _, id := range ids {
			out = append(out, fmt.Sprintf("%d:%s", id, names[fmt.Sprint(id)]))
		}
		return out, nil
	})
	asset.Define1(g, asset.Spec{Key: "report", CodeVersion: p.version["report"]}, joined, func(c *asset.Context, rows []string) (Summary, error) {
		if err := enter(c); err != nil {
			return Summary{}, err
		}
		return Summary{Count: len(rows), Text: strings.Join(rows, ",")}, nil
	})
	other := asset.Define(g, asset.Spec{Key: "other", CodeVersion: p.version["other"]}, func(c *asset.Context) (int, error) {
		if err := enter(c); err != nil {
			return 0, err
		}
		return 41, nil
	})
	asset.Define1(g, asset.Spec{Key: "other2", CodeVersion: p.version["other2"]}, other, func(c *asset.Context, v int) (int, error) {
		if err := enter(c); err != nil {
			return 0, err
		}
		return v + 1, nil
	})
	return p
}

// versioned gives every asset of the pipeline code version 1: their data
// versions then depend only on code and inputs.
var versioned = map[string]string{"raw": "1", "customers": "1", "clean": "1", "joined": "1", "report": "1", "other": "1", "other2": "1"}

var allKeys = []string{"raw", "customers", "clean", "joined", "report", "other", "other2"}

// expected are the values of a clean run of the pipeline.
var expected = map[string]any{
	"raw":       []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
	"customers": map[string]string{"2": "ann", "4": "bob", "6": "cy", "8": "dee", "10": "eve"},
	"clean":     []int{2, 4, 6, 8, 10},
	"joined":    []string{"2:ann", "4:bob", "6:cy", "8:dee", "10:eve"},
	"report":    Summary{Count: 5, Text: "2:ann,4:bob,6:cy,8:dee,10:eve"},
	"other":     41,
	"other2":    42,
}

// checkValues compares every value of in with a clean run's.
func checkValues(t testing.TB, in *asset.Instance) {
	t.Helper()
	got := map[string]any{
		"raw":       value[[]int](t, in, "raw", ""),
		"customers": value[map[string]string](t, in, "customers", ""),
		"clean":     value[[]int](t, in, "clean", ""),
		"joined":    value[[]string](t, in, "joined", ""),
		"report":    value[Summary](t, in, "report", ""),
		"other":     value[int](t, in, "other", ""),
		"other2":    value[int](t, in, "other2", ""),
	}
	for k, want := range expected {
		if !reflect.DeepEqual(got[k], want) {
			t.Errorf("value of %s = %#v, want %#v", k, got[k], want)
		}
	}
}

func isFailed(err error) bool { return errors.Is(err, asset.ErrRunFailed) }

func sorted(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

package asset

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/store"
)

// Spec describes an asset, apart from its inputs and its code. Only Key is
// required.
type Spec struct {
	// Key names the asset: one or more segments of letters, digits, '.',
	// '_' and '-' joined by '/' ("orders", "sales/daily"), no segment
	// starting with '.'.
	Key         string
	Description string
	// Group is a label to list and select assets by ("group:NAME").
	Group string
	// CodeVersion names the version of the compute function. Changing it
	// makes the asset stale. Empty means unversioned: never stale for its
	// code, and each materialization gets a new data version.
	CodeVersion string
	// Partitions, if set, divide the asset into partitions.
	Partitions *Partitions
	// Retry says how often and when a failed computation is tried again.
	Retry RetryPolicy
	// Metadata is recorded with every materialization.
	Metadata map[string]string
	// Codec encodes the value (codec.JSON when nil; a File value is always
	// stored as its bytes). Uncompressed turns zstd off.
	Codec        codec.Codec
	Uncompressed bool
	// External marks an asset that keeps its data itself (a file it writes,
	// a table): its value is a small description of where the data is
	// (at most 64 KiB as JSON), recorded in the event log instead of a
	// value in the store, and handed to downstream assets as it is.
	External bool
	// Store is the URL of the store for this asset's values; empty means
	// the instance's store.
	Store string
	// Checks run on every new value; their results are recorded with the
	// materialization. A failed blocking check fails the asset, so that
	// nothing downstream of it runs.
	Checks []Check
}

// Graph holds asset definitions. Define assets with Define, Define1, ...;
// definition errors are collected and reported together by Validate,
// which every operation calls first. A Graph is not safe for concurrent
// definition; once defined, it may be used by any number of goroutines.
type Graph struct {
	nodes []*node
	byKey map[string]*node
	errs  []error

	// mu serializes Validate: every use of a graph calls it, possibly
	// from several goroutines at once, and what it sets is read only
	// after it returned.
	mu        sync.Mutex
	validated bool
	err       error
	order     []*node // topological: every node after its upstream
}

// New returns an empty graph.
func New() *Graph {
	return &Graph{byKey: map[string]*node{}}
}

// node is one defined asset.
type node struct {
	spec  Spec
	key   string
	idx   int     // position in Graph.order once validated
	deps  []input // in the order the compute function takes them
	out   reflect.Type
	file  bool // the value is a File: stored as its bytes
	run   func(c *Context, in []any) (any, error)
	newV  func() any    // a new *T
	deref func(any) any // *T to T

	up   []*node // distinct upstream nodes, in deps order
	down []*node
}

// input is a dependency of a node on the asset key, as declared by a handle.
type input struct {
	key  string
	g    *Graph // the graph that made the handle; nil for Ref
	all  bool   // every partition of key, as map[partition]T
	want reflect.Type
}

func (i input) String() string {
	if i.all {
		return "all partitions of " + i.key
	}
	return i.key
}

// Asset is a typed handle on an asset whose value is T: pass it to the
// Define functions as an input of another asset.
type Asset[T any] struct{ in input }

// Key returns the asset's key.
func (a Asset[T]) Key() string { return a.in.key }

func (a Asset[T]) input() input { return a.in }

// Input is any asset handle (Asset[T] for some T), for DefineN.
type Input interface{ input() input }

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// Ref returns a handle on the asset called key, whose value must be a T:
// for an asset defined later or elsewhere. Validate checks that it exists
// and that its type is T.
func Ref[T any](key string) Asset[T] {
	return Asset[T]{in: input{key: key, want: typeOf[T]()}}
}

// AllPartitions returns an input that reads every partition of a
// partitioned asset as one map from partition key to value: for an
// unpartitioned asset (or one with other partitions) that summarises them.
func AllPartitions[T any](a Asset[T]) Asset[map[string]T] {
	in := a.in
	in.all = true
	return Asset[map[string]T]{in: in}
}

// as converts an input value to its declared type (nil stays the zero T).
func as[T any](v any) T {
	t, _ := v.(T)
	return t
}

// Define defines an asset with no inputs (it reads its data from outside:
// a file, an API) and returns its handle.
func Define[T any](g *Graph, s Spec, fn func(*Context) (T, error)) Asset[T] {
	return define(g, s, nil, func(c *Context, _ []any) (T, error) { return fn(c) })
}

// Define1 defines an asset computed from one input.
func Define1[A, T any](g *Graph, s Spec, a Asset[A], fn func(*Context, A) (T, error)) Asset[T] {
	return define(g, s, []input{a.in}, func(c *Context, in []any) (T, error) {
		return fn(c, as[A](in[0]))
	})
}

// Define2 defines an asset computed from two inputs.
func Define2[A, B, T any](g *Graph, s Spec, a Asset[A], b Asset[B], fn func(*Context, A, B) (T, error)) Asset[T] {
	return define(g, s, []input{a.in, b.in}, func(c *Context, in []any) (T, error) {
		return fn(c, as[A](in[0]), as[B](in[1]))
	})
}

// Define3 defines an asset computed from three inputs.
func Define3[A, B, C, T any](g *Graph, s Spec, a Asset[A], b Asset[B], cc Asset[C], fn func(*Context, A, B, C) (T, error)) Asset[T] {
	return define(g, s, []input{a.in, b.in, cc.in}, func(c *Context, in []any) (T, error) {
		return fn(c, as[A](in[0]), as[B](in[1]), as[C](in[2]))
	})
}

// DefineN defines an asset computed from any number of inputs, which fn
// reads with Value.
func DefineN[T any](g *Graph, s Spec, inputs []Input, fn func(*Context) (T, error)) Asset[T] {
	ins := make([]input, len(inputs))
	for i, h := range inputs {
		ins[i] = h.input()
	}
	return define(g, s, ins, func(c *Context, _ []any) (T, error) { return fn(c) })
}

// Value returns the value of input h of the asset being computed (defined
// with DefineN). An h that is not among the asset's inputs fails the
// asset, and Value returns the zero T.
func Value[T any](c *Context, h Asset[T]) T {
	for i, in := range c.deps {
		if in.key == h.in.key && in.all == h.in.all {
			return as[T](c.inputs[i])
		}
	}
	c.fail(fmt.Errorf("asset %s reads %s, which is not among its declared inputs", c.Key, h.in))
	var zero T
	return zero
}

func define[T any](g *Graph, s Spec, deps []input, fn func(*Context, []any) (T, error)) Asset[T] {
	g.validated = false
	s.Metadata = maps.Clone(s.Metadata)
	s.Checks = slices.Clone(s.Checks)
	n := &node{
		spec: s,
		key:  s.Key,
		deps: deps,
		out:  typeOf[T](),
		run: func(c *Context, in []any) (any, error) {
			v, err := fn(c, in)
			return v, err
		},
		newV:  func() any { return new(T) },
		deref: func(p any) any { return *p.(*T) },
	}
	n.file = n.out == reflect.TypeFor[File]()
	if err := validKey(s.Key); err != nil {
		g.errs = append(g.errs, graphErrorf(ErrInvalidGraph, "%v", err))
	} else if _, dup := g.byKey[s.Key]; dup {
		g.errs = append(g.errs, graphErrorf(ErrDuplicate, "%v: %q is defined twice", ErrDuplicate, s.Key))
	} else {
		g.byKey[s.Key] = n
		g.nodes = append(g.nodes, n)
	}
	if err := checkSpec(&s); err != nil {
		g.errs = append(g.errs, graphErrorf(ErrInvalidGraph, "asset %s: %v", s.Key, err))
	}
	return Asset[T]{in: input{key: s.Key, g: g, want: n.out}}
}

// validKey reports whether k can name an asset (and a store prefix).
func validKey(k string) error {
	if k == "" {
		return errors.New("an asset has an empty key")
	}
	if len(k) > 200 {
		return fmt.Errorf("asset key %q is longer than 200 characters", k)
	}
	if err := store.ValidName(k); err != nil {
		return fmt.Errorf("asset key %q: use segments of letters, digits, '.', '_' and '-' joined by '/', none starting with '.'", k)
	}
	return nil
}

func checkSpec(s *Spec) error {
	if s.Partitions != nil {
		if err := s.Partitions.validate(); err != nil {
			return err
		}
	}
	if err := s.Retry.validate(); err != nil {
		return err
	}
	if s.External && s.Codec != nil {
		return errors.New("an External asset has no codec: its description is kept as JSON")
	}
	if s.Store != "" {
		if _, err := store.ParseURL(s.Store); err != nil {
			return err
		}
	}
	names := map[string]bool{}
	for _, c := range s.Checks {
		if c.Name == "" || c.fn == nil {
			return errors.New("a check without a name or a function (make checks with CheckOf or the built-in ones)")
		}
		if names[c.Name] {
			return fmt.Errorf("two checks named %q", c.Name)
		}
		names[c.Name] = true
	}
	return nil
}

// Validate checks the definitions: every dependency names a defined asset
// of the graph with the declared type, partitions line up, checks match
// their asset's type, keys are unique, and there is no cycle. It returns
// every problem found, joined; each matches ErrInvalidGraph and its own
// kind with errors.Is.
func (g *Graph) Validate() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.validated {
		return g.err
	}
	errs := slices.Clone(g.errs)
	for _, n := range g.nodes {
		n.up, n.down = nil, nil
	}
	for _, n := range g.nodes {
		seen := map[*node]bool{}
		for _, d := range n.deps {
			u, ok := g.byKey[d.key]
			if !ok {
				errs = append(errs, graphErrorf(ErrUnknownAsset, "asset %s depends on %q: %v", n.key, d.key, ErrUnknownAsset))
				continue
			}
			if d.g != nil && d.g != g {
				errs = append(errs, graphErrorf(ErrUnknownAsset, "asset %s depends on %s through a handle of another graph", n.key, d.key))
				continue
			}
			if d.want != u.out {
				errs = append(errs, graphErrorf(ErrTypeMismatch, "%v: asset %s reads %s as %v, but %s is a %v", ErrTypeMismatch, n.key, d, d.want, d.key, u.out))
			}
			if err := partitionsLineUp(n, u, d); err != nil {
				errs = append(errs, err)
			}
			if !seen[u] {
				seen[u] = true
				n.up = append(n.up, u)
				u.down = append(u.down, n)
			}
		}
		for _, c := range n.spec.Checks {
			if c.typ != nil && c.typ != n.out {
				errs = append(errs, graphErrorf(ErrTypeMismatch, "%v: check %q of asset %s takes a %v, but %s is a %v", ErrTypeMismatch, c.Name, n.key, c.typ, n.key, n.out))
			}
		}
	}
	order, cyc := topoSort(g.nodes)
	if cyc != nil {
		errs = append(errs, cyc)
	}
	g.order = order
	for i, n := range order {
		n.idx = i
	}
	g.err = errors.Join(errs...)
	g.validated = true
	return g.err
}

func partitionsLineUp(n, u *node, d input) error {
	np, up := n.spec.Partitions, u.spec.Partitions
	switch {
	case d.all && up == nil:
		return graphErrorf(ErrPartitionMismatch, "%v: asset %s reads all partitions of %s, which is not partitioned", ErrPartitionMismatch, n.key, u.key)
	case d.all, up == nil:
		return nil
	case np == nil:
		return graphErrorf(ErrPartitionMismatch, "%v: unpartitioned asset %s reads partitioned %s: read asset.AllPartitions(%s)", ErrPartitionMismatch, n.key, u.key, u.key)
	case !np.same(up):
		return graphErrorf(ErrPartitionMismatch, "%v: asset %s (%s) reads %s (%s): their partitions differ; read asset.AllPartitions(%s)", ErrPartitionMismatch, n.key, np, u.key, up, u.key)
	}
	return nil
}

// topoSort orders nodes so that each comes after its upstream, keeping
// definition order among independent ones. If the dependencies have a
// cycle, it returns one of them.
func topoSort(nodes []*node) ([]*node, *CycleError) {
	pos := make(map[*node]int, len(nodes))
	for i, n := range nodes {
		pos[n] = i
	}
	indeg := make([]int, len(nodes))
	for i, n := range nodes {
		indeg[i] = len(n.up)
	}
	// A min-heap on definition position would keep definition order
	// exactly; a FIFO of ready nodes, seeded in definition order, keeps it
	// among roots and is linear.
	order := make([]*node, 0, len(nodes))
	for i, n := range nodes {
		if indeg[i] == 0 {
			order = append(order, n)
		}
	}
	for k := 0; k < len(order); k++ {
		for _, d := range order[k].down {
			j := pos[d]
			indeg[j]--
			if indeg[j] == 0 {
				order = append(order, d)
			}
		}
	}
	if len(order) == len(nodes) {
		return order, nil
	}
	// Every node left has an upstream left: walking upstream from any of
	// them must come back to a node already on the path.
	left := map[*node]bool{}
	for i, n := range nodes {
		if indeg[i] > 0 {
			left[n] = true
		}
	}
	var start *node
	for _, n := range nodes {
		if left[n] {
			start = n
			break
		}
	}
	onPath := map[*node]int{}
	var path []*node
	for n := start; ; {
		if i, ok := onPath[n]; ok {
			cyc := path[i:]
			keys := make([]string, len(cyc))
			// path goes upstream; name the cycle in the direction data
			// flows, each asset feeding the next.
			first := 0
			for j, c := range cyc {
				keys[len(cyc)-1-j] = c.key
				if pos[c] < pos[cyc[first]] {
					first = j
				}
			}
			// Start with the asset defined first, so that the message does
			// not depend on where the walk began.
			r := len(cyc) - 1 - first
			keys = append(keys[r:], keys[:r]...)
			return nil, &CycleError{Keys: keys}
		}
		onPath[n] = len(path)
		path = append(path, n)
		var next *node
		for _, u := range n.up {
			if left[u] {
				next = u
				break
			}
		}
		n = next
	}
}

// Keys returns every asset key, upstream before downstream.
func (g *Graph) Keys() ([]string, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	keys := make([]string, len(g.order))
	for i, n := range g.order {
		keys[i] = n.key
	}
	return keys, nil
}

// Info describes one asset of a graph.
type Info struct {
	Key         string            `json:"key"`
	Description string            `json:"description,omitempty"`
	Group       string            `json:"group,omitempty"`
	CodeVersion string            `json:"code_version,omitempty"`
	Type        string            `json:"type"`
	Deps        []string          `json:"deps,omitempty"`
	Partitions  string            `json:"partitions,omitempty"`
	External    bool              `json:"external,omitempty"`
	Checks      []string          `json:"checks,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// Assets describes every asset, upstream before downstream.
func (g *Graph) Assets() ([]Info, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	infos := make([]Info, len(g.order))
	for i, n := range g.order {
		info := Info{
			Key: n.key, Description: n.spec.Description, Group: n.spec.Group,
			CodeVersion: n.spec.CodeVersion, Type: n.out.String(), External: n.spec.External,
			Metadata: n.spec.Metadata,
		}
		for _, d := range n.deps {
			info.Deps = append(info.Deps, d.key)
		}
		if p := n.spec.Partitions; p != nil {
			info.Partitions = p.String()
		}
		for _, c := range n.spec.Checks {
			info.Checks = append(info.Checks, c.Name)
		}
		infos[i] = info
	}
	return infos, nil
}

package asset

import (
	"fmt"
	"strings"
)

// Select returns the keys a selection names, upstream before downstream.
//
// A selection is a list of items separated by commas or spaces; the
// result is their union. An item is:
//
//	all (or *)    every asset
//	KEY           that asset
//	+KEY, ++KEY   it and its upstream one level (two levels, ...) up
//	*KEY          it and everything upstream of it
//	KEY+, KEY*    it and its downstream, the same way
//	group:NAME    the assets of that group
//
// Upstream and downstream marks combine: "*KEY*" is everything connected
// to KEY through it. An empty selection is all.
func (g *Graph) Select(sel string) ([]string, error) {
	nodes, err := g.selectNodes(sel)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(nodes))
	for i, n := range nodes {
		keys[i] = n.key
	}
	return keys, nil
}

func (g *Graph) selectNodes(sel string) ([]*node, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	items := strings.FieldsFunc(sel, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(items) == 0 {
		items = []string{"all"}
	}
	picked := make([]bool, len(g.order))
	for _, it := range items {
		if err := g.selectItem(it, picked); err != nil {
			return nil, err
		}
	}
	var out []*node
	for i, n := range g.order {
		if picked[i] {
			out = append(out, n)
		}
	}
	return out, nil
}

func (g *Graph) selectItem(it string, picked []bool) error {
	if it == "all" || it == "*" {
		for i := range picked {
			picked[i] = true
		}
		return nil
	}
	if name, ok := strings.CutPrefix(it, "group:"); ok {
		found := false
		for _, n := range g.order {
			if n.spec.Group == name {
				picked[n.idx] = true
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%w: no asset is in group %q", ErrSelection, name)
		}
		return nil
	}
	key := it
	up, down := 0, 0
	const every = -1
	if strings.HasPrefix(key, "*") {
		up, key = every, key[1:]
	} else {
		for strings.HasPrefix(key, "+") {
			up++
			key = key[1:]
		}
	}
	if strings.HasSuffix(key, "*") {
		down, key = every, key[:len(key)-1]
	} else {
		for strings.HasSuffix(key, "+") {
			down++
			key = key[:len(key)-1]
		}
	}
	n, ok := g.byKey[key]
	if !ok || key == "" {
		return fmt.Errorf("%w: %w: %q (in %q)", ErrSelection, ErrUnknownAsset, key, it)
	}
	picked[n.idx] = true
	walk(n, up, func(n *node) []*node { return n.up }, picked)
	walk(n, down, func(n *node) []*node { return n.down }, picked)
	return nil
}

// walk marks the nodes within depth steps of start along next (every
// reachable one for a negative depth).
func walk(start *node, depth int, next func(*node) []*node, picked []bool) {
	frontier := []*node{start}
	seen := map[*node]bool{start: true}
	for level := 0; len(frontier) > 0 && (depth < 0 || level < depth); level++ {
		var nf []*node
		for _, n := range frontier {
			for _, m := range next(n) {
				if !seen[m] {
					seen[m] = true
					picked[m.idx] = true
					nf = append(nf, m)
				}
			}
		}
		frontier = nf
	}
}

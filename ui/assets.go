package ui

import (
	"context"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

// stateUnknown is the state of an asset whose definition is not known
// (the UI reads only the event log): materialized or failed, never judged
// fresh or stale.
const stateUnknown asset.State = "materialized"

// assetNode is one asset of the lineage graph.
type assetNode struct {
	Key    string
	State  asset.State
	Reason string
	Deps   []string
	Group  string
	Parts  string // the partitions' definition, "" if none
	Counts map[asset.State]int
	Layer  int
	X, Y   int
	Label  string // the key, shortened to fit the box
}

// lineage is the assets page's data.
type lineage struct {
	Nodes     []*assetNode
	Edges     string        // every edge, as one SVG path: one element however many
	SVGNodes  template.HTML // the nodes, drawn by drawNodes
	Table     []*assetNode  // the table under the graph: the worst first, at most maxTable
	TableMore int
	W, H      int
	FromLog   bool // no code: assets and deps come from the event log
	Counts    map[asset.State]int
}

const (
	nodeW, nodeH = 190, 30
	colW, rowH   = 250, 44
	graphPad     = 10
	labelChars   = 26
	maxTable     = 500
	// maxInlineLabels: a larger graph gets its labels from ui.js, for the
	// nodes in view only; laying out ten thousand SVG texts takes a
	// browser seconds.
	maxInlineLabels = 2000
)

func (s *Server) needAssets() error {
	if s.o.Assets == nil {
		return notFound("this UI shows no asset event log (start it with --events)")
	}
	return nil
}

// assetNodes returns the assets with their state, upstream first.
func (s *Server) assetNodes(ctx context.Context) ([]*assetNode, error) {
	in := s.o.Assets
	if s.hasGr {
		infos, err := in.Graph().Assets()
		if err != nil {
			return nil, err
		}
		sts, err := in.Status(ctx, asset.StatusOptions{})
		if err != nil {
			return nil, err
		}
		byKey := make(map[string]*asset.AssetStatus, len(sts))
		for i := range sts {
			byKey[sts[i].Key] = &sts[i]
		}
		nodes := make([]*assetNode, len(infos))
		for i, a := range infos {
			n := &assetNode{Key: a.Key, Deps: a.Deps, Group: a.Group, Parts: a.Partitions, State: asset.StateMissing}
			if st := byKey[a.Key]; st != nil {
				n.State, n.Reason, n.Counts = st.State, st.Reason, st.Counts
			}
			nodes[i] = n
		}
		return nodes, nil
	}
	states, err := in.EventLog().States(ctx, nil)
	if err != nil {
		return nil, err
	}
	byKey := map[string]*assetNode{}
	var order []string
	deps := map[string]map[string]bool{}
	for _, st := range states {
		n := byKey[st.Key]
		if n == nil {
			n = &assetNode{Key: st.Key, State: stateUnknown, Counts: map[asset.State]int{}, Reason: "staleness is known only where the assets' code is (run the program's own ui command)"}
			byKey[st.Key] = n
			order = append(order, st.Key)
			deps[st.Key] = map[string]bool{}
		}
		if st.Partition != "" {
			n.Parts = "partitioned"
		}
		state := stateUnknown
		if st.Failed() {
			state = asset.StateFailed
			n.State = asset.StateFailed
			n.Reason = fmt.Sprintf("partition %q failed: %s", st.Partition, firstLine(st.Failure.Error))
			if st.Partition == "" {
				n.Reason = "failed: " + firstLine(st.Failure.Error)
			}
		}
		n.Counts[state]++
		if m := st.Materialization; m != nil && m.Materialization != nil {
			for in := range m.Materialization.Inputs {
				k, _, _ := strings.Cut(in, "[")
				deps[st.Key][k] = true
			}
		}
	}
	nodes := make([]*assetNode, 0, len(order))
	for _, k := range order {
		n := byKey[k]
		for d := range deps[k] {
			if byKey[d] != nil && d != k {
				n.Deps = append(n.Deps, d)
			}
		}
		slices.Sort(n.Deps)
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// layout places the nodes in columns by their distance from the roots,
// and draws an edge from each dependency to its dependent.
func layout(nodes []*assetNode) *lineage {
	g := &lineage{Nodes: nodes, Counts: map[asset.State]int{}}
	idx := make(map[string]*assetNode, len(nodes))
	for _, n := range nodes {
		idx[n.Key] = n
		n.Layer = -1
	}
	var depth func(n *assetNode, seen int) int
	depth = func(n *assetNode, seen int) int {
		if n.Layer >= 0 {
			return n.Layer
		}
		if seen > len(nodes) { // a loop, which only a damaged log can hold
			return 0
		}
		l := 0
		for _, d := range n.Deps {
			if dn := idx[d]; dn != nil {
				l = max(l, depth(dn, seen+1)+1)
			}
		}
		n.Layer = l
		return l
	}
	rows := map[int]int{}
	maxLayer, maxRows := 0, 0
	for _, n := range nodes {
		depth(n, 0)
		n.X = graphPad + n.Layer*colW
		n.Y = graphPad + rows[n.Layer]*rowH
		rows[n.Layer]++
		maxLayer, maxRows = max(maxLayer, n.Layer), max(maxRows, rows[n.Layer])
		n.Label = n.Key
		if r := []rune(n.Key); len(r) > labelChars {
			n.Label = "…" + string(r[len(r)-labelChars+1:])
		}
		g.Counts[n.State]++
	}
	var edges strings.Builder
	for _, n := range nodes {
		for _, d := range n.Deps {
			dn := idx[d]
			if dn == nil {
				continue
			}
			x1, y1 := dn.X+nodeW, dn.Y+nodeH/2
			x2, y2 := n.X, n.Y+nodeH/2
			mx := (x1 + x2) / 2
			fmt.Fprintf(&edges, "M%d %d C%d %d,%d %d,%d %d ", x1, y1, mx, y1, mx, y2, x2, y2)
		}
	}
	g.Edges = edges.String()
	// The table lists the assets that need attention first; a graph of
	// thousands lists only the first maxTable (the graph shows them all).
	g.Table = slices.Clone(nodes)
	slices.SortStableFunc(g.Table, func(a, b *assetNode) int { return rank(b.State) - rank(a.State) })
	if len(g.Table) > maxTable {
		g.TableMore = len(g.Table) - maxTable
		g.Table = g.Table[:maxTable]
	}
	g.W = 2*graphPad + maxLayer*colW + nodeW
	g.H = 2*graphPad + max(maxRows, 1)*rowH
	return g
}

func (s *Server) assetsPage(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAssets(); err != nil {
		return err
	}
	nodes, err := s.assetNodes(r.Context())
	if err != nil {
		return err
	}
	g := layout(nodes)
	g.FromLog = !s.hasGr
	g.SVGNodes = drawNodes(s.o.Prefix, g.Nodes)
	return s.render(w, r, "assets", "Assets", "assets", g)
}

// segment is a run of consecutive partitions in one state, drawn as one
// rectangle of the health bar whatever the number of partitions.
type segment struct {
	State       asset.State
	First, Last string
	Count       int
	X, W        float64 // percent of the bar
}

// column is a slice of the partitions drawn as a stacked column, when
// there are too many runs of states to draw each: every state keeps a
// height proportional to its partitions, at least one pixel if any.
type column struct {
	X, W  float64
	Parts []colPart
	Title string
}

type colPart struct {
	State asset.State
	Y, H  float64
}

// healthBar is the partition health bar of an asset page.
type healthBar struct {
	Total    int
	Segments []segment
	Columns  []column
	Counts   map[asset.State]int
}

// maxSegments bounds the rectangles of a health bar: beyond it the bar is
// drawn as maxColumns stacked columns instead.
const maxSegments, maxColumns = 2000, 500

// minSegment is the least width, in percent of the bar, of a segment of
// partitions that are not fresh: two or three pixels on a screen.
const minSegment = 0.2

var stateOrder = []asset.State{asset.StateFresh, asset.StateStale, asset.StateMissing, asset.StateFailed, stateUnknown}

func makeHealthBar(ps []asset.PartitionStatus) *healthBar {
	hb := &healthBar{Total: len(ps), Counts: map[asset.State]int{}}
	if len(ps) == 0 {
		return hb
	}
	total := float64(len(ps))
	runs := 0
	for i, p := range ps {
		hb.Counts[p.State]++
		if i == 0 || p.State != ps[i-1].State {
			runs++
		}
	}
	if runs <= maxSegments {
		for i := 0; i < len(ps); {
			j := i
			for j+1 < len(ps) && ps[j+1].State == ps[i].State {
				j++
			}
			n := j - i + 1
			sg := segment{State: ps[i].State, First: ps[i].Partition, Last: ps[j].Partition, Count: n,
				X: float64(i) / total * 100, W: float64(n) / total * 100}
			if sg.State != asset.StateFresh {
				// One bad partition in 100,000 stays visible.
				sg.W = max(sg.W, minSegment)
			}
			hb.Segments = append(hb.Segments, sg)
			i = j + 1
		}
		// Fresh first, so that the widened segments are drawn over them.
		slices.SortStableFunc(hb.Segments, func(a, b segment) int { return rank(a.State) - rank(b.State) })
		return hb
	}
	per := (len(ps) + maxColumns - 1) / maxColumns
	for i := 0; i < len(ps); i += per {
		j := min(i+per, len(ps))
		counts := map[asset.State]int{}
		for _, p := range ps[i:j] {
			counts[p.State]++
		}
		c := column{X: float64(i) / total * 100, W: float64(j-i) / total * 100,
			Title: fmt.Sprintf("%s … %s:", ps[i].Partition, ps[j-1].Partition)}
		y := 0.0
		for _, st := range stateOrder {
			n := counts[st]
			if n == 0 {
				continue
			}
			h := float64(n) / float64(j-i) * 100
			if st != asset.StateFresh {
				h = max(h, 8) // one bad partition in hundreds stays visible
			}
			c.Parts = append(c.Parts, colPart{State: st, Y: y, H: h})
			y += h
			c.Title += fmt.Sprintf(" %d %s", n, st)
		}
		// Visible minimums may push the stack past the bar: scale it back.
		if y > 100 {
			for k := range c.Parts {
				c.Parts[k].Y *= 100 / y
				c.Parts[k].H *= 100 / y
			}
		}
		hb.Columns = append(hb.Columns, c)
	}
	return hb
}

// assetDetail is the asset page's data.
type assetDetail struct {
	Key        string
	Info       *asset.Info
	Status     *asset.AssetStatus
	Health     *healthBar
	Bad        []asset.PartitionStatus // the first partitions that are not fresh
	BadMore    int
	History    []eventlog.Event
	FromLog    bool
	Upstream   []string
	Downstream []string
}

const maxBad, maxHistory = 50, 50

func (s *Server) assetPage(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAssets(); err != nil {
		return err
	}
	ctx := r.Context()
	key := r.URL.Query().Get("key")
	if key == "" {
		return badRequest("no asset named: use ?key=KEY")
	}
	d := &assetDetail{Key: key, FromLog: !s.hasGr}
	in := s.o.Assets
	if s.hasGr {
		infos, err := in.Graph().Assets()
		if err != nil {
			return err
		}
		for i := range infos {
			if infos[i].Key == key {
				d.Info = &infos[i]
			}
			if slices.Contains(infos[i].Deps, key) {
				d.Downstream = append(d.Downstream, infos[i].Key)
			}
		}
		if d.Info == nil {
			return notFound("the graph has no asset %q", key)
		}
		d.Upstream = d.Info.Deps
		sts, err := in.Status(ctx, asset.StatusOptions{Selection: key})
		if err != nil {
			return err
		}
		for i := range sts {
			if sts[i].Key == key {
				d.Status = &sts[i]
			}
		}
	} else {
		states, err := in.EventLog().States(ctx, []string{key})
		if err != nil {
			return err
		}
		if len(states) == 0 {
			return notFound("the event log has nothing of asset %q", key)
		}
		as := &asset.AssetStatus{Key: key, State: stateUnknown, Counts: map[asset.State]int{}}
		for _, st := range states {
			ps := asset.PartitionStatus{Partition: st.Partition, State: stateUnknown}
			if st.Partition != "" {
				as.Partitioned = true
			}
			if m := st.Materialization; m != nil {
				ps.RunID, ps.MaterializedAt = m.RunID, m.Time
				if m.Materialization != nil {
					ps.DataVersion, ps.CodeVersion = m.Materialization.DataVersion, m.Materialization.CodeVersion
				}
			}
			if st.Failed() {
				ps.State, ps.Error, ps.Reason = asset.StateFailed, st.Failure.Error, "its last computation failed"
				as.State = asset.StateFailed
			}
			as.Counts[ps.State]++
			as.Partitions = append(as.Partitions, ps)
		}
		d.Status = as
	}
	if st := d.Status; st != nil {
		if st.Partitioned {
			d.Health = makeHealthBar(st.Partitions)
		}
		for _, p := range st.Partitions {
			if p.State == asset.StateFresh || p.State == stateUnknown {
				continue
			}
			if len(d.Bad) == maxBad {
				d.BadMore++
				continue
			}
			d.Bad = append(d.Bad, p)
		}
		// The worst first, so that failures lead.
		sort.SliceStable(d.Bad, func(i, j int) bool { return rank(d.Bad[i].State) > rank(d.Bad[j].State) })
	}
	evs, err := in.EventLog().Events(ctx, eventlog.EventFilter{Key: key, Kinds: []eventlog.Kind{eventlog.KindMaterialization, eventlog.KindStepFailure}, Newest: true, Limit: maxHistory})
	if err != nil {
		return err
	}
	d.History = evs
	return s.render(w, r, "asset", "Asset "+key, "assets", d)
}

func rank(s asset.State) int {
	switch s {
	case asset.StateFailed:
		return 3
	case asset.StateMissing:
		return 2
	case asset.StateStale:
		return 1
	}
	return 0
}

// drawNodes renders the graph's nodes as SVG. A graph of thousands of
// assets is drawn here rather than by the template, whose contextual
// escaping costs more than the rest of the page: every string a user
// named goes through html.EscapeString, inside quoted attributes or text
// only, which is all the context escaping SVG text and attributes needs.
func drawNodes(prefix string, nodes []*assetNode) template.HTML {
	var b strings.Builder
	b.Grow(len(nodes) * 400)
	inline := len(nodes) <= maxInlineLabels
	for _, n := range nodes {
		key := html.EscapeString(n.Key)
		st := html.EscapeString(string(n.State))
		fmt.Fprintf(&b, `<a href="%s/asset?key=%s" class="node" data-key="%s" data-state="%s"`,
			html.EscapeString(prefix), html.EscapeString(url.QueryEscape(n.Key)), key, st)
		if !inline {
			fmt.Fprintf(&b, ` data-label="%s"`, html.EscapeString(n.Label))
		}
		fmt.Fprintf(&b, `><title>%s: %s`, key, st)
		if n.Reason != "" {
			fmt.Fprintf(&b, " (%s)", html.EscapeString(n.Reason))
		}
		fmt.Fprintf(&b, `</title><rect class="st-%s" x="%d" y="%d" width="%d" height="%d" rx="4"/>`, st, n.X, n.Y, nodeW, nodeH)
		if inline {
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, n.X+8, n.Y+19, html.EscapeString(n.Label))
		}
		b.WriteString("</a>\n")
	}
	return template.HTML(b.String()) // escaped above, piece by piece
}

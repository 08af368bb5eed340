// Package vector is an HNSW graph (Malkov & Yashunin 2016/2018: Algorithms
// 1–5, with the neighbour-selection heuristic) over L2-normalized vectors
// compared by cosine, stored in one contiguous slab.
//
// Locking: one sync.RWMutex. Searches share the read lock and run in
// parallel; Add and Delete take the write lock, so a search never sees a
// half-linked node. Deleted nodes stay in the graph as tombstones (still
// traversed, never returned) until Compacted.
//
// Levels come from a hash of the id, so replicas that apply the same
// operations in the same order build the same graph.
package vector

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sync"
)

// ID identifies a vector (a chunk's UUID).
type ID [16]byte

// Config shapes a graph.
type Config struct {
	Dim            int
	M              int // links per node above level 0 (2M at level 0)
	EfConstruction int
	EfSearch       int // default ef of searches
}

// DefaultConfig matches pgvector's defaults for 768 dimensions.
func DefaultConfig(dim int) Config {
	return Config{Dim: dim, M: 16, EfConstruction: 64, EfSearch: 40}
}

// ErrDimension marks a vector of the wrong length.
var ErrDimension = errors.New("vector: dimension mismatch")

// Result is a search hit: Score is the cosine similarity.
type Result struct {
	ID    ID
	Score float32
}

// Index is an HNSW graph.
type Index struct {
	mu       sync.RWMutex
	cfg      Config
	m0       int
	ml       float64
	vecs     []float32 // node i at [i*dim, (i+1)*dim)
	ids      []ID      // node → id
	byID     map[ID]int32
	levels   []uint8
	l0       []int32     // level-0 links: node i at [i*m0, (i+1)*m0)
	l0n      []uint8     // level-0 link counts
	l0k      []uint8     // level-0 links chosen by the last heuristic (prune.go)
	upper    [][][]int32 // upper[i][l-1]: links of node i at level l
	dead     []bool
	deadN    int
	entry    int32
	maxLevel int
	visits   sync.Pool
	settling sync.WaitGroup // settle's collapses in flight

	// Compact codes (quant.go): node i at [i*cw, (i+1)*cw), derived from
	// vecs and rebuilt on load.
	rot   *rotation
	cw    int
	codes []uint64

	// Fine codes (quant8.go): node i's at [i*dp, (i+1)*dp), kept only
	// where dot8 runs on SIMD (useFine); derived like the codes, with
	// their scale and sum in the one-bit code's row.
	useFine bool
	fine    []int8
	// forgetChosen (tests only) measures every pair in every pruning, as
	// before prune.go: the reference its graphs are compared with.
	forgetChosen bool

	// Parallel insertion (batch.go): while parallel is set (AddBatch, write
	// lock held), links are read and written under nodeLocks and the entry
	// point under entryMu.
	parallel  bool
	entryMu   sync.Mutex
	nodeLocks []sync.Mutex
}

// New returns an empty graph.
func New(cfg Config) (*Index, error) {
	if cfg.Dim <= 0 || cfg.M < 2 || cfg.EfConstruction < cfg.M {
		return nil, fmt.Errorf("vector: bad config %+v", cfg)
	}
	if cfg.EfSearch <= 0 {
		cfg.EfSearch = 40
	}
	rot := newRotation(cfg.Dim)
	return &Index{cfg: cfg, m0: 2 * cfg.M, ml: 1 / math.Log(float64(cfg.M)), byID: map[ID]int32{}, entry: -1,
		rot: rot, cw: codeWords(rot.dp), useFine: dot8Fast}, nil
}

// Config returns the graph's configuration.
func (x *Index) Config() Config { return x.cfg }

// Len is the number of live vectors.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byID)
}

// CodeBytes is the size of one node's compact codes, in bytes: the
// one-bit code (quant.go) and, where kept, the fine code (quant8.go).
func (x *Index) CodeBytes() int {
	if x.useFine {
		return x.cw*8 + x.rot.dp
	}
	return x.cw * 8
}

// Tombstones is the number of deleted nodes still in the graph.
func (x *Index) Tombstones() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.deadN
}

// levelFor draws a node's level from a hash of its id: floor(-ln(u)·mL).
func (x *Index) levelFor(id ID) int {
	h := fnv.New64a()
	h.Write(id[:])
	u := (float64(h.Sum64()>>11) + 1) / float64(1<<53) // (0, 1]
	return min(int(-math.Log(u)*x.ml), 30)
}

func (x *Index) code(i int32) []uint64 {
	return x.codes[int(i)*x.cw : int(i+1)*x.cw]
}

func (x *Index) vec(i int32) []float32 {
	d := x.cfg.Dim
	return x.vecs[int(i)*d : int(i+1)*d]
}

// links returns node i's links at level l (a view; do not retain).
func (x *Index) links(i int32, l int) []int32 {
	if l == 0 {
		return x.l0[int(i)*x.m0 : int(i)*x.m0+int(x.l0n[i])]
	}
	return x.upper[i][l-1]
}

func (x *Index) setLinks(i int32, l int, ns []int32) {
	if l == 0 {
		copy(x.l0[int(i)*x.m0:], ns)
		x.l0n[i] = uint8(len(ns))
		return
	}
	x.upper[i][l-1] = append(x.upper[i][l-1][:0], ns...)
}

// Add inserts v under id, replacing an existing vector with that id. v is
// normalized in a copy.
func (x *Index) Add(id ID, v []float32) error {
	if len(v) != x.cfg.Dim {
		return fmt.Errorf("%w: %d, want %d", ErrDimension, len(v), x.cfg.Dim)
	}
	nv := normalized(v)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.retire(id)
	n := x.allocate(id, nv, x.levelFor(id))
	vs := x.visitSet()
	defer x.visits.Put(vs)
	x.link(n, vs)
	return nil
}

// retire tombstones id's node, if any, before a new vector replaces it.
func (x *Index) retire(id ID) {
	if old, ok := x.byID[id]; ok {
		x.dead[old] = true
		x.deadN++
	}
}

// allocate appends an unlinked node (its code still zero); the write lock
// is held.
func (x *Index) allocate(id ID, v []float32, level int) int32 {
	n := int32(len(x.ids))
	x.ids = append(x.ids, id)
	x.vecs = growSlab(x.vecs, len(v))
	copy(x.vecs[len(x.vecs)-len(v):], v)
	x.codes = growSlab(x.codes, x.cw)
	if x.useFine {
		x.fine = growSlab(x.fine, x.rot.dp)
	}
	x.levels = append(x.levels, uint8(level))
	x.l0 = growSlab(x.l0, x.m0)
	x.l0n = append(x.l0n, 0)
	x.l0k = append(x.l0k, 0)
	var up [][]int32
	if level > 0 {
		up = make([][]int32, level)
		for l := range up {
			up[l] = make([]int32, 0, x.cfg.M)
		}
	}
	x.upper = append(x.upper, up)
	x.dead = append(x.dead, false)
	x.byID[id] = n
	return n
}

// link encodes node n and links it into the graph (Algorithm 1). The
// write lock is held; while parallel, other nodes are linked at the same
// time and every link list is read and written under its node's lock.
func (x *Index) link(n int32, vs *visitSet) {
	tmp := vs.scratch(x.rot.dp)
	x.rot.encode(x.vec(n), x.code(n), tmp)
	x.encodeNodeFine(n, tmp)
	level := int(x.levels[n])
	ep, top, done := x.enter(n, level)
	defer done()
	if ep < 0 {
		return
	}
	v := x.vec(n)
	epDist := 1 - dot(v, x.vec(ep))
	for l := top; l > level; l-- {
		ep, epDist = x.greedy(v, ep, epDist, l, vs)
	}
	eps := []candidate{{epDist, ep}}
	for l := min(level, top); l >= 0; l-- {
		w := x.searchLayer(v, eps, x.cfg.EfConstruction, l, vs, nil)
		x.linkLevel(n, l, w)
		eps = w
	}
}

// enter returns the entry point and top level from which node n (at level)
// is inserted, and the function to call once it is linked: a node above
// the graph's top level becomes its entry point then. While parallel, such
// a node holds entryMu for its whole insertion (as hnswlib does), so the
// top level changes one node at a time.
func (x *Index) enter(n int32, level int) (int32, int, func()) {
	if x.parallel {
		x.entryMu.Lock()
	}
	ep, top := x.entry, x.maxLevel
	if ep >= 0 && level <= top {
		if x.parallel {
			x.entryMu.Unlock()
		}
		return ep, top, func() {}
	}
	return ep, top, func() {
		x.entry, x.maxLevel = n, level
		if x.parallel {
			x.entryMu.Unlock()
		}
	}
}

// linkLevel gives node n its neighbours at level l among the candidates w
// and links them back to n.
func (x *Index) linkLevel(n int32, l int, w []candidate) {
	maxConn := x.cfg.M
	if l == 0 {
		maxConn = x.m0
	}
	selected := x.selectNeighbors(w, x.cfg.M, nil)
	ns := make([]int32, len(selected))
	for i, c := range selected {
		ns[i] = c.node
	}
	x.lockNode(n)
	x.setLinks(n, l, ns)
	x.setChosen(n, l, len(w) > x.cfg.M)
	x.unlockNode(n)
	for _, c := range selected {
		x.lockNode(c.node)
		x.connect(c.node, n, c.dist, l, maxConn)
		x.unlockNode(c.node)
	}
}

// connect adds a link from e to n at level l, shrinking e's links with the
// heuristic when they overflow.
func (x *Index) connect(e, n int32, dist float32, l, maxConn int) {
	cur := x.links(e, l)
	if len(cur) < maxConn {
		if l == 0 {
			x.l0[int(e)*x.m0+len(cur)] = n
			x.l0n[e]++
		} else {
			x.upper[e][l-1] = append(x.upper[e][l-1], n)
		}
		return
	}
	ev := x.vec(e)
	cands := make([]candidate, 0, len(cur)+1)
	cands = append(cands, candidate{dist, n})
	for _, c := range cur {
		cands = append(cands, candidate{1 - dot(ev, x.vec(c)), c})
	}
	sortCandidates(cands)
	keep := x.selectNeighbors(cands, maxConn, x.chosenTogether(e, l, cur, cands))
	ns := make([]int32, len(keep))
	for i, c := range keep {
		ns[i] = c.node
	}
	x.setLinks(e, l, ns)
	x.setChosen(e, l, true)
}

// selectNeighbors is Algorithm 4 (the heuristic) over candidates sorted by
// distance: a candidate joins when it is closer to the base than to every
// neighbour chosen so far. Pruned candidates are not kept (as in hnswlib):
// filling the slots with them would trade the long links between clusters
// for near-duplicates and cut clusters off from each other. together
// (nil, or one flag per candidate) marks candidates the previous heuristic
// chose together: their pairs are known to pass and are not measured
// again (prune.go).
func (x *Index) selectNeighbors(sorted []candidate, m int, together []bool) []candidate {
	if len(sorted) <= m {
		return sorted
	}
	out := make([]candidate, 0, m)
	idx := make([]int, 0, m) // out's indices in sorted
	for i, c := range sorted {
		if len(out) >= m {
			break
		}
		cv := x.vec(c.node)
		good := true
		for j, r := range out {
			if together != nil && together[i] && together[idx[j]] {
				continue
			}
			if 1-dot(cv, x.vec(r.node)) < c.dist {
				good = false
				break
			}
		}
		if good {
			out = append(out, c)
			idx = append(idx, i)
		}
	}
	return out
}

// greedy walks level l toward q with ef = 1.
func (x *Index) greedy(q []float32, ep int32, epDist float32, l int, vs *visitSet) (int32, float32) {
	for changed := true; changed; {
		changed = false
		for _, c := range x.neighbours(ep, l, vs) {
			vs.exact++
			if d := 1 - dot(q, x.vec(c)); d < epDist {
				ep, epDist, changed = c, d, true
			}
		}
	}
	return ep, epDist
}

// searchLayer is Algorithm 2: the ef nearest nodes to q at level l reached
// from eps, sorted by distance. With accept, only accepted nodes enter the
// result set (all are traversed). Every distance is exact: construction
// and SearchFloat use it; Search's level 0 is searchCodes (traverse.go).
func (x *Index) searchLayer(q []float32, eps []candidate, ef, l int, vs *visitSet, accept func(int32) bool) []candidate {
	vs.next(len(x.ids))
	cands := minHeap{h: vs.cands[:0]}
	res := maxHeap{h: vs.res[:0]}
	defer func() { vs.cands, vs.res = cands.h, res.h }()
	for _, e := range eps {
		vs.visit(e.node)
		cands.push(e)
		if accept == nil || accept(e.node) {
			res.push(e)
		}
	}
	for cands.len() > 0 {
		c := cands.pop()
		if res.len() >= ef && c.dist > res.top().dist {
			break
		}
		fresh := x.unvisited(c.node, l, vs)
		x.touch(fresh, vs)
		for _, nb := range fresh {
			vs.exact++
			d := 1 - dot(q, x.vec(nb))
			if res.len() < ef || d < res.top().dist {
				cands.push(candidate{d, nb})
				if accept == nil || accept(nb) {
					res.push(candidate{d, nb})
					if res.len() > ef {
						res.pop()
					}
				}
			}
		}
	}
	return res.sorted()
}

// unvisited marks node's unvisited neighbours at level l visited and
// returns them, their vectors fetched as a batch: one load per cache line
// of each, all issued before the first distance needs them, so the
// fetches overlap instead of each waiting for the last.
func (x *Index) unvisited(node int32, l int, vs *visitSet) []int32 {
	out := vs.fresh[:0]
	for _, nb := range x.neighbours(node, l, vs) {
		if !vs.visit(nb) {
			out = append(out, nb)
		}
	}
	vs.fresh = out
	return out
}

// touch loads one float per cache line of the nodes' vectors.
func (x *Index) touch(nodes []int32, vs *visitSet) {
	var s float32
	for _, n := range nodes {
		v := x.vec(n)
		for i := 0; i < len(v); i += 16 {
			s += v[i]
		}
	}
	vs.touchedF += s
}

// Filter admits ids into results; nil admits all live ones.
type Filter func(ID) bool

// Search returns the k nearest live vectors to q admitted by filter, using
// ef (at least k; 0 for the default). With a filter, ef widens until k
// admitted vectors are found or the whole graph was reachable. The graph
// is traversed on estimates from the compact codes (traverse.go, quant.go);
// exact distances are computed for the nodes expanded only.
func (x *Index) Search(q []float32, k, ef int, filter Filter) ([]Result, error) {
	return x.search(q, k, ef, filter, false)
}

// SearchFloat is Search with exact distances only (no codes): the
// reference the codes are measured against.
func (x *Index) SearchFloat(q []float32, k, ef int, filter Filter) ([]Result, error) {
	return x.search(q, k, ef, filter, true)
}

func (x *Index) search(q []float32, k, ef int, filter Filter, exact bool) ([]Result, error) {
	if len(q) != x.cfg.Dim {
		return nil, fmt.Errorf("%w: %d, want %d", ErrDimension, len(q), x.cfg.Dim)
	}
	if k <= 0 {
		return nil, nil
	}
	if ef <= 0 {
		ef = x.cfg.EfSearch
	}
	qn := normalized(q)
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.entry < 0 {
		return nil, nil
	}
	vs := x.visitSet()
	defer x.visits.Put(vs)
	return x.searchWith(vs, qn, k, max(ef, k), filter, exact), nil
}

// searchWith is search on the normalized qn with vs as scratch (the tests
// read its counters); the read lock is held and the graph is not empty.
func (x *Index) searchWith(vs *visitSet, qn []float32, k, ef int, filter Filter, exact bool) []Result {
	accept := func(n int32) bool { return !x.dead[n] && (filter == nil || filter(x.ids[n])) }
	if exact {
		return x.searchExact(qn, k, ef, vs, accept)
	}
	qq := &vs.query
	x.rot.prepare(qn, qq)
	if x.useFine {
		prepareFine(qq.rot, &vs.fineq)
	}
	ep := x.entry
	epDist := x.expandDist(qn, ep, vs)
	for l := x.maxLevel; l > 0; l-- {
		ep, epDist = x.greedyCodes(qn, qq, ep, epDist, l, vs)
	}
	for {
		w := x.searchCodes(qn, ep, ef, vs, accept, qq)
		if len(w) >= k || ef >= len(x.ids) {
			return x.results(x.rerank(qn, w, k, vs), k)
		}
		ef *= 4 // too few admitted: widen (the filter is selective)
	}
}

// searchExact is the float traversal: exact distances at every level.
func (x *Index) searchExact(qn []float32, k, ef int, vs *visitSet, accept func(int32) bool) []Result {
	ep := x.entry
	epDist := 1 - dot(qn, x.vec(ep))
	for l := x.maxLevel; l > 0; l-- {
		ep, epDist = x.greedy(qn, ep, epDist, l, vs)
	}
	for {
		w := x.searchLayer(qn, []candidate{{epDist, ep}}, ef, 0, vs, accept)
		if len(w) >= k || ef >= len(x.ids) {
			return x.results(w, k)
		}
		ef *= 4
	}
}

func (x *Index) results(w []candidate, k int) []Result {
	// w is sorted by distance (or holds at most k). Equal distances go to
	// the smaller id, so every replica, and every search whatever else the
	// graph holds, orders them alike: the first k, and any candidate tied
	// with the k-th, are sorted by (distance, id), then cut to k.
	n := min(k, len(w))
	for n > 0 && n < len(w) && w[n].dist == w[n-1].dist {
		n++
	}
	w = w[:n]
	slices.SortFunc(w, x.cmp)
	if len(w) > k {
		w = w[:k]
	}
	out := make([]Result, len(w))
	for i, c := range w {
		out[i] = Result{ID: x.ids[c.node], Score: 1 - c.dist}
	}
	return out
}

// cmp orders candidates nearest first, then by id. The read lock is held.
func (x *Index) cmp(a, b candidate) int {
	if a.dist != b.dist {
		return cmp.Compare(a.dist, b.dist)
	}
	ai, bi := x.ids[a.node], x.ids[b.node]
	return bytes.Compare(ai[:], bi[:])
}

// exactHeap keeps the k best candidates of an exact scan, the worst on
// top, ties broken by id.
type exactHeap struct {
	x *Index
	h []candidate
}

func (e *exactHeap) Len() int           { return len(e.h) }
func (e *exactHeap) Less(i, j int) bool { return e.x.cmp(e.h[i], e.h[j]) > 0 }
func (e *exactHeap) Swap(i, j int)      { e.h[i], e.h[j] = e.h[j], e.h[i] }
func (e *exactHeap) Push(v any)         { e.h = append(e.h, v.(candidate)) }
func (e *exactHeap) Pop() any {
	v := e.h[len(e.h)-1]
	e.h = e.h[:len(e.h)-1]
	return v
}

// Exact returns the k nearest of the given ids by scanning them: for
// filters that admit few vectors. Equal distances go to the smaller id, so
// the answer does not depend on the order of ids.
func (x *Index) Exact(q []float32, ids []ID, k int) ([]Result, error) {
	if len(q) != x.cfg.Dim {
		return nil, fmt.Errorf("%w: %d, want %d", ErrDimension, len(q), x.cfg.Dim)
	}
	qn := normalized(q)
	x.mu.RLock()
	defer x.mu.RUnlock()
	res := &exactHeap{x: x, h: make([]candidate, 0, k+1)}
	for _, id := range ids {
		n, ok := x.byID[id]
		if !ok {
			continue
		}
		c := candidate{1 - dot(qn, x.vec(n)), n}
		if res.Len() < k {
			heap.Push(res, c)
		} else if x.cmp(c, res.h[0]) < 0 {
			res.h[0] = c
			heap.Fix(res, 0)
		}
	}
	return x.results(res.h, k), nil
}

// Delete removes id; deleting a missing id is a no-op.
func (x *Index) Delete(id ID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if n, ok := x.byID[id]; ok {
		x.dead[n] = true
		x.deadN++
		delete(x.byID, id)
	}
}

// Vector returns a copy of id's stored (normalized) vector.
func (x *Index) Vector(id ID) ([]float32, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n, ok := x.byID[id]
	if !ok {
		return nil, false
	}
	return append([]float32(nil), x.vec(n)...), true
}

// Has reports whether id is live.
func (x *Index) Has(id ID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.byID[id]
	return ok
}

// Item is a live vector with its level, for rebuilding a graph.
type Item struct {
	ID    ID
	Vec   []float32
	Level int
}

// LiveItems copies the live vectors out under the read lock (brief), so a
// rebuild can run without holding it.
func (x *Index) LiveItems() []Item {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]Item, 0, len(x.byID))
	for n, id := range x.ids {
		if !x.dead[n] {
			out = append(out, Item{ID: id, Vec: append([]float32(nil), x.vec(int32(n))...), Level: int(x.levels[n])})
		}
	}
	return out
}

// Build makes a graph of items, in their order, keeping their levels.
func Build(cfg Config, items []Item) (*Index, error) {
	return BuildContext(context.Background(), cfg, items)
}

// BuildContext is Build that gives up, with ctx's error, once ctx ends
// (checked every 256 items).
func BuildContext(ctx context.Context, cfg Config, items []Item) (*Index, error) {
	x, err := New(cfg)
	if err != nil {
		return nil, err
	}
	vs := x.visitSet()
	defer x.visits.Put(vs)
	for i, it := range items {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("vector: build: %w", ctx.Err())
		}
		x.insertItem(it, vs)
	}
	if len(items) >= settleBatch {
		x.settle()
	}
	return x, nil
}

// Compacted returns a fresh graph of the live vectors without tombstones.
func (x *Index) Compacted() *Index {
	fresh, _ := Build(x.cfg, x.LiveItems())
	return fresh
}

func normalized(v []float32) []float32 {
	out := make([]float32, len(v))
	var s float64
	for _, f := range v {
		s += float64(f) * float64(f)
	}
	if s == 0 {
		copy(out, v)
		return out
	}
	inv := float32(1 / math.Sqrt(s))
	for i, f := range v {
		out[i] = f * inv
	}
	return out
}

// LiveIDs lists the live ids (without their vectors).
func (x *Index) LiveIDs() []ID {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]ID, 0, len(x.byID))
	for n, id := range x.ids {
		if !x.dead[n] {
			out = append(out, id)
		}
	}
	return out
}

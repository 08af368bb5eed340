package vector

import (
	"cmp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Shipped candidates (session 10, issue 20 item 3).
//
// A replicated bulk load inserts every chunk on every replica, and ~80 %
// of an insertion is its search for candidate neighbours (searchLayer at
// efConstruction, loading the visited vectors most of it). So one replica,
// the Raft leader, searches once per new vector when it proposes the
// entry (Candidates: its graph's efConstruction nearest live nodes, plus
// the nearest among the vectors not in its graph yet — the entry's own and
// those still in flight), and ships the ids; every replica then links the
// vector among them (AddBatchCandidates): exact distances to the shipped
// candidates it holds live, the heuristic, and the reverse links with
// pruning as in any insertion. Nodes above level 0 (1 in M) still search
// (their upper levels need it, and their level 0 comes with it).
//
// Order: the nodes that search are linked first; then every node with
// candidates sets its own links (all of them), and only then are the
// reverse links added, so a reverse link to a node of the same batch is
// never overwritten by that node's own links being set.

// linkShipped links the allocated nodes from first on, those with usable
// candidates (cands[n-first]) among them and the others by searching.
// The write lock is held.
func (x *Index) linkShipped(first int32, cands [][]ID, workers int) {
	var searched, shipped []int32
	for i := range cands {
		n := first + int32(i)
		if x.levels[n] == 0 && (x.entry >= 0 || len(searched) > 0) && x.holdsAny(n, cands[i]) {
			shipped = append(shipped, n)
		} else {
			searched = append(searched, n)
		}
	}
	x.eachNode(searched, workers, x.link)
	own := make([][]candidate, len(shipped))
	at := make(map[int32]int, len(shipped))
	for i, n := range shipped {
		at[n] = i
	}
	x.eachNode(shipped, workers, func(n int32, vs *visitSet) {
		own[at[n]] = x.linkOwn(n, cands[n-first], vs)
	})
	x.eachNode(shipped, workers, func(n int32, _ *visitSet) {
		for _, c := range own[at[n]] {
			x.lockNode(c.node)
			x.connect(c.node, n, c.dist, 0, x.m0)
			x.unlockNode(c.node)
		}
	})
}

// holdsAny reports whether the graph holds one of ids live, besides n.
func (x *Index) holdsAny(n int32, ids []ID) bool {
	for _, id := range ids {
		if m, ok := x.byID[id]; ok && m != n {
			return true
		}
	}
	return false
}

// linkOwn encodes level-0 node n and sets its links among the candidates
// ids it holds live (the heuristic, as linkLevel), answering the
// neighbours chosen; the reverse links are the caller's.
func (x *Index) linkOwn(n int32, ids []ID, vs *visitSet) []candidate {
	tmp := vs.scratch(x.rot.dp)
	v := x.vec(n)
	x.rot.encode(v, x.code(n), tmp)
	x.encodeNodeFine(n, tmp)
	nodes := vs.fresh[:0]
	for _, id := range ids {
		if m, ok := x.byID[id]; ok && m != n {
			nodes = append(nodes, m)
		}
	}
	vs.fresh = nodes
	x.touch(nodes, vs)
	w := make([]candidate, len(nodes))
	for i, m := range nodes {
		w[i] = candidate{1 - dot(v, x.vec(m)), m}
	}
	sortCandidates(w)
	selected := x.selectNeighbors(w, x.cfg.M, nil)
	ns := make([]int32, len(selected))
	for i, c := range selected {
		ns[i] = c.node
	}
	x.lockNode(n)
	x.setLinks(n, 0, ns)
	x.setChosen(n, 0, len(w) > x.cfg.M)
	x.unlockNode(n)
	return selected
}

// Candidates computes, for each of vectors[from:], the candidate
// neighbours a replica links it among (AddBatchCandidates): the
// efConstruction nearest of the graph's live vectors and of the other
// vectors (by brute force: those not in the graph yet, vectors[:from]
// still in flight and the batch itself), nearest first, by id. The graph
// is searched under the read lock, one vector at a time, on up to
// GOMAXPROCS goroutines. Nil when a vector has the wrong length or the
// lengths disagree.
func (x *Index) Candidates(ids []ID, vectors [][]float32, from int) [][]ID {
	if len(ids) != len(vectors) || from < 0 || from > len(vectors) {
		return nil
	}
	norm := make([][]float32, len(vectors))
	for i, v := range vectors {
		if len(v) != x.cfg.Dim {
			return nil
		}
		norm[i] = normalized(v)
	}
	pending := make(map[ID]struct{}, len(ids))
	for _, id := range ids {
		pending[id] = struct{}{}
	}
	out := make([][]ID, len(vectors)-from)
	next := atomic.Int64{}
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(vectors); i = int(next.Add(1) - 1) {
				out[i-from] = x.candidatesOf(i, ids, norm, pending)
			}
		})
	}
	wg.Wait()
	return out
}

// candidatesOf is vector i's candidates among the graph and the others of
// norm (normalized): the ef nearest of both. An id of pending (every id of
// norm) counts at its vector in norm, newer than the graph's.
func (x *Index) candidatesOf(i int, ids []ID, norm [][]float32, pending map[ID]struct{}) []ID {
	ef := x.cfg.EfConstruction
	q := norm[i]
	brute := maxHeap{}
	for j, v := range norm {
		if j == i || ids[j] == ids[i] {
			continue
		}
		if d := 1 - dot(q, v); brute.len() < ef || d < brute.top().dist {
			brute.push(candidate{d, int32(j)})
			if brute.len() > ef {
				brute.pop()
			}
		}
	}
	type idDist struct {
		id ID
		d  float32
	}
	all := make([]idDist, 0, 2*ef)
	for _, c := range brute.h {
		all = append(all, idDist{ids[c.node], c.dist})
	}
	for _, r := range x.graphNearest(q, ef) {
		if _, newer := pending[r.ID]; !newer {
			all = append(all, idDist{r.ID, 1 - r.Score})
		}
	}
	slices.SortFunc(all, func(a, b idDist) int { return cmp.Compare(a.d, b.d) })
	out := make([]ID, 0, min(ef, len(all)))
	for _, c := range all[:min(ef, len(all))] {
		out = append(out, c.id)
	}
	return out
}

// graphNearest is the ef nearest live vectors to qn (normalized) by the
// construction's search: exact distances, greedy descent, ef at level 0.
func (x *Index) graphNearest(qn []float32, ef int) []Result {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.entry < 0 {
		return nil
	}
	vs := x.visitSet()
	defer x.visits.Put(vs)
	accept := func(n int32) bool { return !x.dead[n] }
	ep := x.entry
	epDist := 1 - dot(qn, x.vec(ep))
	for l := x.maxLevel; l > 0; l-- {
		ep, epDist = x.greedy(qn, ep, epDist, l, vs)
	}
	w := x.searchLayer(qn, []candidate{{epDist, ep}}, ef, 0, vs, accept)
	out := make([]Result, len(w))
	for k, c := range w {
		out[k] = Result{ID: x.ids[c.node], Score: 1 - c.dist}
	}
	return out
}

package vector

import (
	"slices"
	"unsafe"
)

// The traversal driven by the compact codes (quant.go), used by Search.
//
// Upper levels: the greedy descent estimates every neighbour and computes
// the exact distance only of those whose estimate, less its whole error
// bound, beats the best so far. Level 0 runs Algorithm 2 with one change:
// a neighbour's distance is estimated from its code when it is discovered,
// and the exact distance from its float vector is computed only when it is
// taken from the candidate queue to be expanded. The queue is ordered by
// the estimate less a share (codeSlack) of its error bound; the result set
// holds exact distances only, so no rerank follows the traversal. A node
// whose exact distance turns out to be beyond the full result set's worst
// is dropped unexpanded, as the float traversal would never have queued it.

// codeSlack is the share of an estimate's error bound taken off it to
// order and admit candidates: 0 trusts the estimate, 1 queues every node
// the bound cannot rule out. At 1 recall at each ef is the float
// traversal's or better (TestEstimateTraversalRecallAtLeastFloat); at 0.75
// it fell below it on that test's loose set (0.998 against 1.000 at
// ef 40), at 0.5 on the benchmark's data at ef 120–160, at 0 far below.
const codeSlack = 1.0

// estimated is a node with its estimated distance and the half-width of
// the estimate's error bound.
type estimated struct {
	node        int32
	dist, width float32
}

// estimateAll estimates the distances of nodes to the query into out (one
// per node, reused): their codes are first prefetched, all before the
// first popcount, so the misses overlap.
func (x *Index) estimateAll(qq *quantQuery, nodes []int32, out []estimated, vs *visitSet) []estimated {
	if len(nodes) > 0 {
		prefetchRows(unsafe.Pointer(&x.codes[0]), 8*x.cw, nodes, x.codeLines())
	}
	vs.estimated += len(nodes)
	out = out[:0]
	for _, n := range nodes {
		ip, width := qq.estimate(x.code(n))
		out = append(out, estimated{n, 1 - ip, width})
	}
	return out
}

// greedyCodes walks level l toward q with ef = 1, as greedy does, but
// computes a neighbour's exact distance only when its estimate, less its
// whole error bound, is below the best so far.
func (x *Index) greedyCodes(q []float32, qq *quantQuery, ep int32, epDist float32, l int, vs *visitSet) (int32, float32) {
	for changed := true; changed; {
		changed = false
		vs.ests = x.estimateAll(qq, x.neighbours(ep, l, vs), vs.ests, vs)
		if x.useFine {
			// Every neighbour that may beat the best so far will have
			// its fine estimate read: fetch them all before the first.
			for _, e := range vs.ests {
				if e.dist-e.width < epDist {
					p := unsafe.Pointer(&x.fine[int(e.node)*x.rot.dp])
					prefetch(p, linesAt(p, x.rot.dp))
				}
			}
		}
		for _, e := range vs.ests {
			if e.dist-e.width >= epDist {
				continue
			}
			if d := x.expandDist(q, e.node, vs); d < epDist {
				ep, epDist, changed = e.node, d, true
			}
		}
	}
	return ep, epDist
}

// searchCodes is level 0 of Search: the ef nearest nodes to q reached
// from ep, only accepted ones in the result, sorted by exact distance.
func (x *Index) searchCodes(q []float32, ep int32, ef int, vs *visitSet, accept func(int32) bool, qq *quantQuery) []candidate {
	vs.next(len(x.ids))
	cands := minHeap{h: vs.cands[:0]}
	res := maxHeap{h: vs.res[:0]}
	defer func() { vs.cands, vs.res = cands.h, res.h }()
	vs.visit(ep)
	cands.push(candidate{0, ep})
	for cands.len() > 0 {
		c := cands.pop()
		full := res.len() >= ef
		if full && c.dist > res.top().dist {
			break
		}
		if cands.len() > 0 {
			x.prefetchNext(cands.h[0].node)
		}
		d, wd := x.expandDistWidth(q, c.node, vs)
		if full && d-wd >= res.top().dist {
			continue // surely no nearer than the worst result: not expanded
		}
		if accept == nil || accept(c.node) {
			res.push(candidate{d, c.node})
			if res.len() > ef {
				res.pop()
			}
		}
		vs.ests = x.estimateAll(qq, x.unvisited(c.node, 0, vs), vs.ests, vs)
		for _, e := range vs.ests {
			if key := e.dist - codeSlack*e.width; res.len() < ef || key < res.top().dist {
				cands.push(candidate{key, e.node})
			}
		}
	}
	return res.sorted()
}

// expandDist is the distance of node to the query that the traversal
// expands on: the fine estimate where the fine codes are kept (quant8.go;
// rerank settles the results), else the exact distance.
func (x *Index) expandDist(q []float32, node int32, vs *visitSet) float32 {
	if x.useFine {
		vs.fined++
		return x.fineDist(&vs.fineq, node)
	}
	vs.exact++
	return 1 - dot(q, x.vec(node))
}

// prefetchNext prefetches what expanding node will read (its fine code
// and scale, and its level-0 links) while the current node is worked on,
// so the misses of the likely next expansion overlap this one.
func (x *Index) prefetchNext(node int32) {
	if x.useFine {
		p := unsafe.Pointer(&x.fine[int(node)*x.rot.dp])
		prefetch(p, linesAt(p, x.rot.dp))
	}
	prefetch(unsafe.Pointer(&x.l0[int(node)*x.m0]), lines(4*x.m0))
}

// lines is how many cache lines a range of n bytes may span (one more than
// n/64 rounded up, as it need not start at a line's beginning).
func lines(n int) int { return (n+63)/64 + 1 }

// linesAt is how many cache lines the n bytes at p span.
func linesAt(p unsafe.Pointer, n int) int {
	return int((uintptr(p)+uintptr(n)-1)/64 - uintptr(p)/64 + 1)
}

// codeLines is how many cache lines every one-bit code spans: rows are
// whole lines (codeWords), so that is their number where the slab starts
// on a line, as large slabs do, and one more where it does not.
func (x *Index) codeLines() int {
	if len(x.codes) == 0 {
		return 0
	}
	return linesAt(unsafe.Pointer(&x.codes[0]), 8*x.cw)
}

// expandDistWidth is expandDist and the half-width of its bound: 0 for
// an exact distance.
func (x *Index) expandDistWidth(q []float32, node int32, vs *visitSet) (dist, width float32) {
	if x.useFine {
		vs.fined++
		return x.fineDistWidth(&vs.fineq, node)
	}
	vs.exact++
	return 1 - dot(q, x.vec(node)), 0
}

// rerank turns results sorted by fine estimate (w) into the ones that can
// be among the k nearest, sorted by exact distance. T is the k-th smallest
// upper bound (estimate plus width): at least k nodes are within T, so a
// node whose lower bound is beyond T cannot be among the k nearest and is
// dropped; the others get their exact distance.
func (x *Index) rerank(q []float32, w []candidate, k int, vs *visitSet) []candidate {
	if !x.useFine || len(w) == 0 {
		return w
	}
	n := len(w)
	vs.bounds = slices.Grow(vs.bounds[:0], 2*n)[:2*n]
	widths, ups := vs.bounds[:n], vs.bounds[n:]
	for i, c := range w {
		widths[i] = x.fineWidth(&vs.fineq, c.node)
		ups[i] = c.dist + widths[i]
	}
	slices.Sort(ups)
	t := ups[min(k, n)-1]
	// The survivors move to the front first, so that while one's float
	// vector is read the next one's is already being fetched (random
	// vectors of Dim·4 bytes: their first lines' misses overlap).
	out := w[:0]
	for i, c := range w {
		if c.dist-widths[i] <= t {
			out = append(out, c)
		}
	}
	vecLines := lines(4 * x.cfg.Dim)
	if len(out) > 0 {
		prefetch(unsafe.Pointer(&x.vec(out[0].node)[0]), vecLines)
	}
	for i, c := range out {
		if i+1 < len(out) {
			prefetch(unsafe.Pointer(&x.vec(out[i+1].node)[0]), vecLines)
		}
		vs.exact++
		out[i] = candidate{1 - dot(q, x.vec(c.node)), c.node}
	}
	sortCandidates(out)
	return out
}

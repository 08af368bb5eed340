package vector

import "slices"

// Pruning without measuring known pairs again (session 9).
//
// When a node's level-0 list is full, every new link to it runs the
// heuristic (Algorithm 4, selectNeighbors) over its 2M links and the
// newcomer, sorted by distance: a candidate is kept when it is no nearer
// to any neighbour kept before it than to the node. That costs up to
// (2M)²/2 distances between candidates; on the cluster benchmark's random
// 768-d vectors about 2,200 per insertion, more than the insertion's own
// search (~1,300). But the links that the previous run of the heuristic
// kept (the first l0k of the list: links appended since come after them)
// passed exactly these tests against each other: for two of them, r
// nearer to the node than c (or as near), 1 − ⟨c, r⟩ ≥ c's distance.
// Their distances to the node have not changed, so in the next run r is
// again examined before c (or they tie, and the test holds both ways),
// and the pair needs no distance: only pairs with the newcomer or a link
// appended since are measured. The links chosen are the ones the full
// heuristic chooses (TestPruningSkipsKnownPairsBuildsTheSameGraph).
//
// l0k is derived state: not in snapshots (a loaded graph knows nothing
// and measures every pair until a node is next pruned), not in Frozen
// views. Upper levels hold few nodes and always measure.

// setChosen records whether node i's links at level l, just set, are all
// the heuristic's choice (it ran: more candidates than slots). Under i's
// lock while parallel.
func (x *Index) setChosen(i int32, l int, chosen bool) {
	if l != 0 || x.forgetChosen {
		return
	}
	x.l0k[i] = 0
	if chosen {
		x.l0k[i] = x.l0n[i]
	}
}

// chosenTogether marks, for the sorted candidates of a pruning of node e
// at level l (its links cur and a newcomer), those among the links the
// previous heuristic chose together; nil when none are known.
func (x *Index) chosenTogether(e int32, l int, cur []int32, sorted []candidate) []bool {
	if l != 0 || x.forgetChosen || int(e) >= len(x.l0k) || x.l0k[e] < 2 {
		return nil
	}
	prev := cur[:x.l0k[e]]
	together := make([]bool, len(sorted))
	for i, c := range sorted {
		together[i] = slices.Contains(prev, c.node)
	}
	return together
}

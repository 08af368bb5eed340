package vector

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// nodeStripes is the number of node locks used during a parallel batch;
// node i uses nodeLocks[i%nodeStripes]. A goroutine never holds two of
// them, so striping cannot deadlock.
const nodeStripes = 4096

// minParallel is the smallest batch AddBatch spreads over several
// goroutines: below it, starting them costs more than it saves.
const minParallel = 64

// AddBatch inserts vectors[i] under ids[i], in order (a later id replaces
// an earlier one, as with Add), linking the new nodes on up to workers
// goroutines (0: GOMAXPROCS). It holds the write lock throughout: searches
// wait for the whole batch. With several workers the links depend on the
// goroutines' schedule (as in hnswlib's parallel build), so two graphs
// built from the same batch may differ slightly; workers = 1 builds what
// the same sequence of Add calls builds.
func (x *Index) AddBatch(ids []ID, vectors [][]float32, workers int) error {
	return x.AddBatchCandidates(ids, vectors, nil, workers)
}

// AddBatchCandidates is AddBatch where cands[i], when not empty, lists
// candidate neighbours of vectors[i] (ids, as Candidates computes them on
// another replica): a level-0 node is linked among those of them the graph
// holds live instead of searching the graph (candidates.go). A vector
// without candidates, with none held, or above level 0 is inserted as by
// AddBatch. cands may be nil.
func (x *Index) AddBatchCandidates(ids []ID, vectors [][]float32, cands [][]ID, workers int) error {
	if len(ids) != len(vectors) || cands != nil && len(cands) != len(ids) {
		return fmt.Errorf("vector: add batch: %d ids, %d vectors, %d candidate lists", len(ids), len(vectors), len(cands))
	}
	for _, v := range vectors {
		if len(v) != x.cfg.Dim {
			return fmt.Errorf("%w: %d, want %d", ErrDimension, len(v), x.cfg.Dim)
		}
	}
	norm := make([][]float32, len(vectors))
	for i, v := range vectors {
		norm[i] = normalized(v)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	first := int32(len(x.ids))
	for i, id := range ids {
		x.retire(id)
		x.allocate(id, norm[i], x.levelFor(id))
	}
	if cands == nil {
		x.linkRange(first, int32(len(x.ids)), workers)
	} else {
		x.linkShipped(first, cands, workers)
	}
	if len(ids) >= settleBatch {
		x.settle()
	}
	return nil
}

// settleBatch is the batch size from which AddBatch settles the slabs
// into huge pages (slab.go): a bulk load, not a replicated run of a few
// hundred.
const settleBatch = 4096

// linkRange links the allocated nodes [from, to) on up to workers
// goroutines, in order of their numbers. The write lock is held.
func (x *Index) linkRange(from, to int32, workers int) {
	nodes := make([]int32, 0, to-from)
	for n := from; n < to; n++ {
		nodes = append(nodes, n)
	}
	x.eachNode(nodes, workers, x.link)
}

// eachNode runs fn on every node of nodes, in their order, on up to
// workers goroutines (0: GOMAXPROCS), with x.parallel set while several
// run. Into an empty graph the first node is linked alone (it may become
// the entry point). The write lock is held.
func (x *Index) eachNode(nodes []int32, workers int, fn func(int32, *visitSet)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if workers == 1 || len(nodes) < minParallel {
		vs := x.visitSet()
		defer x.visits.Put(vs)
		for _, n := range nodes {
			fn(n, vs)
		}
		return
	}
	if x.entry < 0 {
		vs := x.visitSet()
		fn(nodes[0], vs)
		x.visits.Put(vs)
		nodes = nodes[1:]
	}
	if x.nodeLocks == nil {
		x.nodeLocks = make([]sync.Mutex, nodeStripes)
	}
	x.parallel = true
	defer func() { x.parallel = false }()
	next := atomic.Int32{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			vs := x.visitSet()
			defer x.visits.Put(vs)
			for i := next.Add(1) - 1; int(i) < len(nodes); i = next.Add(1) - 1 {
				fn(nodes[i], vs)
			}
		})
	}
	wg.Wait()
}

// insertItem allocates and links one item (Build); no lock is needed on
// a graph nobody else holds yet.
func (x *Index) insertItem(it Item, vs *visitSet) {
	x.link(x.allocate(it.ID, it.Vec, it.Level), vs)
}

func (x *Index) lockNode(i int32) {
	if x.parallel {
		x.nodeLocks[i%nodeStripes].Lock()
	}
}

func (x *Index) unlockNode(i int32) {
	if x.parallel {
		x.nodeLocks[i%nodeStripes].Unlock()
	}
}

// neighbours returns node i's links at level l: a view, or while parallel
// a copy taken under the node's lock (valid until the next call with vs).
func (x *Index) neighbours(i int32, l int, vs *visitSet) []int32 {
	if !x.parallel {
		return x.links(i, l)
	}
	x.lockNode(i)
	vs.links = append(vs.links[:0], x.links(i, l)...)
	x.unlockNode(i)
	return vs.links
}

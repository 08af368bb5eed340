package vector

import "slices"

type candidate struct {
	dist float32
	node int32
}

// sortCandidates sorts c by distance. slices.SortFunc runs the pdqsort
// that sort.Slice ran (the same order, ties included) without its
// reflection-built swapper, which was 5 % of a bulk insertion's CPU.
func sortCandidates(c []candidate) {
	slices.SortFunc(c, func(a, b candidate) int {
		switch {
		case a.dist < b.dist:
			return -1
		case b.dist < a.dist:
			return 1
		}
		return 0
	})
}

// minHeap pops the nearest candidate first.
type minHeap struct{ h []candidate }

func (m *minHeap) len() int { return len(m.h) }

func (m *minHeap) push(c candidate) {
	m.h = append(m.h, c)
	i := len(m.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if m.h[p].dist <= m.h[i].dist {
			break
		}
		m.h[p], m.h[i] = m.h[i], m.h[p]
		i = p
	}
}

// pop takes the nearest candidate. Bottom-up (Floyd): the hole at the
// root moves down to a leaf through the nearer child, one comparison a
// level, and the last element rises from there (rarely more than a level
// or two), instead of sinking from the root with two comparisons a level
// (about 2 % less CPU per warm search).
func (m *minHeap) pop() candidate {
	h := m.h
	top := h[0]
	last := h[len(h)-1]
	h = h[:len(h)-1]
	m.h = h
	n := len(h)
	if n == 0 {
		return top
	}
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		if r := l + 1; r < n && h[r].dist < h[l].dist {
			l = r
		}
		h[i] = h[l]
		i = l
	}
	for i > 0 {
		p := (i - 1) / 2
		if h[p].dist <= last.dist {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = last
	return top
}

// maxHeap keeps the farthest candidate on top (the result set).
type maxHeap struct{ h []candidate }

func (m *maxHeap) len() int       { return len(m.h) }
func (m *maxHeap) top() candidate { return m.h[0] }

func (m *maxHeap) push(c candidate) {
	m.h = append(m.h, c)
	i := len(m.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if m.h[p].dist >= m.h[i].dist {
			break
		}
		m.h[p], m.h[i] = m.h[i], m.h[p]
		i = p
	}
}

func (m *maxHeap) pop() candidate {
	top := m.h[0]
	last := len(m.h) - 1
	m.h[0] = m.h[last]
	m.h = m.h[:last]
	i := 0
	for {
		l, r, s := 2*i+1, 2*i+2, i
		if l < len(m.h) && m.h[l].dist > m.h[s].dist {
			s = l
		}
		if r < len(m.h) && m.h[r].dist > m.h[s].dist {
			s = r
		}
		if s == i {
			return top
		}
		m.h[s], m.h[i] = m.h[i], m.h[s]
		i = s
	}
}

// sorted returns the candidates nearest first.
func (m *maxHeap) sorted() []candidate {
	out := append([]candidate(nil), m.h...)
	sortCandidates(out)
	return out
}

// visitSet marks visited nodes with a generation stamp, so clearing is O(1).
// It also carries one traversal's scratch (pooled with it): heap storage,
// a copy of a link list, the prepared query and rotation scratch, and
// counters of estimated and exact distances (read by the tests).
type visitSet struct {
	gen   uint32
	marks []uint32

	cands, res []candidate
	links      []int32
	fresh      []int32
	ests       []estimated
	query      quantQuery
	fineq      fineQuery
	tmp        []float32
	bounds     []float32

	estimated, fined, exact int
	touchedF                float32 // keeps touch's loads alive
}

// scratch returns n floats of scratch.
func (v *visitSet) scratch(n int) []float32 {
	if len(v.tmp) < n {
		v.tmp = make([]float32, n)
	}
	return v.tmp[:n]
}

func (x *Index) visitSet() *visitSet {
	if v, ok := x.visits.Get().(*visitSet); ok {
		return v
	}
	return &visitSet{}
}

// next starts a new traversal over n nodes.
func (v *visitSet) next(n int) {
	if len(v.marks) < n {
		v.marks = append(v.marks, make([]uint32, n-len(v.marks)+n/4)...)
	}
	v.gen++
	if v.gen == 0 {
		clear(v.marks)
		v.gen = 1
	}
}

// visit marks node and reports whether it was already visited.
func (v *visitSet) visit(node int32) bool {
	if v.marks[node] == v.gen {
		return true
	}
	v.marks[node] = v.gen
	return false
}

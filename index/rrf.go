package index

import (
	"math"
	"sort"
)

// Fused is one item of fused ranked lists.
type Fused struct {
	ID    ID
	Score float64
	Ranks []int // 1-based rank in each list; 0 when absent
}

// RRF fuses ranked lists by Reciprocal Rank Fusion:
// score(d) = Σ_i weight_i / (k + rank_i(d)). A list without a weight
// counts 1; a weight of 0 makes its list contribute nothing (its ranks are
// still reported). k defaults to 60. Ties break by id, so the order is
// deterministic.
func RRF(k float64, weights []float64, lists ...[]ID) []Fused {
	if k <= 0 {
		k = 60
	}
	acc := newAccumulator(len(lists))
	for li, list := range lists {
		w := 1.0
		if li < len(weights) {
			w = weights[li]
		}
		for r, id := range list {
			if f := acc.at(id); f.Ranks[li] == 0 {
				f.Ranks[li] = r + 1
				f.Score += w / (k + float64(r+1))
			}
		}
	}
	return acc.sorted(heaviest(weights, len(lists)))
}

// heaviest lists the lists' indexes by weight, heaviest first (a missing
// weight counts 1), ties by index: the order in which equal scores defer
// to the lists' own ranks.
func heaviest(weights []float64, lists int) []int {
	w := func(i int) float64 {
		if i < len(weights) {
			return weights[i]
		}
		return 1
	}
	order := make([]int, lists)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return w(order[a]) > w(order[b]) })
	return order
}

// accumulator gathers fused scores by id, in first-seen order.
type accumulator struct {
	lists int
	byID  map[ID]*Fused
	order []*Fused
}

func newAccumulator(lists int) *accumulator {
	return &accumulator{lists: lists, byID: map[ID]*Fused{}}
}

// at returns id's entry, creating it.
func (a *accumulator) at(id ID) *Fused {
	f, ok := a.byID[id]
	if !ok {
		f = &Fused{ID: id, Ranks: make([]int, a.lists)}
		a.byID[id] = f
		a.order = append(a.order, f)
	}
	return f
}

// sorted returns the entries by score, best first. Equal scores go by
// rank in the lists named by prefer, in that order (an item in a list
// before one absent from it), then by id.
func (a *accumulator) sorted(prefer []int) []Fused {
	out := make([]Fused, len(a.order))
	for i, f := range a.order {
		out[i] = *f
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		for _, li := range prefer {
			if ri, rj := rankOrLast(out[i].Ranks[li]), rankOrLast(out[j].Ranks[li]); ri != rj {
				return ri < rj
			}
		}
		return string(out[i].ID[:]) < string(out[j].ID[:])
	})
	return out
}

// rankOrLast orders an absent item (rank 0) after every ranked one.
func rankOrLast(r int) int {
	if r == 0 {
		return math.MaxInt
	}
	return r
}

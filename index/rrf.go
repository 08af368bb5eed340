package index

import "sort"

// Fused is one item of fused ranked lists.
type Fused struct {
	ID    ID
	Score float64
	Ranks []int // 1-based rank in each list; 0 when absent
}

// RRF fuses ranked lists by Reciprocal Rank Fusion:
// score(d) = Σ_i weight_i / (k + rank_i(d)). Missing weights count 1; k
// defaults to 60. Ties break by id, so the order is deterministic.
func RRF(k float64, weights []float64, lists ...[]ID) []Fused {
	if k <= 0 {
		k = 60
	}
	byID := map[ID]*Fused{}
	var order []*Fused
	for li, list := range lists {
		w := 1.0
		if li < len(weights) && weights[li] > 0 {
			w = weights[li]
		}
		for r, id := range list {
			f, ok := byID[id]
			if !ok {
				f = &Fused{ID: id, Ranks: make([]int, len(lists))}
				byID[id] = f
				order = append(order, f)
			}
			if f.Ranks[li] == 0 {
				f.Ranks[li] = r + 1
				f.Score += w / (k + float64(r+1))
			}
		}
	}
	out := make([]Fused, len(order))
	for i, f := range order {
		out[i] = *f
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return string(out[i].ID[:]) < string(out[j].ID[:])
	})
	return out
}

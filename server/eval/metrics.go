package eval

import (
	"math"
	"sort"
)

// Scores are one query's measures.
type Scores struct {
	AP, NDCG10, Recall50, RR float64
}

// Score measures a ranking of document ids against the query's judgements:
// average precision, nDCG@10 (gain = relevance grade), recall@50 and the
// reciprocal rank of the first relevant document.
func Score(ranked []string, judged map[string]int) Scores {
	relevant := 0
	for _, r := range judged {
		if r > 0 {
			relevant++
		}
	}
	if relevant == 0 {
		return Scores{}
	}
	var s Scores
	hits := 0
	for i, d := range ranked {
		if judged[d] <= 0 {
			continue
		}
		hits++
		s.AP += float64(hits) / float64(i+1)
		if hits == 1 {
			s.RR = 1 / float64(i+1)
		}
		if i < 50 {
			s.Recall50++
		}
	}
	s.AP /= float64(relevant)
	s.Recall50 /= float64(relevant)
	s.NDCG10 = ndcg(ranked, judged, 10)
	return s
}

func ndcg(ranked []string, judged map[string]int, k int) float64 {
	var dcg float64
	for i := 0; i < len(ranked) && i < k; i++ {
		if g := judged[ranked[i]]; g > 0 {
			dcg += float64(g) / math.Log2(float64(i+2))
		}
	}
	var grades []int
	for _, g := range judged {
		if g > 0 {
			grades = append(grades, g)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(grades)))
	var ideal float64
	for i := 0; i < len(grades) && i < k; i++ {
		ideal += float64(grades[i]) / math.Log2(float64(i+2))
	}
	if ideal == 0 {
		return 0
	}
	return dcg / ideal
}

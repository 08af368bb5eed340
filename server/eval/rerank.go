package eval

import (
	"context"
	"fmt"
	"slices"

	"github.com/sostenuto/sostenuto/index"
)

// PassageScorer scores passages for a query, one score per passage
// (higher: more relevant): *rerank.Client, as search.Reranker.
type PassageScorer interface {
	Rerank(ctx context.Context, query string, passages []string) ([]float64, error)
}

// PassageRerank is the Reranker of a scoring service, as the node's
// search.Rerank uses it: the first TopN fused hits (50 when zero) go in
// one round trip as "title\ntext" and are reordered by score, ties in
// fused order; the rest follow. A failed round trip fails the evaluation
// (the node would keep the fused order, which would measure nothing).
type PassageRerank struct {
	Scorer PassageScorer
	TopN   int
}

// Rerank implements Reranker.
func (p *PassageRerank) Rerank(ctx context.Context, query string, hits []index.Hit) ([]index.Hit, error) {
	n := p.TopN
	if n <= 0 {
		n = 50
	}
	top := slices.Clone(hits[:min(len(hits), n)])
	if len(top) == 0 {
		return hits, nil
	}
	texts := make([]string, len(top))
	for i, h := range top {
		texts[i] = h.Chunk.Title + "\n" + h.Chunk.Text
	}
	scores, err := p.Scorer.Rerank(ctx, query, texts)
	if err != nil {
		return nil, fmt.Errorf("eval: rerank: %w", err)
	}
	if len(scores) != len(top) {
		return nil, fmt.Errorf("eval: rerank: %d scores for %d passages", len(scores), len(top))
	}
	order := make([]int, len(top))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmpDesc(scores[a], scores[b]) })
	out := make([]index.Hit, 0, len(hits))
	for _, i := range order {
		out = append(out, top[i])
	}
	return append(out, hits[len(top):]...), nil
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

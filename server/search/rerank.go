package search

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sostenuto/sostenuto/server/rerank"
)

// Reranker scores passages against a query (rerank.Client).
type Reranker interface {
	Rerank(ctx context.Context, query string, passages []string) ([]float64, error)
}

// RerankStatus is what came of a requested rerank: Reranked, or the
// fused order kept for Error ("timeout", "unavailable", "bad_response",
// "not_configured").
type RerankStatus struct {
	Reranked bool
	Error    string
}

// Rerank decorates a Searcher: when a query asks for it, the top N of
// the fused list go to the reranker in one round trip and come back in
// its order (the rest follow in the fused order), each with its
// RerankScore. When the reranker fails or is not configured, the fused
// order is kept and the result says why: a rerank never fails a search.
type Rerank struct {
	next     Searcher
	reranker Reranker
	topN     int
	logger   *slog.Logger
	outcomes *prometheus.CounterVec
}

// RerankConfig configures a Rerank decorator.
type RerankConfig struct {
	// Reranker scores passages; nil: requested reranks report
	// "not_configured".
	Reranker Reranker
	// TopN is how many fused hits are reranked (50 if zero).
	TopN   int
	Logger *slog.Logger
	// Outcomes counts reranks by outcome (ok, timeout, unavailable,
	// bad_response, not_configured); nil: not counted.
	Outcomes *prometheus.CounterVec
}

// NewRerank decorates next.
func NewRerank(next Searcher, cfg RerankConfig) *Rerank {
	if cfg.TopN <= 0 {
		cfg.TopN = 50
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Rerank{next: next, reranker: cfg.Reranker, topN: cfg.TopN, logger: cfg.Logger, outcomes: cfg.Outcomes}
}

// Identity names the rerank stage for cache keys and tags: the reranker's
// model (when it tells one) and the top N; "none" without a reranker.
func (r *Rerank) Identity() string {
	if r.reranker == nil {
		return "none"
	}
	inner := r.reranker
	if u, ok := inner.(interface{ Unwrap() Reranker }); ok {
		inner = u.Unwrap() // a tracing decorator is not another reranker
	}
	model := ""
	if m, ok := inner.(interface{ Model() string }); ok {
		model = m.Model()
	}
	return fmt.Sprintf("%T %s top=%d", inner, model, r.topN)
}

// Search implements Searcher. A reranked query fetches max(K, N) fused
// hits, reranks the first N and keeps K. An Empty result (nothing to
// search) reports its rerank like any result without hits.
func (r *Rerank) Search(ctx context.Context, q Query) (Result, error) {
	if !q.Rerank {
		return r.next.Search(ctx, q)
	}
	k := q.K
	q.K = max(k, r.topN)
	res, err := r.next.Search(ctx, q)
	if err != nil {
		return res, err
	}
	res.Rerank = r.rerank(ctx, q.Text, res.Hits)
	if len(res.Hits) > k {
		res.Hits = res.Hits[:k]
	}
	return res, nil
}

// rerank reorders the first N hits in place by the reranker's scores.
func (r *Rerank) rerank(ctx context.Context, query string, hits []Hit) *RerankStatus {
	if r.reranker == nil {
		r.count("not_configured")
		return &RerankStatus{Error: "not_configured"}
	}
	top := hits[:min(len(hits), r.topN)]
	if len(top) == 0 {
		r.count("ok")
		return &RerankStatus{Reranked: true}
	}
	texts := make([]string, len(top))
	for i, h := range top {
		texts[i] = h.Title + "\n" + h.Text
	}
	scores, err := r.reranker.Rerank(ctx, query, texts)
	if err != nil {
		reason := rerank.Reason(err)
		r.logger.WarnContext(ctx, "rerank failed; the fused order is kept", "component", "search", "reason", reason, "error", err)
		r.count(reason)
		return &RerankStatus{Error: reason}
	}
	for i := range top {
		s := scores[i]
		top[i].RerankScore = &s
	}
	sort.SliceStable(top, func(i, j int) bool { return *top[i].RerankScore > *top[j].RerankScore })
	r.count("ok")
	return &RerankStatus{Reranked: true}
}

func (r *Rerank) count(outcome string) {
	if r.outcomes != nil {
		r.outcomes.WithLabelValues(outcome).Inc()
	}
}

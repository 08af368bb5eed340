package eval

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
)

// Mode is one way of searching a query.
type Mode struct {
	Name   string
	Mode   string // index.ModeHybrid, ModeVector or ModeBM25
	Fusion index.Fusion
	// Rerank reorders this mode's hits after fusion.
	Rerank bool
}

// Modes are every mode eval runs: each list alone, hybrid with the
// deployment's default fusion (def), and hybrid with equal weights by
// RRF and by the convex combination. With a reranker configured,
// hybrid+rerank follows.
func Modes(def index.Fusion, rerank bool) []Mode {
	ms := []Mode{
		{Name: "bm25", Mode: index.ModeBM25},
		{Name: "vector", Mode: index.ModeVector},
		{Name: "hybrid (default: " + def.String() + ")", Mode: index.ModeHybrid, Fusion: def},
		{Name: "hybrid-rrf (equal weights)", Mode: index.ModeHybrid, Fusion: index.Fusion{Method: index.FusionRRF, Weights: index.Balanced}},
		{Name: "hybrid-convex (equal weights)", Mode: index.ModeHybrid, Fusion: index.Fusion{Method: index.FusionConvex, Weights: index.Balanced}},
	}
	if rerank {
		ms = append(ms, Mode{Name: "hybrid+rerank", Mode: index.ModeHybrid, Fusion: def, Rerank: true})
	}
	return ms
}

// Reranker reorders fused hits for a query (PassageRerank over the
// node's reranker, server/rerank); eval runs hybrid+rerank when one is
// configured.
type Reranker interface {
	Rerank(ctx context.Context, query string, hits []index.Hit) ([]index.Hit, error)
}

// Config is one evaluation.
type Config struct {
	Engine   *index.Engine
	Embedder embed.Embedder
	Queries  []Query // only the judged ones are run
	Qrels    Qrels
	Modes    []Mode
	// K is how many chunks each query ranks (100 when zero).
	K int
	// DocKeys names a chunk's document as the judgements may: a hit
	// counts when any key is judged.
	DocKeys  func(c *index.Chunk) []string
	Reranker Reranker
}

// Result is one mode's measures, averaged over the judged queries.
type Result struct {
	Mode                       string
	Queries                    int
	MAP, NDCG10, Recall50, MRR float64
	LatencyP50, LatencyP95     time.Duration
	latencies                  []time.Duration
}

// Run ranks every judged query in every mode.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if cfg.K <= 0 {
		cfg.K = 100
	}
	qs := cfg.Qrels.Judged(cfg.Queries)
	if len(qs) == 0 {
		return nil, fmt.Errorf("eval: no query has a relevant document in the judgements")
	}
	results := make([]Result, len(cfg.Modes))
	for i, m := range cfg.Modes {
		results[i].Mode = m.Name
	}
	for _, q := range qs {
		if err := runQuery(ctx, cfg, q, results); err != nil {
			return nil, err
		}
	}
	for i := range results {
		results[i].finish()
	}
	return results, nil
}

// runQuery embeds q once and ranks it in every mode; the embedding's time
// counts in the latency of the modes that use it.
func runQuery(ctx context.Context, cfg Config, q Query, results []Result) error {
	start := time.Now()
	vs, err := cfg.Embedder.Embed(ctx, []string{q.Text})
	if err != nil {
		return fmt.Errorf("eval: embed query %s: %w", q.ID, err)
	}
	embedTime := time.Since(start)
	for i, m := range cfg.Modes {
		start := time.Now()
		ranked, err := rank(ctx, cfg, m, q, vs[0])
		if err != nil {
			return err
		}
		took := time.Since(start)
		if m.Mode != index.ModeBM25 {
			took += embedTime
		}
		results[i].add(Score(ranked, cfg.Qrels[q.ID]), took)
	}
	return nil
}

// rank searches q in mode m and lists the documents, each at its best
// chunk, by the key the judgements use.
func rank(ctx context.Context, cfg Config, m Mode, q Query, vec []float32) ([]string, error) {
	hits, err := cfg.Engine.Search(index.Query{Text: q.Text, Vector: vec, K: cfg.K, Mode: m.Mode, Fusion: m.Fusion, Scope: index.Scope{Admin: true}})
	if err != nil {
		return nil, fmt.Errorf("eval: query %s, %s: %w", q.ID, m.Name, err)
	}
	if m.Rerank && cfg.Reranker != nil {
		if hits, err = cfg.Reranker.Rerank(ctx, q.Text, hits); err != nil {
			return nil, fmt.Errorf("eval: rerank query %s: %w", q.ID, err)
		}
	}
	judged := cfg.Qrels[q.ID]
	seen := map[string]bool{}
	var out []string
	for _, h := range hits {
		key := docKey(cfg.DocKeys(h.Chunk), judged)
		if !seen[key] {
			seen[key] = true
			out = append(out, key)
		}
	}
	return out, nil
}

// docKey is the first of keys the judgements name, else the first.
func docKey(keys []string, judged map[string]int) string {
	for _, k := range keys {
		if _, ok := judged[k]; ok {
			return k
		}
	}
	return keys[0]
}

func (r *Result) add(s Scores, took time.Duration) {
	r.Queries++
	r.MAP += s.AP
	r.NDCG10 += s.NDCG10
	r.Recall50 += s.Recall50
	r.MRR += s.RR
	r.latencies = append(r.latencies, took)
}

func (r *Result) finish() {
	n := float64(r.Queries)
	r.MAP, r.NDCG10, r.Recall50, r.MRR = r.MAP/n, r.NDCG10/n, r.Recall50/n, r.MRR/n
	slices.Sort(r.latencies)
	r.LatencyP50 = r.latencies[len(r.latencies)/2]
	r.LatencyP95 = r.latencies[min(len(r.latencies)-1, len(r.latencies)*95/100)]
}

// WriteTable prints the results as a Markdown table.
func WriteTable(w io.Writer, rs []Result) {
	fmt.Fprintln(w, "| mode | queries | MAP | nDCG@10 | recall@50 | MRR | p50 | p95 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %d | %.3f | %.3f | %.3f | %.3f | %s | %s |\n", r.Mode, r.Queries, r.MAP, r.NDCG10, r.Recall50, r.MRR,
			r.LatencyP50.Round(time.Microsecond), r.LatencyP95.Round(time.Microsecond))
	}
}

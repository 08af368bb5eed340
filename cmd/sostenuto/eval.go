package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication"
	"github.com/sostenuto/sostenuto/server/eval"
	"github.com/sostenuto/sostenuto/server/ingest"
)

// evalConfig is `sostenuto eval`'s configuration.
type evalConfig struct {
	log      logConfig
	db       dbConfig
	ingest   ingestConfig
	fusion   fusionConfig
	rerank   rerankConfig
	docs     string
	queries  string
	qrels    string
	k        int64
	feedback string
	apiURL   string
	apiToken string
}

func (c *evalConfig) settings() []setting {
	s := append(c.log.settings(), c.db.settings()...)
	for _, x := range c.ingest.settings() { // the embedder and the chunker
		if strings.HasPrefix(x.name, "embed-") || strings.HasPrefix(x.name, "chunk-") {
			s = append(s, x)
		}
	}
	s = append(s, c.fusion.settings()...)
	for _, x := range c.rerank.settings() { // the reranker: hybrid+rerank joins the modes
		if x.name != "rerank-default" {
			s = append(s, x)
		}
	}
	return append(s,
		setting{name: "docs", env: "SOSTENUTO_EVAL_DOCS", usage: "documents: a directory (one per file), a CISI/SMART file or a TREC file; unset: the knowledge base of --database-url", parse: stringVar(&c.docs)},
		setting{name: "queries", env: "SOSTENUTO_EVAL_QUERIES", usage: "queries: TREC topics, a CISI/SMART file, or id<TAB>text lines", parse: stringVar(&c.queries)},
		setting{name: "qrels", env: "SOSTENUTO_EVAL_QRELS", usage: "judgements: `qid 0 docid rel` lines (or CISI.REL)", parse: stringVar(&c.qrels)},
		setting{name: "k", env: "SOSTENUTO_EVAL_K", usage: "chunks ranked per query", def: "100", parse: intVar(&c.k, 1, 1000)},
		setting{name: "feedback-qrels", env: "SOSTENUTO_EVAL_FEEDBACK_QRELS", usage: "write collected chat feedback (GET /api/chat/feedback of --api-url) as judgements to this file, its questions to FILE.queries, and exit", parse: stringVar(&c.feedback)},
		setting{name: "api-url", env: "SOSTENUTO_EVAL_API_URL", usage: "base URL of a node (for --feedback-qrels)", parse: stringVar(&c.apiURL)},
		setting{name: "api-token", env: "SOSTENUTO_EVAL_API_TOKEN", secret: true, usage: "an administrator's access token (for --feedback-qrels)", parse: stringVar(&c.apiToken)},
	)
}

// runEval measures retrieval on judged queries in every search mode (and
// hybrid+rerank when a reranker is configured), or
// turns chat feedback into judgements (--feedback-qrels).
func runEval(ctx context.Context, args, env []string, _ io.Reader, stdout, stderr io.Writer) error {
	var cfg evalConfig
	if err := loadSettings("eval", cfg.settings(), args, env, stderr); err != nil {
		return err
	}
	if cfg.feedback != "" {
		return cfg.writeFeedback(ctx, stdout)
	}
	if cfg.queries == "" || cfg.qrels == "" {
		return &configError{setting: "SOSTENUTO_EVAL_QUERIES", err: errors.New("--queries and --qrels are needed (or --feedback-qrels)")}
	}
	run, err := cfg.prepare(ctx, stdout)
	if err != nil {
		return err
	}
	results, err := eval.Run(ctx, run)
	if err != nil {
		return err
	}
	eval.WriteTable(stdout, results)
	return nil
}

// prepare reads the queries and judgements and builds the engine.
func (c *evalConfig) prepare(ctx context.Context, stdout io.Writer) (eval.Config, error) {
	qs, err := eval.ReadQueries(c.queries)
	if err != nil {
		return eval.Config{}, err
	}
	qrels, err := eval.ReadQrels(c.qrels)
	if err != nil {
		return eval.Config{}, err
	}
	emb, err := c.ingest.embedder()
	if err != nil {
		return eval.Config{}, err
	}
	defaults, err := c.fusion.defaults()
	if err != nil {
		return eval.Config{}, err
	}
	rr, err := c.rerank.reranker()
	if err != nil {
		return eval.Config{}, err
	}
	start := time.Now()
	e, keys, err := c.engine(ctx)
	if err != nil {
		return eval.Config{}, err
	}
	fmt.Fprintf(stdout, "%d chunks indexed in %s; %d queries, %d judged; embedder %s\n\n", e.Len(), time.Since(start).Round(time.Millisecond),
		len(qs), len(qrels.Judged(qs)), emb.Model())
	cfg := eval.Config{Engine: e, Embedder: emb, Queries: qs, Qrels: qrels, K: int(c.k),
		Modes: eval.Modes(defaults.For(emb.Model()), rr != nil), DocKeys: keys}
	if rr != nil {
		cfg.Reranker = &eval.PassageRerank{Scorer: rr, TopN: int(c.rerank.topN)}
	}
	return cfg, nil
}

// engine indexes --docs, or loads the knowledge base from PostgreSQL as a
// node does.
func (c *evalConfig) engine(ctx context.Context) (*index.Engine, func(*index.Chunk) []string, error) {
	if c.docs == "" {
		url, err := c.db.resolveURL()
		if err != nil {
			return nil, nil, err
		}
		e, err := replication.LoadBase(ctx, url, index.DefaultConfig())
		if err != nil {
			return nil, nil, fmt.Errorf("load the knowledge base: %w", err)
		}
		return e, eval.KnowledgeKeys, nil
	}
	docs, err := eval.ReadDocs(c.docs)
	if err != nil {
		return nil, nil, err
	}
	chunker, err := ingest.NewChunker(int(c.ingest.chunkTokens), int(c.ingest.chunkOverlap))
	if err != nil {
		return nil, nil, &configError{setting: envName("chunk-overlap"), err: err}
	}
	emb, err := c.ingest.embedder()
	if err != nil {
		return nil, nil, err
	}
	return eval.Build(ctx, docs, chunker, emb)
}

// writeFeedback writes the node's chat feedback as judgements and queries.
func (c *evalConfig) writeFeedback(ctx context.Context, stdout io.Writer) error {
	if c.apiURL == "" || c.apiToken == "" {
		return &configError{setting: "SOSTENUTO_EVAL_API_URL", err: errors.New("--feedback-qrels needs --api-url and --api-token")}
	}
	items, err := eval.FetchFeedback(ctx, &http.Client{Timeout: time.Minute}, c.apiURL, c.apiToken)
	if err != nil {
		return err
	}
	qs, qrels := eval.FeedbackJudgements(items)
	if err := writeFile(c.feedback, func(w *bufio.Writer) error { return qrels.Write(w) }); err != nil {
		return err
	}
	err = writeFile(c.feedback+".queries", func(w *bufio.Writer) error {
		for _, q := range qs {
			fmt.Fprintf(w, "%s\t%s\n", q.ID, q.Text)
		}
		return w.Flush()
	})
	if err == nil {
		fmt.Fprintf(stdout, "%d rated answers: %d queries written to %s and %s.queries\n", len(items), len(qs), c.feedback, c.feedback)
	}
	return err
}

func writeFile(path string, write func(*bufio.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(bufio.NewWriter(f)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

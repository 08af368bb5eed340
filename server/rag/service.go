package rag

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/search"
)

// Service answers questions from what the asker may see: the question
// embedded (cached per user), a hybrid search in the asker's scope, the
// hits' visibility checked again in PostgreSQL, passages deduplicated
// within a budget, the answerer, the confidence rule. Retrievals and
// answers are cached, keyed by the asker's scope and what the index holds.
type Service struct {
	searcher   search.Searcher
	index      Versioner
	store      Store
	teachers   search.Teachers
	embeddings *Embeddings
	answerer   Provider
	searches   *cache.Layer
	answers    *cache.Layer
	allow      []string
	llm        *prometheus.HistogramVec
	rewriter   Rewriter
	shape      string // the fusion and reranker, in every retrieval's key
	// recheckHits: kept retrievals are re-checked in PostgreSQL too;
	// behind: only while it reports true (nil: never).
	recheckHits bool
	behind      func() bool
}

// Versioner tells what the local index holds (its data version), and
// whether it answers at all: retrievals are cached only then.
type Versioner interface {
	Version() (version string, ok bool)
	// VersionAt is Version once the index holds lsn, after a bounded
	// wait; ok is false when it may not answer or did not get there.
	VersionAt(ctx context.Context, lsn index.LSN) (version string, ok bool)
}

// Store is what the service reads of the database.
type Store interface {
	search.Teachers
	// VisibleChunks reports which of ids user may see now.
	VisibleChunks(ctx context.Context, user uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]bool, error)
	// SessionVisibleChunks is VisibleChunks that also reads, in the same
	// round trip (even with no ids), whether user's login session sid is
	// live and the user's role.
	SessionVisibleChunks(ctx context.Context, user, sid uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]bool, string, bool, error)
}

// Config holds a Service's parts.
type Config struct {
	Searcher search.Searcher
	Index    Versioner
	Store    Store
	// Teachers resolves scopes (a search.ScopeCache); nil: Store.
	Teachers   search.Teachers
	Embeddings *Embeddings
	Answerer   Provider
	// Searches and Answers are the cache layers (nil: no caching).
	Searches, Answers *cache.Layer
	// Allow lists the hosts answers may link to (see Sanitize).
	Allow []string
	// LLM times each answer, by model and outcome (ok, error); nil: not.
	LLM *prometheus.HistogramVec
	// Rewriter makes follow-ups standalone (nil: the built-in Rule).
	Rewriter Rewriter
	// Fusion is how Searcher fuses the service's searches (which name
	// none: the node's default), and Reranker names its rerank stage
	// (search.Rerank.Identity; "" none): both are part of every
	// retrieval's key, and so of its answer's key and tag, so that nodes
	// configured otherwise never share them.
	Fusion   index.Fusion
	Reranker string
	// RecheckHits re-checks every kept retrieval's chunks in PostgreSQL
	// before use (one round trip per hit): a document hidden is dropped
	// from cached answers at its commit rather than once the index applies
	// it (within its lag bound). Off: a hit costs no round trip.
	RecheckHits bool
	// Behind, when set, reports whether the local index has yet to apply
	// a write this node acknowledged (its X-Index-LSN); a hit is then
	// re-checked in PostgreSQL as with RecheckHits.
	Behind func() bool
}

// NewService returns the service.
func NewService(cfg Config) *Service {
	s := &Service{searcher: cfg.Searcher, index: cfg.Index, store: cfg.Store, embeddings: cfg.Embeddings,
		answerer: cfg.Answerer, searches: cfg.Searches, answers: cfg.Answers, allow: cfg.Allow, llm: cfg.LLM,
		rewriter: cfg.Rewriter, shape: "fusion=" + cfg.Fusion.String() + " reranker=" + cfg.Reranker, recheckHits: cfg.RecheckHits, behind: cfg.Behind}
	if s.teachers = cfg.Teachers; s.teachers == nil {
		s.teachers = cfg.Store
	}
	if s.rewriter == nil {
		if rule, err := NewRule(); err == nil { // the analyzer is compiled in
			s.rewriter = rule
		}
	}
	return s
}

// Question is what is asked: the text, how many hits to retrieve, the
// earlier turns of its session, oldest first (none outside a session), and
// whether to rerank the hits (search.Rerank).
type Question struct {
	Text    string
	K       int
	History []Turn
	Rerank  bool
	// Kinds and ProjectID limit what is searched (search.Query's).
	Kinds     []string
	ProjectID *uuid.UUID
	// MinLSN: the retrieval (and any kept answer) is of an index that
	// applied this changefeed position, as search's min_lsn (0: none).
	MinLSN index.LSN
	// Asker, when set and not Confirmed, is confirmed in PostgreSQL
	// before anything is emitted (session.go); nil: the caller
	// authenticated the asker in full.
	Asker *Pending
}

// Source is a passage an answer may cite as [n]: a knowledge document's
// (DocumentID) or an annotation's (ProjectID, AnnotationID, AuthorID; Page
// is the annotation's page, Title its project's; DocumentID is the
// project's too, so every source names the document it is on).
type Source struct {
	N          int       `json:"n"`
	DocumentID uuid.UUID `json:"document_id"`
	Title      string    `json:"title"`
	Page       int       `json:"page"`
	Snippet    string    `json:"snippet"`
	Score      float64   `json:"score"`
	// Kind is search.KindKnowledge or search.KindAnnotation.
	Kind         string     `json:"kind"`
	ProjectID    *uuid.UUID `json:"project_id,omitempty"`
	AnnotationID *uuid.UUID `json:"annotation_id,omitempty"`
	AuthorID     *uuid.UUID `json:"author_id,omitempty"`
}

// Timings are the stages of an answer, in milliseconds.
type Timings struct {
	EmbedMs  int64 `json:"embed_ms"`
	SearchMs int64 `json:"search_ms"`
	LLMMs    int64 `json:"llm_ms"`
}

// Reply is an answer as the API gives it.
type Reply struct {
	Content string `json:"content"`
	// StandaloneQuery is what was searched and answered: the question,
	// made standalone from its session's earlier turns.
	StandaloneQuery string   `json:"standalone_query"`
	Sources         []Source `json:"sources"`
	Confidence      string   `json:"confidence"`
	Model           string   `json:"model"`
	Cached          bool     `json:"cached"`
	Timings         Timings  `json:"timings"`
	// Reranked, present when a rerank was asked, says whether the
	// passages are in the reranker's order; when false, RerankError says
	// why the fused order was kept.
	Reranked    *bool  `json:"reranked,omitempty"`
	RerankError string `json:"rerank_error,omitempty"`
	// EmbeddingModel is the embedding model whose vectors retrieved the
	// sources ("" when BM25 alone did).
	EmbeddingModel string `json:"embedding_model,omitempty"`
	// Kept: the reply is the one cached under its key (an answer of the
	// configured model, not a fallback's), so it may be revalidated.
	Kept bool `json:"-"`
}

// Emitter hears an answer as it is produced.
type Emitter interface {
	// Retrieved hears the sources once retrieval is done, before anything
	// is answered, with the answer's cache key ("" when answers are not
	// cached: the index does not answer). An error it returns ends Ask and
	// is returned as is.
	Retrieved(sources []Source, key string) error
	// Delta hears the answer's text as it is produced, sanitized.
	Delta(text string) error
}

// ErrDelivery wraps an Emitter's failure to take a cached answer's text.
var ErrDelivery = errors.New("rag: the answer could not be delivered")

// Ask answers q in scope. The answerer's failures (an Emitter's Delta
// failing included) wrap fault.ErrLanguageModel.
func (s *Service) Ask(ctx context.Context, q Question, scope search.Scope, emit Emitter) (Reply, error) {
	var t Timings
	q.Text = s.standalone(ctx, q)
	got, key, err := s.retrieve(ctx, q, scope, &t)
	if err != nil {
		return Reply{}, err
	}
	if err := s.confirm(ctx, q.Asker); err != nil { // a kept retrieval: no re-check made
		return Reply{}, err
	}
	answerKey := ""
	if key != "" {
		answerKey = cache.Key("answer", key, s.Model())
	}
	if err := emit.Retrieved(got.Sources, answerKey); err != nil {
		return Reply{}, err
	}
	delta := func(d string) error { return emit.Delta(Sanitize(d, s.allow)) }
	var kept Reply
	if answerKey != "" && s.answers.Get(ctx, answerKey, &kept) && kept.Content != "" {
		kept.Cached, kept.Timings, kept.Kept, kept.StandaloneQuery = true, t, true, q.Text
		if err := delta(kept.Content); err != nil {
			return Reply{}, fmt.Errorf("%w: %w", ErrDelivery, err)
		}
		return kept, nil
	}
	return s.answer(ctx, q, got, answerKey, t, delta)
}

// rerankStatus sets what came of a requested rerank on a reply.
func (r *Reply) rerankStatus(st *search.RerankStatus) {
	if st != nil {
		r.Reranked, r.RerankError = &st.Reranked, st.Error
	}
}

// answer runs the answerer and caches its answer under key (unless a
// fallback wrote it).
func (s *Service) answer(ctx context.Context, q Question, got retrieved, key string, t Timings, delta func(string) error) (Reply, error) {
	model := s.Model()
	start := time.Now()
	ans, err := s.answerer.Answer(ctx, Request{Question: q.Text, Passages: got.Passages}, delta)
	t.LLMMs = time.Since(start).Milliseconds()
	s.observe(model, err, time.Since(start))
	if err != nil {
		return Reply{}, fmt.Errorf("rag: answer: %w: %w", fault.ErrLanguageModel, err)
	}
	out := Reply{Content: Sanitize(ans.Content, s.allow), StandaloneQuery: q.Text, Sources: got.Sources,
		Confidence: Confidence(ans, got.Passages), Model: ans.Model, Timings: t, EmbeddingModel: got.EmbeddingModel}
	out.rerankStatus(got.Rerank)
	if key != "" && ans.Model == model {
		s.answers.Set(ctx, key, out)
		out.Kept = true
	}
	return out, nil
}

// standalone is the question made standalone from its session's earlier
// turns (the question itself outside a session).
func (s *Service) standalone(ctx context.Context, q Question) string {
	if len(q.History) == 0 || s.rewriter == nil {
		return q.Text
	}
	out, err := s.rewriter.Rewrite(ctx, q.History, q.Text)
	if err != nil || strings.TrimSpace(out) == "" {
		return q.Text
	}
	return strings.TrimSpace(out)
}

// observe times one answer.
func (s *Service) observe(model string, err error, d time.Duration) {
	if s.llm == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	s.llm.WithLabelValues(model, outcome).Observe(d.Seconds())
}

// Model names the configured answerer (part of answer keys).
func (s *Service) Model() string {
	if m, ok := s.answerer.(interface{ Model() string }); ok {
		return m.Model()
	}
	return fmt.Sprintf("%T", s.answerer)
}

package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
)

// Search sources.
const (
	SourceLocal    = "local"
	SourcePostgres = "postgres"
)

func (s *Server) searchRoutes(r chi.Router) {
	r.Post("/search", s.search)
}

type searchRequest struct {
	Query  string `json:"query"`
	K      *int   `json:"k"`
	Mode   string `json:"mode"`
	MinLSN string `json:"min_lsn"`
}

// SearchHit is one result of POST /api/search.
type SearchHit struct {
	ChunkID    uuid.UUID `json:"chunk_id"`
	DocumentID uuid.UUID `json:"document_id"`
	Title      string    `json:"title"`
	PageStart  int       `json:"page_start"`
	PageEnd    int       `json:"page_end"`
	Text       string    `json:"text"`
	Score      float64   `json:"score"`
	VectorRank *int      `json:"vector_rank"`
	BM25Rank   *int      `json:"bm25_rank"`
}

// SearchIndex says who answered: the node, the changefeed position its
// answer reflects, and whether it came from the node's memory or from
// PostgreSQL.
type SearchIndex struct {
	Node   string `json:"node"`
	LSN    string `json:"lsn"`
	Source string `json:"source"`
	// Lagging marks an answer from an index that is catching up, given
	// while PostgreSQL was too busy to answer (it may miss the last
	// seconds' changes; never the caller's min_lsn).
	Lagging bool `json:"lagging,omitempty"`
}

type searchResponse struct {
	Results []SearchHit `json:"results"`
	Index   SearchIndex `json:"index"`
}

// query limits
const (
	maxQueryChars = 2000
	maxK          = 50
	defaultK      = 10
	searchDepth   = 50 // how deep each list goes before fusion
)

// SearchParams is a validated search.
type SearchParams struct {
	Query  string
	K      int
	Mode   string
	MinLSN uint64
	// Use labels the search's metrics: search (the endpoint) or chat.
	Use string
}

func (in searchRequest) validate() (SearchParams, error) {
	var errs []FieldError
	p := SearchParams{Query: strings.TrimSpace(in.Query), K: defaultK, Mode: in.Mode}
	if n := utf8.RuneCountInString(p.Query); n < 1 || n > maxQueryChars {
		errs = append(errs, FieldError{"query", fmt.Sprintf("must be 1 to %d characters", maxQueryChars)})
	}
	if in.K != nil {
		p.K = *in.K
		if p.K < 1 || p.K > maxK {
			errs = append(errs, FieldError{"k", fmt.Sprintf("must be 1 to %d", maxK)})
		}
	}
	if p.Mode == "" {
		p.Mode = index.ModeHybrid
	}
	if p.Mode != index.ModeHybrid && p.Mode != index.ModeVector && p.Mode != index.ModeBM25 {
		errs = append(errs, FieldError{"mode", "must be hybrid, vector or bm25"})
	}
	if in.MinLSN != "" {
		lsn, err := ParseLSN(in.MinLSN)
		if err != nil {
			errs = append(errs, FieldError{"min_lsn", "must be a position like 0/1A2B3C4 (from index_lsn or X-Index-LSN)"})
		}
		p.MinLSN = lsn
	}
	if len(errs) > 0 {
		return p, Invalid("the search has invalid fields", errs...)
	}
	return p, nil
}

func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	var in searchRequest
	if err := DecodeJSON(w, r, s.bodyLimit(queryBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	p, err := in.validate()
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	ctx, u := r.Context(), actor(r)
	var (
		etag     string
		teachers []uuid.UUID
	)
	e, err := s.engineAt(ctx, p.MinLSN)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if e != nil {
		scope, ts, err := s.scopeKey(ctx, u.ID, u.IsAdmin())
		if err != nil {
			s.WriteError(w, r, err)
			return
		}
		teachers = ts
		etag = etagOf("search", s.cfg.NodeID, scope, e.DataVersion(), s.embedder.Model(), p.Query, strconv.Itoa(p.K), p.Mode)
		if notModified(w, r, etag) {
			return
		}
	}
	res, err := s.runSearch(ctx, u.ID, u.IsAdmin(), p, e, teachers)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if etag != "" && res.Index.Source == SourceLocal {
		setValidator(w, etag)
	} else {
		noStore(w)
	}
	WriteJSON(w, http.StatusOK, res)
}

// runSearch answers from e, the local engine when it holds min_lsn (the
// caller waited a bounded time for it; teachers are the caller's), else
// from PostgreSQL, which always holds every committed write.
func (s *Server) runSearch(ctx context.Context, user uuid.UUID, admin bool, p SearchParams, e *index.Engine, teachers []uuid.UUID) (searchResponse, error) {
	var vec []float32
	if p.Mode != index.ModeBM25 {
		vs, err := s.embedder.Embed(ctx, []string{p.Query})
		if errors.Is(err, embed.ErrEmpty) {
			// Nothing to embed (punctuation only): nothing matches.
			return searchResponse{Results: []SearchHit{}, Index: SearchIndex{Node: s.cfg.NodeID, Source: SourcePostgres}}, nil
		}
		if err != nil {
			return searchResponse{}, fmt.Errorf("search: embed query: %w", &upstreamError{service: "the embedding model", err: err})
		}
		vec = vs[0]
	}
	if e != nil {
		return s.searchLocal(ctx, e, user, admin, p, vec, teachers, true)
	}
	return s.searchFallback(ctx, user, admin, p, vec)
}

// fallbackWait bounds the wait for a PostgreSQL search slot.
const fallbackWait = 250 * time.Millisecond

// errFallbackBusy: every PostgreSQL search slot stayed taken.
var errFallbackBusy = errors.New("search: the database is busy with other searches")

// searchFallback answers when the index is not ready: from PostgreSQL
// when a search slot frees up in time; otherwise from the index as it is,
// if it holds a complete base and the caller's min_lsn (the answer says
// "lagging": it may miss changes of the last seconds, never the caller's
// own acknowledged writes); otherwise 503.
func (s *Server) searchFallback(ctx context.Context, user uuid.UUID, admin bool, p SearchParams, vec []float32) (searchResponse, error) {
	res, err := s.searchPostgres(ctx, user, p, vec)
	if !errors.Is(err, errFallbackBusy) {
		return res, err
	}
	if s.engine != nil && s.engineBased != nil && s.engineBased() {
		if e := s.engine.Engine(); e.Position().LSN >= p.MinLSN {
			s.metrics.limited.WithLabelValues("fallback_lagging").Inc()
			res, err := s.searchLocal(ctx, e, user, admin, p, vec, nil, false)
			res.Index.Lagging = true
			return res, err
		}
	}
	s.metrics.limited.WithLabelValues("fallback").Inc()
	return searchResponse{}, NewProblem(http.StatusServiceUnavailable, CodeUnavailable,
		"the search index is catching up and the database is busy with other searches; retry in a second")
}

// localEngine returns the engine when it is ready and holds minLSN (after
// a bounded wait), nil otherwise: the caller answers from PostgreSQL.
func (s *Server) localEngine(ctx context.Context, minLSN uint64) *index.Engine {
	e, _ := s.engineAt(ctx, minLSN)
	return e
}

// tooManyWaiting: every read-your-writes wait slot is taken.
func tooManyWaiting() error {
	return NewProblem(http.StatusServiceUnavailable, CodeUnavailable,
		"too many searches are waiting for this node's index to catch up; retry in a second")
}

// engineAt returns the engine when it is ready and holds minLSN, waiting
// up to MinLSNWait for the applier to reach it (woken by the applier, not
// polled); nil when it is not ready or did not get there in time (the
// caller answers from PostgreSQL). At most Limits.MaxLSNWaiters requests
// wait at once; past that, tooManyWaiting (503 with Retry-After).
func (s *Server) engineAt(ctx context.Context, minLSN uint64) (*index.Engine, error) {
	if s.engine == nil || !s.engineReady() {
		return nil, nil
	}
	if e := s.engine.Engine(); e.Position().LSN >= minLSN {
		return e, nil
	}
	select {
	case s.waiters <- struct{}{}:
		defer func() { <-s.waiters }()
	default:
		s.metrics.limited.WithLabelValues("lsn_wait").Inc()
		return nil, tooManyWaiting()
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.MinLSNWait)
	defer cancel()
	e, err := s.engine.WaitApplied(wctx, minLSN)
	if err != nil {
		return nil, nil
	}
	return e, nil
}

// searchLocal searches the engine in user's scope; teachers, when known
// (the caller read them already), are the user's teachers.
func (s *Server) searchLocal(ctx context.Context, e *index.Engine, user uuid.UUID, admin bool, p SearchParams, vec []float32, teachers []uuid.UUID, known bool) (searchResponse, error) {
	if !known {
		var err error
		if teachers, err = s.store.TeachersOf(ctx, user); err != nil {
			return searchResponse{}, err
		}
	}
	scope := index.Scope{User: index.ID(user), Admin: admin}
	for _, t := range teachers {
		scope.Teachers = append(scope.Teachers, index.ID(t))
	}
	var tm index.Timings
	hits, err := e.Search(index.Query{Text: p.Query, Vector: vec, K: p.K, Mode: p.Mode, Scope: scope, Timings: &tm})
	if err != nil {
		return searchResponse{}, err
	}
	use := p.Use
	if use == "" {
		use = "search"
	}
	if p.Mode != index.ModeBM25 {
		s.metrics.vector.WithLabelValues(use).Observe(tm.Vector.Seconds())
	}
	if p.Mode != index.ModeVector {
		s.metrics.bm25.WithLabelValues(use).Observe(tm.Text.Seconds())
	}
	out := make([]SearchHit, len(hits))
	for i, h := range hits {
		out[i] = SearchHit{ChunkID: uuid.UUID(h.Chunk.ID), DocumentID: uuid.UUID(h.Chunk.DocumentID), Title: h.Chunk.Title,
			PageStart: h.Chunk.PageStart, PageEnd: h.Chunk.PageEnd, Text: h.Chunk.Text, Score: h.Score,
			VectorRank: rankPtr(h.VectorRank), BM25Rank: rankPtr(h.BM25Rank)}
	}
	return searchResponse{Results: out, Index: SearchIndex{Node: s.cfg.NodeID, LSN: FormatLSN(e.Position().LSN), Source: SourceLocal}}, nil
}

func (s *Server) searchPostgres(ctx context.Context, user uuid.UUID, p SearchParams, vec []float32) (searchResponse, error) {
	// Searching PostgreSQL costs it far more than the index costs this
	// node: while the index catches up, a few at a time, and the rest are
	// told to come back rather than queue (a queue here is what turns a
	// short outage into a long one).
	wait := time.NewTimer(fallbackWait)
	defer wait.Stop()
	select {
	case s.fallback <- struct{}{}:
		defer func() { <-s.fallback }()
	case <-wait.C:
		return searchResponse{}, errFallbackBusy
	case <-ctx.Done():
		return searchResponse{}, ctx.Err()
	}
	lsn, err := s.store.WALPosition(ctx)
	if err != nil {
		return searchResponse{}, err
	}
	if cur, err := ParseLSN(lsn); err == nil && p.MinLSN > cur {
		return searchResponse{}, NewProblem(http.StatusServiceUnavailable, CodeUnavailable,
			fmt.Sprintf("min_lsn %s is ahead of the database (at %s): no write of this deployment reached it", FormatLSN(p.MinLSN), lsn))
	}
	depth := max(p.K, searchDepth)
	var lists [2][]index.ID
	if p.Mode != index.ModeBM25 {
		ids, err := s.store.SearchVector(ctx, user, vec, depth, 2*depth)
		if err != nil {
			return searchResponse{}, err
		}
		lists[0] = toIndexIDs(ids)
	}
	if p.Mode != index.ModeVector {
		ids, err := s.store.SearchText(ctx, user, p.Query, depth)
		if err != nil {
			return searchResponse{}, err
		}
		lists[1] = toIndexIDs(ids)
	}
	fused := index.RRF(60, nil, lists[0], lists[1])
	if len(fused) > p.K {
		fused = fused[:p.K]
	}
	ids := make([]uuid.UUID, len(fused))
	for i, f := range fused {
		ids[i] = uuid.UUID(f.ID)
	}
	rows, err := s.store.SearchChunks(ctx, user, ids)
	if err != nil {
		return searchResponse{}, err
	}
	out := make([]SearchHit, 0, len(fused))
	for _, f := range fused {
		c, ok := rows[uuid.UUID(f.ID)]
		if !ok {
			continue // deleted or hidden between the two reads
		}
		out = append(out, SearchHit{ChunkID: c.ID, DocumentID: c.DocumentID, Title: c.Title, PageStart: c.PageStart,
			PageEnd: c.PageEnd, Text: c.Text, Score: f.Score, VectorRank: rankPtr(f.Ranks[0]), BM25Rank: rankPtr(f.Ranks[1])})
	}
	return searchResponse{Results: out, Index: SearchIndex{Node: s.cfg.NodeID, LSN: lsn, Source: SourcePostgres}}, nil
}

func toIndexIDs(ids []uuid.UUID) []index.ID {
	out := make([]index.ID, len(ids))
	for i, id := range ids {
		out[i] = index.ID(id)
	}
	return out
}

func rankPtr(r int) *int {
	if r == 0 {
		return nil
	}
	return &r
}

// ParseLSN reads PostgreSQL's "X/Y" write-ahead-log position.
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("lsn %q: want X/Y", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("lsn %q: want X/Y in hexadecimal", s)
	}
	return h<<32 | l, nil
}

// FormatLSN writes a position as PostgreSQL does.
func FormatLSN(v uint64) string { return fmt.Sprintf("%X/%X", v>>32, uint32(v)) }

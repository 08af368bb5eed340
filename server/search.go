package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/search"
)

func (s *Server) searchRoutes(r chi.Router) {
	r.Post("/search", s.search)
}

type searchRequest struct {
	Query   string         `json:"query"`
	K       *int           `json:"k"`
	Mode    string         `json:"mode"`
	MinLSN  string         `json:"min_lsn"`
	Weights *searchWeights `json:"weights"`
	Fusion  string         `json:"fusion"`
	Rerank  *bool          `json:"rerank"`
	Kinds   []string       `json:"kinds"`
	Project *string        `json:"project_id"`
}

// searchWeights weigh the lists of a hybrid search; both are required.
type searchWeights struct {
	Vector *float64 `json:"vector"`
	BM25   *float64 `json:"bm25"`
}

// SearchHit is one result of POST /api/search.
type SearchHit = search.Hit

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
	// Reranked, present when a rerank was asked, says whether the hits
	// are in the reranker's order; when false, RerankError says why the
	// fused order was kept (timeout, unavailable, bad_response,
	// not_configured).
	Reranked    *bool  `json:"reranked,omitempty"`
	RerankError string `json:"rerank_error,omitempty"`
	// EmbeddingModel is the embedding model whose vectors answered: the
	// active model at LSN ("" when BM25 alone answered).
	EmbeddingModel string `json:"embedding_model,omitempty"`
}

type searchResponse struct {
	Results []SearchHit `json:"results"`
	Index   SearchIndex `json:"index"`
}

// Search sources, as SearchIndex names them.
const (
	SourceLocal    = search.SourceLocal
	SourcePostgres = search.SourcePostgres
)

// query limits
const (
	maxQueryChars = 2000
	maxK          = 50
	defaultK      = 10
)

func (in searchRequest) validate() (search.Query, error) {
	var errs []FieldError
	q := search.Query{Text: strings.TrimSpace(in.Query), K: defaultK, Mode: in.Mode}
	if n := utf8.RuneCountInString(q.Text); n < 1 || n > maxQueryChars {
		errs = append(errs, FieldError{"query", fmt.Sprintf("must be 1 to %d characters", maxQueryChars)})
	}
	if in.K != nil {
		q.K = *in.K
		if q.K < 1 || q.K > maxK {
			errs = append(errs, FieldError{"k", fmt.Sprintf("must be 1 to %d", maxK)})
		}
	}
	if q.Mode == "" {
		q.Mode = search.ModeHybrid
	}
	if q.Mode != search.ModeHybrid && q.Mode != search.ModeVector && q.Mode != search.ModeBM25 {
		errs = append(errs, FieldError{"mode", "must be hybrid, vector or bm25"})
	}
	errs = append(errs, in.fusion(&q)...)
	var bad *FieldError
	if q.Kinds, q.ProjectID, bad = parseKinds(in.Kinds, in.Project); bad != nil {
		errs = append(errs, *bad)
	}
	var lsnErr *FieldError
	if q.MinLSN, lsnErr = parseMinLSN(in.MinLSN); lsnErr != nil {
		errs = append(errs, *lsnErr)
	}
	if len(errs) > 0 {
		return q, Invalid("the search has invalid fields", errs...)
	}
	return q, nil
}

// parseKinds reads a search's or a question's kinds and project_id
// (API-CONTRACT "Search additions").
func parseKinds(kinds []string, project *string) ([]string, *uuid.UUID, *FieldError) {
	ks, err := search.ParseKinds(kinds)
	if err != nil {
		return nil, nil, &FieldError{"kinds", err.Error()}
	}
	if project == nil {
		return ks, nil, nil
	}
	id, err := uuid.Parse(*project)
	if err != nil {
		return nil, nil, &FieldError{"project_id", "must be a project id"}
	}
	return ks, &id, nil
}

// fusion reads the request's weights and fusion method into q.Fusion
// (its empty fields take the node's default later).
func (in searchRequest) fusion(q *search.Query) []FieldError {
	var errs []FieldError
	if in.Fusion != "" && in.Fusion != index.FusionConvex && in.Fusion != index.FusionRRF {
		errs = append(errs, FieldError{"fusion", "must be convex or rrf"})
	}
	q.Fusion.Method = in.Fusion
	if in.Weights == nil {
		return errs
	}
	if in.Weights.Vector == nil || in.Weights.BM25 == nil {
		return append(errs, FieldError{"weights", `must name both lists: {"vector":w,"bm25":w}`})
	}
	w := index.Weights{Vector: *in.Weights.Vector, BM25: *in.Weights.BM25}
	if err := w.Valid(); err != nil {
		return append(errs, FieldError{"weights", "must be finite numbers of at least 0, not both 0"})
	}
	q.Fusion.Weights = w
	return errs
}

// search answers a search in the caller's scope (search.Fallback: the
// local index, else PostgreSQL, else the lagging index). A local answer
// carries a tag the caller may revalidate; the tag is checked before
// anything is embedded or searched.
func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	var in searchRequest
	if err := DecodeJSON(w, r, s.bodyLimit(queryBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	q, err := in.validate()
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	q.Scope = search.Scope{User: actor(r).ID, Admin: actor(r).IsAdmin()}
	q.Fusion = search.Fill(q.Fusion, s.fusion)
	q.Rerank = s.rerankDefault(in.Rerank)
	etag := ""
	q.OnLocal = func(version string, scope search.Scope) error {
		etag = etagOf("search", s.cfg.NodeID, scope.Key(), version, s.embedder.Model(), q.Text, strconv.Itoa(q.K), q.Mode, q.Fusion.String(),
			strconv.FormatBool(q.Rerank), s.rerankID, search.KindsKey(q.Kinds, q.ProjectID))
		return ifNoneMatch(r, etag)
	}
	res, err := s.searcher.Search(r.Context(), q)
	switch {
	case errors.Is(err, errNotModified):
		writeNotModified(w, etag)
	case err != nil:
		s.WriteError(w, r, err)
	default:
		// A rerank that failed is not to be kept: the next one may succeed.
		revalidatable(w, etag, res.Source == search.SourceLocal && (res.Rerank == nil || res.Rerank.Reranked))
		WriteJSON(w, http.StatusOK, searchResponse{Results: res.Hits, Index: s.searchIndex(res)})
	}
}

// searchIndex says who answered res.
func (s *Server) searchIndex(res search.Result) SearchIndex {
	out := SearchIndex{Node: s.cfg.NodeID, LSN: res.LSN.String(), Source: res.Source, Lagging: res.Lagging, EmbeddingModel: res.Model}
	if res.Empty {
		out.LSN = ""
	}
	if res.Rerank != nil {
		out.Reranked, out.RerankError = &res.Rerank.Reranked, res.Rerank.Error
	}
	return out
}

// parseMinLSN reads a request's min_lsn ("": none).
func parseMinLSN(text string) (index.LSN, *FieldError) {
	if text == "" {
		return 0, nil
	}
	lsn, err := index.ParseLSN(text)
	if err != nil {
		return 0, &FieldError{"min_lsn", "must be a position like 0/1A2B3C4 (from index_lsn or X-Index-LSN)"}
	}
	return lsn, nil
}

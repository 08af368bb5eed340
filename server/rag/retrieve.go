package rag

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/search"
)

const (
	// contextBudget bounds the passages handed to the answerer (runes).
	contextBudget = 12000
	snippetRunes  = 240
)

// retrieved is what a retrieval found, and what the searches layer keeps.
type retrieved struct {
	Passages []Passage   `json:"passages"`
	Sources  []Source    `json:"sources"`
	ChunkIDs []uuid.UUID `json:"chunk_ids"` // re-checked on a hit when RecheckHits
	// Rerank is what came of a requested rerank (nil: none asked).
	Rerank *search.RerankStatus `json:"rerank,omitempty"`
	// EmbeddingModel is the model whose vectors answered ("" BM25 only).
	EmbeddingModel string `json:"embedding_model,omitempty"`
}

// retrieve finds the passages for a question: only chunks the asker may
// see, checked in the index and again in PostgreSQL, deduplicated and
// within the context budget, numbered from 1. key names the retrieval in
// the cache; "" when the index does not answer (PostgreSQL's answers are
// not cached). A kept retrieval is served as it was kept (cachedSearch).
func (s *Service) retrieve(ctx context.Context, q Question, scope search.Scope, t *Timings) (got retrieved, key string, err error) {
	start := time.Now()
	version, cachable := s.index.Version()
	if q.MinLSN != 0 {
		// A kept retrieval is used only from an index that holds MinLSN:
		// one kept before (a title since changed) has another version.
		version, cachable = s.index.VersionAt(ctx, q.MinLSN)
	}
	if cachable {
		if scope, err = scope.Resolve(ctx, s.teachers); err != nil {
			return got, "", err
		}
		key = cache.Key("search", scope.Key(), version, s.embeddings.Model(), cache.Normalize(q.Text), fmt.Sprint(q.K), fmt.Sprint(q.Rerank), s.shape,
			search.KindsKey(q.Kinds, q.ProjectID))
		if got, ok, err := s.cachedSearch(ctx, q.Asker, scope.User, key); err != nil || ok {
			t.SearchMs = time.Since(start).Milliseconds()
			return got, key, err
		}
	}
	res, err := s.search(ctx, q, scope, t)
	if err != nil {
		return got, "", err
	}
	start = time.Now()
	ids := make([]uuid.UUID, len(res.Hits))
	for i, h := range res.Hits {
		ids[i] = h.ChunkID
	}
	visible, err := s.visible(ctx, q.Asker, scope.User, ids)
	if err != nil {
		return got, "", fmt.Errorf("rag: re-check: %w", err)
	}
	t.SearchMs += time.Since(start).Milliseconds()
	got = assemble(res.Hits, visible)
	got.EmbeddingModel = res.Model
	if got.Rerank = res.Rerank; got.Rerank != nil && !got.Rerank.Reranked {
		key = "" // a failed rerank is neither kept nor answered from the cache: the next may succeed
	}
	if key != "" {
		s.searches.Set(ctx, key, got)
	}
	return got, key, nil
}

// cachedSearch is the retrieval kept at key, served without asking
// PostgreSQL: the key names the index's data version (and the asker's
// scope), so the retrieval was kept from an index holding exactly what the
// local one holds now, and its chunks were re-checked in PostgreSQL then.
// Whatever the index applied since (a document hidden or deleted, a grant
// or a relationship revoked) made another version: a miss, searched and
// re-checked afresh. What PostgreSQL changed and the index has not applied
// yet is at most the index's lag bound old (it answers only while ready),
// and a question whose min_lsn is at or past it waits for the index to
// apply it first (docs/SECURITY.md "Chat cache hits and the scope
// cache"). With RecheckHits, every hit is re-checked too (one round trip),
// and one holding a chunk hidden since is dropped with its answer; so is
// every hit while the local index is behind a write this node
// acknowledged (Behind).
func (s *Service) cachedSearch(ctx context.Context, asker *Pending, user uuid.UUID, key string) (retrieved, bool, error) {
	var hit retrieved
	if !s.searches.Get(ctx, key, &hit) {
		return hit, false, nil
	}
	if !s.recheckHits && (s.behind == nil || !s.behind()) {
		return hit, true, nil
	}
	visible, err := s.visible(ctx, asker, user, hit.ChunkIDs)
	if err != nil {
		return hit, false, fmt.Errorf("rag: re-check: %w", err)
	}
	if len(visible) == len(hit.ChunkIDs) {
		return hit, true, nil
	}
	s.answers.Set(ctx, cache.Key("answer", key, s.Model()), nil)
	return retrieved{}, false, nil
}

// search embeds the question (a question with no words searches BM25
// only) and searches in scope.
func (s *Service) search(ctx context.Context, q Question, scope search.Scope, t *Timings) (search.Result, error) {
	start := time.Now()
	mode := search.ModeHybrid
	vec, model, _, err := s.embeddings.EmbedModel(ctx, scope.User, q.Text)
	switch {
	case errors.Is(err, embed.ErrEmpty):
		mode, vec = search.ModeBM25, nil
	case err != nil:
		return search.Result{}, fmt.Errorf("rag: embed the question: %w", err)
	}
	t.EmbedMs = time.Since(start).Milliseconds()
	start = time.Now()
	res, err := s.searcher.Search(ctx, search.Query{Scope: scope, Text: q.Text, Vector: vec, K: q.K, Mode: mode, Use: "chat", Rerank: q.Rerank,
		Kinds: q.Kinds, ProjectID: q.ProjectID, MinLSN: q.MinLSN, Model: model})
	t.SearchMs = time.Since(start).Milliseconds()
	return res, err
}

// assemble keeps the visible hits, deduplicated (by their words) and
// within the context budget, as numbered passages and their sources.
func assemble(hits []search.Hit, visible map[uuid.UUID]bool) retrieved {
	got := retrieved{Passages: []Passage{}, Sources: []Source{}}
	for _, h := range hits {
		if visible[h.ChunkID] {
			got.ChunkIDs = append(got.ChunkIDs, h.ChunkID)
		}
	}
	seen := map[string]bool{}
	budget := contextBudget
	for _, h := range hits {
		if !visible[h.ChunkID] {
			continue // hidden or deleted since the index answered
		}
		key := strings.Join(strings.Fields(strings.ToLower(h.Text)), " ")
		if seen[key] {
			continue
		}
		n := utf8.RuneCountInString(h.Text)
		if n > budget {
			break
		}
		seen[key] = true
		budget -= n
		num := len(got.Passages) + 1
		got.Passages = append(got.Passages, Passage{N: num, Title: h.Title, Page: h.PageStart, Text: h.Text,
			VectorRank: deref(h.VectorRank), BM25Rank: deref(h.BM25Rank)})
		got.Sources = append(got.Sources, sourceOf(num, h))
	}
	return got
}

// sourceOf is hit h as the answer's source [n].
func sourceOf(n int, h search.Hit) Source {
	src := Source{N: n, DocumentID: h.DocumentID, Title: h.Title, Page: h.PageStart,
		Snippet: snippet(h.Text), Score: h.Score, Kind: h.Kind}
	if h.Kind == search.KindAnnotation {
		id := h.ChunkID
		src.ProjectID, src.AnnotationID, src.AuthorID = h.ProjectID, &id, h.AuthorID
	}
	return src
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// snippet is the start of a passage, for its source.
func snippet(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= snippetRunes {
		return s
	}
	return string(r[:snippetRunes-1]) + "…"
}

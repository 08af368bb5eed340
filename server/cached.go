package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/embed"
)

// embedCached embeds one text through the embeddings cache layer (keyed by
// the embedder's model and the normalized text). The embedder's failures
// are upstreamError: its answer never reaches the caller.
func (s *Server) embedCached(ctx context.Context, text string) (vec []float32, cached bool, err error) {
	key := cache.Key("embed", s.embedder.Model(), cache.Normalize(text))
	if s.caches.Embeddings.Get(ctx, key, &vec) {
		return vec, true, nil
	}
	vs, err := s.embedder.Embed(ctx, []string{text})
	if err != nil && !errors.Is(err, embed.ErrEmpty) && ctx.Err() == nil {
		return nil, false, &upstreamError{service: "the embedding model", err: err}
	}
	if err != nil {
		return nil, false, err
	}
	s.caches.Embeddings.Set(ctx, key, vs[0])
	return vs[0], false, nil
}

// scopeKey names what a user may see: the user, whether an administrator,
// and the teachers whose documents the user may read (also returned).
func (s *Server) scopeKey(ctx context.Context, user uuid.UUID, admin bool) (string, []uuid.UUID, error) {
	teachers, err := s.store.TeachersOf(ctx, user)
	if err != nil {
		return "", nil, err
	}
	ids := make([]string, len(teachers))
	for i, t := range teachers {
		ids[i] = t.String()
	}
	slices.Sort(ids)
	return fmt.Sprintf("%s|%t|%s", user, admin, strings.Join(ids, ",")), teachers, nil
}

// contentKey names what the local index holds (its data version: it
// changes with every applied change, not with keepalives); ok is false
// when searches answer from PostgreSQL, whose results are then not cached.
func (s *Server) contentKey(ctx context.Context) (key string, ok bool) {
	if e := s.localEngine(ctx, 0); e != nil {
		return e.DataVersion(), true
	}
	return "", false
}

var errNothingToEmbed = errors.New("nothing to embed")

// embedQuestion embeds a question through the cache; ErrEmpty (no words)
// is not an error: the search is then BM25 only.
func (s *Server) embedQuestion(ctx context.Context, q string) ([]float32, error) {
	vec, _, err := s.embedCached(ctx, q)
	if errors.Is(err, embed.ErrEmpty) {
		return nil, errNothingToEmbed
	}
	return vec, err
}

// Conditional answers. The JSON answers of POST /api/embeddings/generate,
// /api/search and /api/chat/query (without a session) carry a weak ETag
// built like the node's cache keys: the caller's visibility scope, what
// the local index holds (its data version, on this node: the node's id is
// part of the tag), the model and the request. A client (the edge) that
// kept an answer sends its tag in If-None-Match; the node computes the tag
// of a fresh answer without searching or answering and says 304 when they
// are equal, so a kept answer is served only while it is exactly what the
// node would answer now, and only to the user it was made for.

// etagOf makes a weak entity tag from parts.
func etagOf(parts ...string) string {
	k := cache.Key("etag", parts...)
	return `W/"` + k[len("etag:"):][:40] + `"`
}

// notModified answers 304 (with the tag) when the request's If-None-Match
// names etag.
func notModified(w http.ResponseWriter, r *http.Request, etag string) bool {
	if etag == "" || !blob.ETagMatch(r.Header.Get("If-None-Match"), etag) {
		return false
	}
	setValidator(w, etag)
	w.WriteHeader(http.StatusNotModified)
	return true
}

// setValidator marks an answer as revalidatable: private (per user), never
// used without asking (no-cache), with its tag.
func setValidator(w http.ResponseWriter, etag string) {
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Vary", "Authorization")
}

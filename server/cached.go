package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/embed"
)

// embedEntry is what the embeddings layer keeps: the vector and how long
// computing it took.
type embedEntry struct {
	Vec  []float32     `json:"vec"`
	Cost time.Duration `json:"cost"`
}

// maxSharedHitWait bounds how long a shared hit waits (a computation slowed
// by retries is not copied in full).
const maxSharedHitWait = 10 * time.Second

// embedCached embeds one text for user through the embeddings layer (keyed
// by the embedder's model and the normalized text, shared by all users, so
// a text is computed once). What the user observes depends only on what
// the user asked before: cached is true only when this user had this text
// embedded before (a per-user marker in the askers layer), and a vector
// computed for someone else is answered no sooner than computing it took,
// so neither the answer nor its timing tells that another user asked. The
// embedder's failures are upstreamError: its answer never reaches the caller.
func (s *Server) embedCached(ctx context.Context, user uuid.UUID, text string) (vec []float32, cached bool, err error) {
	model, norm := s.embedder.Model(), cache.Normalize(text)
	key, mine := cache.Key("embed", model, norm), cache.Key("asker", user.String(), model, norm)
	var hit embedEntry
	if s.caches.Embeddings.Get(ctx, key, &hit) && len(hit.Vec) > 0 {
		var asked bool
		if s.caches.Askers.Get(ctx, mine, &asked) && asked {
			return hit.Vec, true, nil
		}
		if err := sleepCtx(ctx, min(hit.Cost, maxSharedHitWait)); err != nil {
			return nil, false, err
		}
		s.caches.Askers.Set(ctx, mine, true)
		return hit.Vec, false, nil
	}
	start := time.Now()
	vs, err := s.embedder.Embed(ctx, []string{text})
	if err != nil && !errors.Is(err, embed.ErrEmpty) && ctx.Err() == nil {
		return nil, false, &upstreamError{service: "the embedding model", err: err}
	}
	if err != nil {
		return nil, false, err
	}
	s.caches.Embeddings.Set(ctx, key, embedEntry{Vec: vs[0], Cost: time.Since(start)})
	s.caches.Askers.Set(ctx, mine, true)
	return vs[0], false, nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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

// embedQuestion embeds user's question through the cache; ErrEmpty (no
// words) is not an error: the search is then BM25 only.
func (s *Server) embedQuestion(ctx context.Context, user uuid.UUID, q string) ([]float32, error) {
	vec, _, err := s.embedCached(ctx, user, q)
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

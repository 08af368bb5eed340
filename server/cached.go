package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/embed"
)

// embedCached embeds one text through the embeddings cache layer (keyed by
// the embedder's model and the normalized text).
func (s *Server) embedCached(ctx context.Context, text string) (vec []float32, cached bool, err error) {
	key := cache.Key("embed", s.embedder.Model(), cache.Normalize(text))
	if s.caches.Embeddings.Get(ctx, key, &vec) {
		return vec, true, nil
	}
	vs, err := s.embedder.Embed(ctx, []string{text})
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

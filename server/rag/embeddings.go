package rag

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/fault"
)

// Embedder is the model that embeds texts.
type Embedder interface {
	Model() string
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// Embeddings embeds texts for users through two cache layers: the
// vectors, keyed by the model and the normalized text and shared by all
// users (a text is computed once), and per-user markers of the texts each
// user had embedded (askers).
type Embeddings struct {
	embedder       Embedder
	vectors, asked *cache.Layer
}

// NewEmbeddings returns the embedder behind its caches (nil layers: none).
func NewEmbeddings(e Embedder, vectors, askers *cache.Layer) *Embeddings {
	return &Embeddings{embedder: e, vectors: vectors, asked: askers}
}

// embedEntry is what the vectors layer keeps: the vector and how long
// computing it took.
type embedEntry struct {
	Vec  []float32     `json:"vec"`
	Cost time.Duration `json:"cost"`
}

// maxSharedHitWait bounds how long a shared hit waits (a computation slowed
// by retries is not copied in full).
const maxSharedHitWait = 10 * time.Second

// Model names the embedding model.
func (x *Embeddings) Model() string { return x.embedder.Model() }

// Embed embeds one text for user. What the user observes depends only on
// what the user asked before: cached is true only when this user had this
// text embedded before, and a vector computed for someone else is
// answered no sooner than computing it took, so neither the answer nor its
// timing tells that another user asked. A text with no words is
// embed.ErrEmpty; the model's failures wrap fault.ErrEmbeddingModel.
func (x *Embeddings) Embed(ctx context.Context, user uuid.UUID, text string) (vec []float32, cached bool, err error) {
	vec, _, cached, err = x.EmbedModel(ctx, user, text)
	return vec, cached, err
}

// namedEmbedder says which model made its vectors (embed.Active).
type namedEmbedder interface {
	EmbedNamed(ctx context.Context, texts []string) ([][]float32, string, error)
}

// EmbedModel is Embed that names the model that made the vector: the
// active one when the embedder follows the index's (a vector computed
// while the model switched is not cached under the old name).
func (x *Embeddings) EmbedModel(ctx context.Context, user uuid.UUID, text string) (vec []float32, model string, cached bool, err error) {
	model, norm := x.embedder.Model(), cache.Normalize(text)
	key, mine := cache.Key("embed", model, norm), cache.Key("asker", user.String(), model, norm)
	var hit embedEntry
	if x.vectors.Get(ctx, key, &hit) && len(hit.Vec) > 0 {
		var asked bool
		if x.asked.Get(ctx, mine, &asked) && asked {
			return hit.Vec, model, true, nil
		}
		if err := sleepCtx(ctx, min(hit.Cost, maxSharedHitWait)); err != nil {
			return nil, "", false, err
		}
		x.asked.Set(ctx, mine, true)
		return hit.Vec, model, false, nil
	}
	start := time.Now()
	vs, got, err := x.compute(ctx, model, text)
	if err != nil && !errors.Is(err, embed.ErrEmpty) && ctx.Err() == nil {
		return nil, "", false, fmt.Errorf("rag: embed: %w: %w", fault.ErrEmbeddingModel, err)
	}
	if err != nil {
		return nil, "", false, err
	}
	if got == model {
		x.vectors.Set(ctx, key, embedEntry{Vec: vs[0], Cost: time.Since(start)})
		x.asked.Set(ctx, mine, true)
	}
	return vs[0], got, false, nil
}

// compute embeds text, naming the model that did (model, unless the
// embedder names another).
func (x *Embeddings) compute(ctx context.Context, model, text string) ([][]float32, string, error) {
	if ne, ok := x.embedder.(namedEmbedder); ok {
		return ne.EmbedNamed(ctx, []string{text})
	}
	vs, err := x.embedder.Embed(ctx, []string{text})
	return vs, model, err
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

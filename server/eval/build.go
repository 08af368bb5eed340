package eval

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/ingest"
)

// namespace derives the engine's ids from the collection's.
var namespace = uuid.MustParse("5e2f4a8c-3b1d-4c6e-9f70-1a2b3c4d5e6f")

// Build indexes docs in a fresh engine as ingestion would: each text
// chunked by chunker and embedded by emb, its title searched with it. It
// returns the engine and the document keys of its chunks (the
// collection's ids).
func Build(ctx context.Context, docs []Doc, chunker *ingest.Chunker, emb embed.Embedder) (*index.Engine, func(*index.Chunk) []string, error) {
	e, err := index.New(index.DefaultConfig())
	if err != nil {
		return nil, nil, fmt.Errorf("eval: %w", err)
	}
	owner := index.ID(uuid.NewSHA1(namespace, []byte("owner")))
	keys := map[index.ID]string{}
	for start := 0; start < len(docs); start += 200 {
		var ops index.Ops
		for _, d := range docs[start:min(start+200, len(docs))] {
			chunks, err := docChunks(ctx, d, chunker, emb, owner)
			if err != nil {
				return nil, nil, err
			}
			ops.Upserts = append(ops.Upserts, chunks...)
			if len(chunks) > 0 {
				keys[chunks[0].DocumentID] = d.ID
			}
		}
		if err := e.Apply(ops); err != nil {
			return nil, nil, fmt.Errorf("eval: index: %w", err)
		}
	}
	return e, func(c *index.Chunk) []string { return []string{keys[c.DocumentID]} }, nil
}

// docChunks chunks and embeds one document.
func docChunks(ctx context.Context, d Doc, chunker *ingest.Chunker, emb embed.Embedder, owner index.ID) ([]index.Chunk, error) {
	text := d.Text
	if text == "" {
		text = d.Title
	}
	parts := chunker.Split([]ingest.Segment{{Text: text, Page: 1}})
	texts := make([]string, len(parts))
	for i, p := range parts {
		texts[i] = p.Text
	}
	if len(texts) == 0 {
		return nil, nil
	}
	vecs, err := embed.Batched(ctx, emb, texts, nil)
	if err != nil {
		return nil, fmt.Errorf("eval: embed document %s: %w", d.ID, err)
	}
	docID := uuid.NewSHA1(namespace, []byte(d.ID))
	out := make([]index.Chunk, len(parts))
	for i, p := range parts {
		out[i] = index.Chunk{ID: index.ID(uuid.NewSHA1(docID, []byte(fmt.Sprint(i)))), DocumentID: index.ID(docID), OwnerID: owner,
			Title: d.Title, Text: p.Text, PageStart: 1, PageEnd: 1, Version: 1, Vector: vecs[i]}
	}
	return out, nil
}

// KnowledgeKeys names a chunk of a deployment's knowledge base by its
// document's UUID and its title (judgements may use either).
func KnowledgeKeys(c *index.Chunk) []string {
	return []string{uuid.UUID(c.DocumentID).String(), c.Title}
}

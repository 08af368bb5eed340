package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/store"
)

// AnnotationIndex handles store.AnnotationIndexJob: it embeds the
// annotation's searchable text as it is now and writes its chunk (if the
// annotation is still at the version read); retried while the embedder
// fails. An annotation deleted meanwhile needs nothing.
func AnnotationIndex(st *store.Store, active func(context.Context) (embed.Embedder, string, error)) Handler {
	return func(ctx context.Context, job store.Job) error {
		var p store.AnnotationIndexPayload
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return fmt.Errorf("%w: bad payload", ErrPermanent)
		}
		a, err := st.AnnotationToIndex(ctx, p.AnnotationID)
		if errors.Is(err, fault.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		text := store.SearchableText(a.Type, a.Content)
		if text == "" {
			return st.IndexAnnotation(ctx, a, store.ModelVec{})
		}
		emb, model, err := active(ctx)
		if err != nil {
			return fmt.Errorf("jobs: embed annotation: %w", err)
		}
		vs, err := emb.Embed(ctx, []string{text})
		if err != nil {
			return fmt.Errorf("jobs: embed annotation: %w", err)
		}
		if len(vs) != 1 || vs[0] == nil {
			return fmt.Errorf("jobs: embed annotation: %d vectors for one text", len(vs))
		}
		return st.IndexAnnotation(ctx, a, store.ModelVec{Model: model, Vec: vs[0]})
	}
}

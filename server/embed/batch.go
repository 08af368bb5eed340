package embed

import (
	"context"
	"fmt"
)

// BatchSize is how many texts one remote call carries.
const BatchSize = 50

// Batched embeds any number of texts through e in batches of BatchSize,
// calling progress after each batch with the count done so far.
func Batched(ctx context.Context, e Embedder, texts []string, progress func(done int)) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += BatchSize {
		end := min(start+BatchSize, len(texts))
		vs, err := e.Embed(ctx, texts[start:end])
		if err != nil {
			return nil, fmt.Errorf("embed: batch %d-%d: %w", start, end, err)
		}
		out = append(out, vs...)
		if progress != nil {
			progress(len(out))
		}
	}
	return out, nil
}

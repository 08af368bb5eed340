package embed

import (
	"context"
	"net/http"
	"sort"
	"strings"
)

// OpenAI calls any OpenAI-compatible embeddings endpoint (OpenAI, Ollama,
// vLLM, TEI, LocalAI): POST {base}/v1/embeddings with
// {"model","input":[...],"dimensions"?}, answered {"data":[{"index","embedding"}],...}.
type OpenAI struct {
	BaseURL    string // e.g. http://localhost:11434 (Ollama)
	APIKey     string // optional
	ModelName  string
	Dimensions int // sent when set, for models that can shorten vectors
	// Dim is the length every vector must have (0: Dimensions when set,
	// else Dim).
	Dim    int
	Client *http.Client
	Retry  RetryPolicy
}

// Model implements Embedder.
func (o *OpenAI) Model() string { return o.ModelName }

type openAIAnswer struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
}

// Embed implements Embedder.
func (o *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	req := map[string]any{"model": o.ModelName, "input": texts}
	if o.Dimensions > 0 {
		req["dimensions"] = o.Dimensions
	}
	hdr := http.Header{}
	if o.APIKey != "" {
		hdr.Set("Authorization", "Bearer "+o.APIKey)
	}
	var ans openAIAnswer
	url := strings.TrimSuffix(o.BaseURL, "/") + "/v1/embeddings"
	if err := postJSON(ctx, clientOr(o.Client), o.Retry, url, hdr, req, &ans); err != nil {
		return nil, err
	}
	sort.Slice(ans.Data, func(i, j int) bool { return ans.Data[i].Index < ans.Data[j].Index })
	vs := make([][]float32, len(ans.Data))
	for i, d := range ans.Data {
		vs[i] = d.Embedding
	}
	want := o.Dim
	if want == 0 {
		want = o.Dimensions
	}
	return checkVectors(vs, len(texts), want)
}

package embed

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// WorkersAIModel is the default Workers AI embedding model (768 dimensions).
const WorkersAIModel = "@cf/baai/bge-base-en-v1.5"

// WorkersAI calls Cloudflare Workers AI's REST API:
// POST {base}/accounts/{account}/ai/run/{model} with {"text":[...]},
// answered {"result":{"shape":[n,768],"data":[[...]]},"success":true,...}.
type WorkersAI struct {
	BaseURL   string // https://api.cloudflare.com/client/v4 by default
	AccountID string
	Token     string
	ModelName string
	Client    *http.Client
	Retry     RetryPolicy
}

// Model implements Embedder.
func (w *WorkersAI) Model() string { return w.model() }

func (w *WorkersAI) model() string {
	if w.ModelName == "" {
		return WorkersAIModel
	}
	return w.ModelName
}

type workersAIAnswer struct {
	Result struct {
		Shape []int       `json:"shape"`
		Data  [][]float32 `json:"data"`
	} `json:"result"`
	Success bool `json:"success"`
	Errors  []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// Embed implements Embedder.
func (w *WorkersAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	base := strings.TrimSuffix(w.BaseURL, "/")
	if base == "" {
		base = "https://api.cloudflare.com/client/v4"
	}
	url := fmt.Sprintf("%s/accounts/%s/ai/run/%s", base, w.AccountID, w.model())
	hdr := http.Header{"Authorization": {"Bearer " + w.Token}}
	var ans workersAIAnswer
	if err := postJSON(ctx, clientOr(w.Client), w.Retry, url, hdr, map[string]any{"text": texts}, &ans); err != nil {
		return nil, err
	}
	if !ans.Success {
		msg := "unsuccessful"
		if len(ans.Errors) > 0 {
			msg = ans.Errors[0].Message
		}
		return nil, errors.New("embed: workers ai: " + msg)
	}
	return checkVectors(ans.Result.Data, len(texts), Dim)
}

func clientOr(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{}
}

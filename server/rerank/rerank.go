// Package rerank scores passages against a query with a hosted
// cross-encoder, as an optional stage after the fused search. A Client
// speaks one of three wire formats: Workers AI's
// @cf/baai/bge-reranker-base, the common /rerank format of Cohere, Jina
// and vLLM, or Hugging Face TEI's native /rerank. One call is one HTTP
// round trip: there are no retries, because a rerank that does not come
// back in time is skipped (the fused order stands), not waited for.
package rerank

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Reranker scores passages against a query: one score per passage, in
// the passages' order, higher is more relevant.
type Reranker interface {
	Rerank(ctx context.Context, query string, passages []string) ([]float64, error)
}

// Wire formats a Client speaks.
const (
	// FormatWorkersAI: POST {base}/accounts/{account}/ai/run/{model} with
	// {"query","contexts":[{"text"}],"top_k"}, answered
	// {"result":{"response":[{"id","score"}]},"success"}.
	FormatWorkersAI = "workers-ai"
	// FormatCohere: POST {base}/rerank with
	// {"model","query","documents":[...],"top_n"}, answered
	// {"results":[{"index","relevance_score"}]} (Cohere v2, Jina, vLLM).
	FormatCohere = "cohere"
	// FormatTEI: POST {base}/rerank with {"query","texts"}, answered
	// [{"index","score"}] (text-embeddings-inference).
	FormatTEI = "tei"
)

// WorkersAIModel is the default Workers AI reranker.
const WorkersAIModel = "@cf/baai/bge-reranker-base"

var (
	// ErrTimeout: the provider did not answer within the Client's timeout.
	ErrTimeout = errors.New("rerank: timeout")
	// ErrUnavailable: the provider could not be reached or answered an
	// error status.
	ErrUnavailable = errors.New("rerank: provider unavailable")
	// ErrBadResponse: the provider's answer could not be read as scores
	// for every passage.
	ErrBadResponse = errors.New("rerank: malformed provider response")
)

// Reason names why a rerank failed, for answers: "timeout",
// "unavailable" or "bad_response" (anything else).
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	default:
		return "bad_response"
	}
}

// Client is a hosted reranker over HTTP.
type Client struct {
	// Format is FormatWorkersAI, FormatCohere or FormatTEI.
	Format string
	// BaseURL: Workers AI's API base
	// (https://api.cloudflare.com/client/v4); for the other formats, the
	// prefix /rerank is appended to (e.g. https://api.cohere.com/v2,
	// https://api.jina.ai/v1, http://vllm:8000/v1, http://tei:8080).
	BaseURL   string
	AccountID string // Workers AI
	APIKey    string // sent as a Bearer token when set
	ModelName string // Workers AI: WorkersAIModel when empty; TEI: unused
	Client    *http.Client
	// Timeout bounds the round trip (5 s if zero).
	Timeout time.Duration
}

// maxResponse bounds the provider's answer.
const maxResponse = 1 << 20

// Model names the reranker's model.
func (c *Client) Model() string {
	if c.Format == FormatWorkersAI && c.ModelName == "" {
		return WorkersAIModel
	}
	return c.ModelName
}

// Rerank implements Reranker in one HTTP round trip.
func (c *Client) Rerank(ctx context.Context, query string, passages []string) ([]float64, error) {
	if len(passages) == 0 {
		return []float64{}, nil
	}
	url, body, err := c.encode(query, passages)
	if err != nil {
		return nil, err
	}
	raw, err := c.post(ctx, url, body)
	if err != nil {
		return nil, err
	}
	scores, err := c.decode(raw, len(passages))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	return scores, nil
}

// post sends body and returns the provider's 2xx answer.
func (c *Client) post(ctx context.Context, url string, body []byte) ([]byte, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("rerank: request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%w: HTTP %d: %s", ErrUnavailable, resp.StatusCode, truncate(string(raw), 200))
	}
	if len(raw) > maxResponse {
		return nil, fmt.Errorf("%w: answer over %d bytes", ErrBadResponse, maxResponse)
	}
	return raw, nil
}

// transportError classifies a failed round trip: the deadline passing is
// a timeout; anything else leaves the provider unavailable.
func transportError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// endpoint joins the base URL and a path.
func endpoint(base, path string) string { return strings.TrimSuffix(base, "/") + path }

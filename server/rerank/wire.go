package rerank

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

type workersAIRequest struct {
	Query    string        `json:"query"`
	Contexts []workersText `json:"contexts"`
	TopK     int           `json:"top_k"`
}

type workersText struct {
	Text string `json:"text"`
}

type workersAIResponse struct {
	Result *struct {
		Response []struct {
			ID    *int     `json:"id"`
			Score *float64 `json:"score"`
		} `json:"response"`
	} `json:"result"`
	Success *bool `json:"success"`
}

type cohereRequest struct {
	Model     string   `json:"model,omitempty"`
	Query     string   `json:"query"`
	Documents []string `json:"documents"`
	TopN      int      `json:"top_n"`
}

type cohereResponse struct {
	Results []struct {
		Index          *int     `json:"index"`
		RelevanceScore *float64 `json:"relevance_score"`
	} `json:"results"`
}

type teiRequest struct {
	Query string   `json:"query"`
	Texts []string `json:"texts"`
}

type teiResult struct {
	Index *int     `json:"index"`
	Score *float64 `json:"score"`
}

// encode builds the request of c's format.
func (c *Client) encode(query string, passages []string) (string, []byte, error) {
	var url string
	var body any
	switch c.Format {
	case FormatWorkersAI:
		ctxs := make([]workersText, len(passages))
		for i, p := range passages {
			ctxs[i] = workersText{Text: p}
		}
		url = fmt.Sprintf("%s/accounts/%s/ai/run/%s", endpoint(c.BaseURL, ""), c.AccountID, c.Model())
		body = workersAIRequest{Query: query, Contexts: ctxs, TopK: len(passages)}
	case FormatCohere:
		url, body = endpoint(c.BaseURL, "/rerank"), cohereRequest{Model: c.ModelName, Query: query, Documents: passages, TopN: len(passages)}
	case FormatTEI:
		url, body = endpoint(c.BaseURL, "/rerank"), teiRequest{Query: query, Texts: passages}
	default:
		return "", nil, fmt.Errorf("rerank: unknown format %q", c.Format)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return "", nil, fmt.Errorf("rerank: encode: %w", err)
	}
	return url, raw, nil
}

// decode reads the answer of c's format as one score per passage.
func (c *Client) decode(raw []byte, n int) ([]float64, error) {
	var pairs []teiResult
	switch c.Format {
	case FormatWorkersAI:
		var r workersAIResponse
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, err
		}
		if r.Result == nil || (r.Success != nil && !*r.Success) {
			return nil, errors.New("no result")
		}
		for _, x := range r.Result.Response {
			pairs = append(pairs, teiResult{Index: x.ID, Score: x.Score})
		}
	case FormatCohere:
		var r cohereResponse
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, err
		}
		for _, x := range r.Results {
			pairs = append(pairs, teiResult{Index: x.Index, Score: x.RelevanceScore})
		}
	default:
		if err := json.Unmarshal(raw, &pairs); err != nil {
			return nil, err
		}
	}
	return scatter(pairs, n)
}

// scatter places each (index, score) at its passage: every passage must
// be scored exactly once with a finite score.
func scatter(pairs []teiResult, n int) ([]float64, error) {
	if len(pairs) != n {
		return nil, fmt.Errorf("%d scores for %d passages", len(pairs), n)
	}
	out := make([]float64, n)
	seen := make([]bool, n)
	for _, p := range pairs {
		if p.Index == nil || p.Score == nil {
			return nil, errors.New("a result lacks its index or score")
		}
		i, s := *p.Index, *p.Score
		if i < 0 || i >= n || seen[i] {
			return nil, fmt.Errorf("index %d out of range or repeated", i)
		}
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("score of %d is not finite", i)
		}
		seen[i], out[i] = true, s
	}
	return out, nil
}

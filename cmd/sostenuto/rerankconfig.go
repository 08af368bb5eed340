package main

import (
	"errors"
	"time"

	"github.com/sostenuto/sostenuto/server"
	"github.com/sostenuto/sostenuto/server/rerank"
)

// rerankConfig chooses the optional reranker of searches and chat.
type rerankConfig struct {
	provider, url, model, key, account string
	timeout                            time.Duration
	topN                               int64
	byDefault                          bool
}

func (c *rerankConfig) settings() []setting {
	return []setting{
		{name: "rerank-provider", usage: "reranker of the fused hits: none, workers-ai (@cf/baai/bge-reranker-base), cohere (the /rerank format of Cohere, Jina, vLLM) or tei (text-embeddings-inference's /rerank)", def: "none", parse: oneOfVar(&c.provider, "none", "workers-ai", "cohere", "tei")},
		{name: "rerank-url", usage: "base URL: /rerank is appended for cohere and tei (e.g. https://api.cohere.com/v2, https://api.jina.ai/v1, http://tei:8080); the Workers AI API for workers-ai (default https://api.cloudflare.com/client/v4)", parse: stringVar(&c.url)},
		{name: "rerank-model", usage: "reranker model (cohere: e.g. rerank-v3.5, jina-reranker-v2-base-multilingual; workers-ai: default " + rerank.WorkersAIModel + ")", parse: stringVar(&c.model)},
		{name: "rerank-api-key", secret: true, usage: "API key or token of the reranker", parse: stringVar(&c.key)},
		{name: "rerank-account-id", usage: "Cloudflare account id (workers-ai)", parse: stringVar(&c.account)},
		{name: "rerank-timeout", usage: "longest the reranker may take (one round trip, no retry); past it the fused order is kept and flagged", def: "2s", parse: durationVar(&c.timeout, 10*time.Millisecond, time.Minute)},
		{name: "rerank-top-n", usage: "fused hits sent to the reranker", def: "50", parse: intVar(&c.topN, 1, 200)},
		boolSetting("rerank-default", "rerank searches and questions that do not say (rerank: true|false in the request)", "false", &c.byDefault),
	}
}

// reranker builds the configured reranker; nil for none.
func (c *rerankConfig) reranker() (*rerank.Client, error) {
	cl := &rerank.Client{Format: c.provider, BaseURL: c.url, AccountID: c.account, APIKey: c.key, ModelName: c.model, Timeout: c.timeout}
	switch c.provider {
	case "none":
		if c.byDefault {
			return nil, &configError{setting: envName("rerank-default"), err: errors.New("needs a reranker (SOSTENUTO_RERANK_PROVIDER)")}
		}
		return nil, nil
	case rerank.FormatWorkersAI:
		if c.account == "" || c.key == "" {
			return nil, &configError{setting: envName("rerank-account-id"), err: errors.New("workers-ai needs an account id and an API token (SOSTENUTO_RERANK_API_KEY)")}
		}
		if cl.BaseURL == "" {
			cl.BaseURL = "https://api.cloudflare.com/client/v4"
		}
	default:
		if c.url == "" {
			return nil, &configError{setting: envName("rerank-url"), err: errors.New(c.provider + " needs the server's base URL")}
		}
	}
	return cl, nil
}

// apiConfig is the API's rerank configuration.
func (c *rerankConfig) apiConfig() server.RerankConfig {
	return server.RerankConfig{TopN: int(c.topN), Default: c.byDefault}
}

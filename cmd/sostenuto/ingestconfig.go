package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/ingest"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/store"
)

// ingestConfig selects the embedder and bounds fetching.
type ingestConfig struct {
	embedProvider  string
	embedURL       string
	embedModel     string
	embedKey       string
	embedAccount   string
	embedDims      int64
	embedTimeout   time.Duration
	embedders      string
	chunkTokens    int64
	chunkOverlap   int64
	fetchMaxBytes  int64
	fetchAllow     string
	fetchPorts     []uint16
	youtubeURL     string
	youtubeLang    string
	maxDocumentLen int64
	ocr            ocrConfig
}

func (c *ingestConfig) settings() []setting {
	return append([]setting{
		{name: "embed-provider", usage: "embedder: hash (built in, lexical), workers-ai, or openai (any OpenAI-compatible /v1/embeddings)", def: "hash", parse: oneOfVar(&c.embedProvider, "hash", "workers-ai", "openai")},
		{name: "embed-url", usage: "base URL: the OpenAI-compatible server (e.g. http://localhost:11434), or the Workers AI API (default https://api.cloudflare.com/client/v4)", parse: stringVar(&c.embedURL)},
		{name: "embed-model", usage: "embedding model (768 dimensions); default @cf/baai/bge-base-en-v1.5 for workers-ai", parse: stringVar(&c.embedModel)},
		{name: "embed-api-key", secret: true, usage: "API key or token of the embedding provider", parse: stringVar(&c.embedKey)},
		{name: "embed-account-id", usage: "Cloudflare account id (workers-ai)", parse: stringVar(&c.embedAccount)},
		{name: "embed-dimensions", usage: "dimensions to ask an OpenAI-compatible model for (0: the model's own; must come out 768)", def: "0", parse: intVar(&c.embedDims, 0, 4096)},
		{name: "embed-timeout", usage: "timeout of one embedding call", def: "30s", parse: durationVar(&c.embedTimeout, time.Second, 10*time.Minute)},
		{name: "embedders", usage: "more embedding models to re-embed with, beside the embed-* one (the default, named by its model): NAME=PROVIDER:DIM[:MODEL][@URL],... with PROVIDER hash (built in, any DIM) or openai (MODEL at URL, default embed-url; key embed-api-key), e.g. hash256=hash:256,e5=openai:1024:e5-large@http://10.0.0.5:8000", parse: stringVar(&c.embedders)},
		{name: "chunk-tokens", usage: "chunk size in cl100k tokens", def: "512", parse: intVar(&c.chunkTokens, 32, 8192)},
		{name: "chunk-overlap", usage: "tokens each chunk repeats of the previous", def: "128", parse: intVar(&c.chunkOverlap, 0, 4096)},
		{name: "fetch-max-bytes", usage: "largest web page fetched", def: "5242880", parse: intVar(&c.fetchMaxBytes, 1024, 1<<30)},
		{name: "fetch-ports", usage: "comma-separated ports web sources may name", def: "80,443", parse: portsVar(&c.fetchPorts)},
		{name: "fetch-allow-addrs", usage: "TESTING ONLY: comma-separated ip:port the SSRF guard lets through", parse: stringVar(&c.fetchAllow)},
		{name: "youtube-captions-url", usage: "YouTube timedtext endpoint", def: "https://www.youtube.com/api/timedtext", parse: stringVar(&c.youtubeURL)},
		{name: "youtube-lang", usage: "caption language fetched", def: "en", parse: stringVar(&c.youtubeLang)},
		{name: "max-document-bytes", usage: "largest text document content", def: "5242880", parse: intVar(&c.maxDocumentLen, 1024, 100<<20)},
	}, c.ocr.settings()...)
}

// embedder builds the configured embedder.
func (c *ingestConfig) embedder() (embed.Embedder, error) {
	retry := embed.DefaultRetry
	retry.Timeout = c.embedTimeout
	switch c.embedProvider {
	case "workers-ai":
		if c.embedAccount == "" || c.embedKey == "" {
			return nil, &configError{setting: envName("embed-account-id"), err: errors.New("workers-ai needs an account id and an API token (SOSTENUTO_EMBED_API_KEY)")}
		}
		return &embed.WorkersAI{BaseURL: c.embedURL, AccountID: c.embedAccount, Token: c.embedKey, ModelName: c.embedModel, Retry: retry}, nil
	case "openai":
		if c.embedURL == "" || c.embedModel == "" {
			return nil, &configError{setting: envName("embed-url"), err: errors.New("openai needs a base URL and a model (SOSTENUTO_EMBED_MODEL)")}
		}
		return &embed.OpenAI{BaseURL: c.embedURL, APIKey: c.embedKey, ModelName: c.embedModel, Dimensions: int(c.embedDims), Retry: retry}, nil
	}
	return embed.Hash{}, nil
}

func (c *ingestConfig) fetcher() *ingest.Fetcher {
	cfg := ingest.DefaultFetchConfig
	cfg.MaxBytes = c.fetchMaxBytes
	cfg.Ports = c.fetchPorts
	for _, a := range strings.Split(c.fetchAllow, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.AllowAddrs = append(cfg.AllowAddrs, a)
		}
	}
	return ingest.NewFetcher(cfg)
}

// portsVar reads a comma-separated list of TCP ports.
func portsVar(dst *[]uint16) func(string) error {
	return func(v string) error {
		var ports []uint16
		for _, f := range strings.Split(v, ",") {
			p, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
			if err != nil || p == 0 {
				return fmt.Errorf("invalid port %q", f)
			}
			ports = append(ports, uint16(p))
		}
		*dst = ports
		return nil
	}
}

// pipeline assembles ingestion over the worker-role store.
func (c *ingestConfig) pipeline(ctx context.Context, worker *store.Store, blobs blob.Store, checker *pdf.Checker, maxUpload int64, logger *slog.Logger) (*ingest.Pipeline, error) {
	chunker, err := ingest.NewChunker(int(c.chunkTokens), int(c.chunkOverlap))
	if err != nil {
		return nil, &configError{setting: envName("chunk-overlap"), err: err}
	}
	models, err := c.models()
	if err != nil {
		return nil, err
	}
	emb := models.Default().Embedder
	ocr, err := c.ocr.reader(ctx, checker, logger)
	if err != nil {
		return nil, err
	}
	return &ingest.Pipeline{Store: worker, Blob: blobs, PDF: checker, OCR: ocr, Fetch: c.fetcher(),
		YouTube: &ingest.YouTubeCaptions{BaseURL: c.youtubeURL, Lang: c.youtubeLang},
		Chunker: chunker, Embedder: emb, Models: models, Languages: ingest.NewLanguageDetector(), MaxObjectBytes: maxUpload, Logger: logger}, nil
}

package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/sostenuto/sostenuto/server/rag"
)

// llmConfig chooses who writes chat answers.
type llmConfig struct {
	provider, url, model, key, account string
	timeout, rewriteTimeout            time.Duration
}

func (c *llmConfig) settings() []setting {
	return []setting{
		{name: "llm-provider", usage: "chat answers: extractive (built in, no model), openai (any OpenAI-compatible /v1/chat/completions: OpenAI, Ollama, vLLM, llama.cpp), or workers-ai", def: "extractive", parse: oneOfVar(&c.provider, "extractive", "openai", "workers-ai")},
		{name: "llm-url", usage: "base URL: the OpenAI-compatible server (e.g. http://localhost:11434), or the Workers AI API (default https://api.cloudflare.com/client/v4)", parse: stringVar(&c.url)},
		{name: "llm-model", usage: "chat model; default " + rag.WorkersAIModel + " for workers-ai", parse: stringVar(&c.model)},
		{name: "llm-api-key", secret: true, usage: "API key or token of the chat provider", parse: stringVar(&c.key)},
		{name: "llm-account-id", usage: "Cloudflare account id (workers-ai)", parse: stringVar(&c.account)},
		{name: "llm-timeout", usage: "longest a hosted model may take for one answer (the extractive answer replaces it when it fails before its first word)", def: "60s", parse: durationVar(&c.timeout, time.Second, 10*time.Minute)},
		{name: "llm-rewrite-timeout", usage: "longest a hosted model may take to make a chat follow-up standalone (the built-in rule rewrites it instead)", def: "5s", parse: durationVar(&c.rewriteTimeout, 100*time.Millisecond, time.Minute)},
	}
}

// answerer builds the chat provider (the extractive one, or a hosted model
// that falls back to it) and the follow-up rewriter (the built-in rule, or
// the hosted model that falls back to it).
func (c *llmConfig) answerer(logger *slog.Logger) (rag.Provider, rag.Rewriter, error) {
	x, err := rag.NewExtractive()
	if err != nil {
		return nil, nil, err
	}
	rule, err := rag.NewRule()
	if err != nil {
		return nil, nil, err
	}
	if c.provider == "extractive" {
		return x, rule, nil
	}
	chat, err := c.chat(x)
	if err != nil {
		return nil, nil, err
	}
	rewriter := &rag.ModelRewriter{Chat: chat, Rule: rule, Timeout: c.rewriteTimeout, Logger: logger}
	return &rag.Fallback{Primary: chat, Secondary: x, OnFallback: func(err error) {
		logger.Warn("chat model failed before answering; answered extractively", "component", "rag", "model", chat.ModelName, "error", err)
	}}, rewriter, nil
}

// chat is the hosted model (openai or workers-ai) the settings name, with
// its defaults filled in.
func (c *llmConfig) chat(terms *rag.Extractive) (*rag.Chat, error) {
	chat := &rag.Chat{Kind: c.provider, BaseURL: c.url, AccountID: c.account, APIKey: c.key, ModelName: c.model, Timeout: c.timeout, Terms: terms}
	switch c.provider {
	case "openai":
		if c.url == "" || c.model == "" {
			return nil, &configError{setting: envName("llm-url"), err: errors.New("openai needs the server's base URL and SOSTENUTO_LLM_MODEL")}
		}
	case "workers-ai":
		if c.account == "" || c.key == "" {
			return nil, &configError{setting: envName("llm-account-id"), err: errors.New("workers-ai needs an account id and an API token (SOSTENUTO_LLM_API_KEY)")}
		}
		if chat.BaseURL == "" {
			chat.BaseURL = "https://api.cloudflare.com/client/v4"
		}
		if chat.ModelName == "" {
			chat.ModelName = rag.WorkersAIModel
		}
	}
	return chat, nil
}

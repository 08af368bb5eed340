package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sostenuto/sostenuto/server/embed"
)

// models are the configured embedders: the embed-* one (the default,
// named by its model, at embed-dimensions or 768) and those of
// --embedders.
func (c *ingestConfig) models() (*embed.Models, error) {
	def, err := c.embedder()
	if err != nil {
		return nil, err
	}
	dim := embed.Dim
	if c.embedDims > 0 {
		dim = int(c.embedDims)
	}
	more, err := c.moreModels()
	if err != nil {
		return nil, &configError{setting: envName("embedders"), err: err}
	}
	m, err := embed.NewModels(embed.Model{Name: def.Model(), Dim: dim, Embedder: def}, more...)
	if err != nil {
		return nil, &configError{setting: envName("embedders"), err: err}
	}
	return m, nil
}

// moreModels parses --embedders: NAME=PROVIDER:DIM[:MODEL][@URL],...
func (c *ingestConfig) moreModels() ([]embed.Model, error) {
	var out []embed.Model
	for _, spec := range strings.Split(c.embedders, ",") {
		if spec = strings.TrimSpace(spec); spec == "" {
			continue
		}
		m, err := c.parseModel(spec)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", spec, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// parseModel reads one NAME=PROVIDER:DIM[:MODEL][@URL].
func (c *ingestConfig) parseModel(spec string) (embed.Model, error) {
	name, rest, ok := strings.Cut(spec, "=")
	if !ok || name == "" {
		return embed.Model{}, errors.New("want NAME=PROVIDER:DIM[:MODEL][@URL]")
	}
	rest, url, _ := strings.Cut(rest, "@")
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) < 2 {
		return embed.Model{}, errors.New("want NAME=PROVIDER:DIM[:MODEL][@URL]")
	}
	dim, err := strconv.Atoi(parts[1])
	if err != nil || dim < 1 || dim > 16000 {
		return embed.Model{}, errors.New("DIM must be 1 to 16000")
	}
	m := embed.Model{Name: name, Dim: dim}
	switch parts[0] {
	case "hash":
		m.Embedder = embed.Hash{Dims: dim}
	case "openai":
		if url == "" {
			url = c.embedURL
		}
		if len(parts) < 3 || url == "" {
			return m, errors.New("openai needs a MODEL and a URL (@URL or embed-url)")
		}
		retry := embed.DefaultRetry
		retry.Timeout = c.embedTimeout
		m.Embedder = &embed.OpenAI{BaseURL: url, APIKey: c.embedKey, ModelName: parts[2], Dim: dim, Retry: retry}
	default:
		return m, fmt.Errorf("unknown provider %q (hash, openai)", parts[0])
	}
	return m, nil
}

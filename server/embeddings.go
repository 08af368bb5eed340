package server

import (
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/embed"
)

func (s *Server) embeddingRoutes(r chi.Router) {
	r.Post("/embeddings/generate", s.generateEmbedding)
}

type embeddingRequest struct {
	Text string `json:"text"`
}

type embeddingResponse struct {
	Embedding []float32 `json:"embedding"`
	Model     string    `json:"model"`
	Dim       int       `json:"dim"`
	Cached    bool      `json:"cached"`
}

// maxEmbedChars bounds the text of one embedding request.
const maxEmbedChars = 8000

// generateEmbedding embeds one text with the node's embedder.
func (s *Server) generateEmbedding(w http.ResponseWriter, r *http.Request) {
	var in embeddingRequest
	if err := DecodeJSON(w, r, s.bodyLimit(embedBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	text := strings.TrimSpace(in.Text)
	if n := utf8.RuneCountInString(text); n < 1 || n > maxEmbedChars {
		s.WriteError(w, r, Invalid("text must be 1 to 8000 characters", FieldError{"text", "must be 1 to 8000 characters"}))
		return
	}
	etag := etagOf("embed", s.embedder.Model(), cache.Normalize(text))
	if notModified(w, r, etag) {
		return
	}
	vec, cached, err := s.embeddings.Embed(r.Context(), actor(r).ID, text)
	if errors.Is(err, embed.ErrEmpty) {
		s.WriteError(w, r, Invalid("text has no words to embed", FieldError{"text", "has no words"}))
		return
	}
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	setValidator(w, etag)
	WriteJSON(w, http.StatusOK, embeddingResponse{Embedding: vec, Model: s.embedder.Model(), Dim: len(vec), Cached: cached})
}

package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/fault"
)

// The embedding models (admin): which is active, and re-embedding every
// chunk with another beside it (contract: "Embedding models (admin)").
func (s *Server) embeddingModelRoutes(r chi.Router) {
	r.With(s.requireAdmin).Get("/admin/embedding", s.getEmbedding)
	r.With(s.requireAdmin).Post("/admin/embedding", s.startEmbedding)
	r.With(s.requireAdmin).Delete("/admin/embedding/building", s.abandonEmbedding)
}

// EmbeddingActive is the active model and how many chunks it embeds.
type EmbeddingActive struct {
	Model  string `json:"model"`
	Dim    int    `json:"dim"`
	Chunks int    `json:"chunks"`
}

// EmbeddingBuilding is the model being built and how far it got.
type EmbeddingBuilding struct {
	Model     string    `json:"model"`
	Dim       int       `json:"dim"`
	Done      int       `json:"done"`
	Total     int       `json:"total"`
	StartedAt time.Time `json:"started_at"`
}

// EmbeddingStatus answers GET /api/admin/embedding.
type EmbeddingStatus struct {
	Active     EmbeddingActive    `json:"active"`
	Building   *EmbeddingBuilding `json:"building"`
	Configured []string           `json:"configured"`
}

type embeddingModelRequest struct {
	Model string `json:"model"`
}

// getEmbedding says which model is active and how far a build got.
func (s *Server) getEmbedding(w http.ResponseWriter, r *http.Request) {
	st, err := s.store.EmbeddingState(r.Context())
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	out := EmbeddingStatus{Active: EmbeddingActive{Model: st.Active, Dim: st.ActiveDim}, Configured: s.modelSet().Names()}
	if out.Active.Model == "" { // not named yet: the default, on every chunk
		d := s.modelSet().Default()
		out.Active.Model, out.Active.Dim = d.Name, d.Dim
	}
	if st.Building != "" {
		b := &EmbeddingBuilding{Model: st.Building, Dim: st.BuildingDim}
		if st.BuildStarted != nil {
			b.StartedAt = st.BuildStarted.UTC()
		}
		if b.Done, b.Total, err = s.store.EmbeddingProgress(r.Context(), actor(r).ID, st.Building); err != nil {
			s.WriteError(w, r, err)
			return
		}
		out.Building = b
	}
	if _, out.Active.Chunks, err = s.store.EmbeddingProgress(r.Context(), actor(r).ID, out.Active.Model); err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

// startEmbedding starts re-embedding every chunk with a configured model
// beside the active one: 202, 400 for a model not configured, 409 while a
// build runs or when the model is active already.
func (s *Server) startEmbedding(w http.ResponseWriter, r *http.Request) {
	var in embeddingModelRequest
	if err := DecodeJSON(w, r, s.bodyLimit(queryBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	m, ok := s.modelSet().Get(in.Model)
	if !ok {
		s.WriteError(w, r, Invalid("the model is not one of this node's embedders",
			FieldError{"model", fmt.Sprintf("must be one of %v", s.modelSet().Names())}))
		return
	}
	if err := s.store.StartEmbeddingBuild(r.Context(), m.Name, m.Dim); err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.logger.InfoContext(r.Context(), "re-embedding started", "component", "http", "model", m.Name, "dim", m.Dim)
	w.Header().Set("Location", "/api/admin/embedding")
	WriteJSON(w, http.StatusAccepted, map[string]any{"model": m.Name, "dim": m.Dim})
}

// abandonEmbedding stops the build: 204; 404 when none runs.
func (s *Server) abandonEmbedding(w http.ResponseWriter, r *http.Request) {
	model, err := s.store.AbandonEmbeddingBuild(r.Context())
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.logger.InfoContext(r.Context(), "re-embedding abandoned", "component", "http", "model", model)
	w.WriteHeader(http.StatusNoContent)
}

// modelSet is the configured models: Models, or the one embedder at
// embed.Dim.
func (s *Server) modelSet() *embed.Models {
	if s.models != nil {
		return s.models
	}
	if s.embedder == nil {
		return &embed.Models{}
	}
	m, err := embed.NewModels(embed.Model{Name: s.embedder.Model(), Dim: embed.Dim, Embedder: s.embedder})
	if err != nil {
		return &embed.Models{}
	}
	return m
}

// modelProblem says why this node cannot embed queries with the model its
// index searches (nil when it can, or when it has no index).
func (s *Server) modelProblem() error {
	if s.engine == nil || s.models == nil {
		return nil
	}
	active := s.engine.Engine().Model().Active
	if active == "" {
		return nil
	}
	if _, ok := s.models.Get(active); !ok {
		return fmt.Errorf("%w: the index searches embedding model %s, which this node is not configured with (configured: %v)",
			fault.ErrConflict, active, s.models.Names())
	}
	return nil
}

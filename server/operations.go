package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"
)

func (s *Server) operationsRoutes(r chi.Router) {
	r.Get("/health", s.health)
	r.Get("/ready", s.ready)
	r.Get("/openapi.json", serveOpenAPI)
}

// health answers while the process runs; it checks nothing else, so an
// orchestrator restarts the process only when it is truly stuck.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.cfg.Version})
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// ready answers 200 when every dependency a request needs is reachable, else
// 503 with the reason, so load balancers route around this node.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{}
	var failed error
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		// The driver's text (addresses, user and database names) is for
		// the logs; the answer says only which check failed.
		s.logger.WarnContext(r.Context(), "not ready: database unreachable", "component", "http",
			"request_id", RequestID(r.Context()), "error", err)
		checks["database"] = "unreachable"
		failed = errors.Join(failed, errors.New("the database is unreachable"))
	} else {
		checks["database"] = "ok"
	}
	if err := s.modelProblem(); err != nil {
		checks["embedding_model"] = "not configured"
		failed = errors.Join(failed, err)
	}
	if s.engine != nil {
		if s.engineReady() {
			checks["index"] = "ok"
		} else {
			checks["index"] = "loading or lagging"
			failed = errors.Join(failed, errors.New("the local index is loading or lagging behind the changefeed"))
		}
	}
	if failed != nil {
		w.Header().Set("Retry-After", "1")
		p := NewProblem(http.StatusServiceUnavailable, CodeUnavailable, "not ready: "+failed.Error())
		WriteProblem(w, r, p)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, readiness{Status: "ready", Checks: checks})
}

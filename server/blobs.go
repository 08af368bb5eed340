package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// blobRoutes serve the signed upload and download URLs of the local blob
// store. The signature in the URL is the authorization; with another store
// these routes answer 404.
func (s *Server) blobRoutes(r chi.Router) {
	r.Put("/blob", s.putBlob)
	r.Get("/blob", s.getBlob)
}

func (s *Server) putBlob(w http.ResponseWriter, r *http.Request) {
	if s.localBlob == nil {
		WriteProblem(w, r, NewProblem(http.StatusNotFound, CodeNotFound, "no such resource"))
		return
	}
	if status, msg := s.localBlob.ServePut(w, r); status != 0 {
		WriteProblem(w, r, NewProblem(status, blobCode(status), msg))
	}
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) {
	if s.localBlob == nil {
		WriteProblem(w, r, NewProblem(http.StatusNotFound, CodeNotFound, "no such resource"))
		return
	}
	if status, msg := s.localBlob.ServeGet(w, r); status != 0 {
		WriteProblem(w, r, NewProblem(status, blobCode(status), msg))
	}
}

func blobCode(status int) string {
	switch status {
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusRequestEntityTooLarge:
		return CodePayloadTooLarge
	case http.StatusBadRequest:
		return CodeInvalidInput
	}
	return CodeInternal
}

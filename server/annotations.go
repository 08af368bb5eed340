package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/store"
)

func (s *Server) annotationRoutes(r chi.Router) {
	r.Post("/annotations", s.createAnnotation)
	r.Get("/annotations", s.listAnnotations)
	r.Get("/annotations/{id}", s.getAnnotation)
	r.Patch("/annotations/{id}", s.patchAnnotation)
	r.Delete("/annotations/{id}", s.deleteAnnotation)
}

type createAnnotationRequest struct {
	ProjectID uuid.UUID       `json:"project_id"`
	Page      int             `json:"page"`
	Type      string          `json:"type"`
	Content   json.RawMessage `json:"content"`
}

func (s *Server) createAnnotation(w http.ResponseWriter, r *http.Request) {
	var in createAnnotationRequest
	if err := DecodeJSON(w, r, s.bodyLimit(annotBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	if in.ProjectID == uuid.Nil {
		s.WriteError(w, r, Invalid("project_id is required", FieldError{"project_id", "required"}))
		return
	}
	if _, err := s.access.Project(r.Context(), actor(r), in.ProjectID, access.Edit); err != nil {
		s.WriteError(w, r, err)
		return
	}
	p, err := s.store.ProjectByID(r.Context(), actor(r).ID, in.ProjectID)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if err := checkPage(p, in.Page); err != nil {
		s.WriteError(w, r, err)
		return
	}
	content, err := validateContent(in.Type, in.Content)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	vec := s.embedAnnotation(r.Context(), in.Type, content)
	a, lsn, err := s.store.CreateAnnotation(r.Context(), store.Annotation{ProjectID: p.ID, AuthorID: actor(r).ID, Page: in.Page, Type: in.Type, Content: content}, vec)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.ackWrite(w, lsn)
	writeAnnotation(w, http.StatusCreated, a)
}

// checkPage requires a confirmed project and a page within it.
func checkPage(p store.Project, page int) error {
	if p.PageCount == nil {
		return NewProblem(http.StatusConflict, CodeConflict, "the project has no confirmed PDF yet")
	}
	if page < 1 || page > *p.PageCount {
		return Invalid("page is outside the document", FieldError{"page", fmt.Sprintf("must be 1 to %d", *p.PageCount)})
	}
	return nil
}

func writeAnnotation(w http.ResponseWriter, status int, a store.Annotation) {
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(a.Version)))
	WriteJSON(w, status, newAnnotationResponse(a))
}

func (s *Server) listAnnotations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	project, err := uuid.Parse(q.Get("project_id"))
	if err != nil {
		s.WriteError(w, r, Invalid("project_id is required", FieldError{"project_id", "required: a project id"}))
		return
	}
	pageNo := 0
	if v := q.Get("page"); v != "" {
		if pageNo, err = strconv.Atoi(v); err != nil || pageNo < 1 {
			s.WriteError(w, r, Invalid("page must be a positive integer", FieldError{"page", "must be a positive integer"}))
			return
		}
	}
	page, err := pageParams(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if _, err := s.access.Project(r.Context(), actor(r), project, access.View); err != nil {
		s.WriteError(w, r, err)
		return
	}
	items, next, err := s.store.ListAnnotations(r.Context(), actor(r).ID, project, pageNo, page)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, newList(mapItems(items, newAnnotationResponse), next))
}

func (s *Server) getAnnotation(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if _, err := s.access.Annotation(r.Context(), actor(r), id, false); err != nil {
		s.WriteError(w, r, err)
		return
	}
	a, err := s.store.AnnotationByID(r.Context(), actor(r).ID, id)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	writeAnnotation(w, http.StatusOK, a)
}

type patchAnnotationRequest struct {
	Page    *int            `json:"page"`
	Content json.RawMessage `json:"content"`
}

// patchAnnotation changes page and content under optimistic concurrency:
// If-Match must name the current version (412 otherwise; 428 without it).
func (s *Server) patchAnnotation(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	var in patchAnnotationRequest
	if err := DecodeJSON(w, r, s.bodyLimit(annotBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	f, err := s.access.Annotation(r.Context(), actor(r), id, true)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	version, err := ifMatchVersion(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	patch, vec, err := s.annotationPatch(r, f, in)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	a, lsn, err := s.store.UpdateAnnotation(r.Context(), actor(r).ID, id, version, patch, vec)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.ackWrite(w, lsn)
	writeAnnotation(w, http.StatusOK, a)
}

// annotationPatch validates a patch against the annotation's project and
// type, as stored, and embeds the patched annotation's searchable text
// (nil when there is none, or the embedder failed).
func (s *Server) annotationPatch(r *http.Request, f store.AnnotationFacts, in patchAnnotationRequest) (store.AnnotationPatch, store.ModelVec, error) {
	var patch store.AnnotationPatch
	cur, err := s.store.AnnotationByID(r.Context(), actor(r).ID, f.ID)
	if err != nil {
		return patch, store.ModelVec{}, err
	}
	if in.Page != nil {
		p, err := s.store.ProjectByID(r.Context(), actor(r).ID, f.ProjectID)
		if err != nil {
			return patch, store.ModelVec{}, err
		}
		if err := checkPage(p, *in.Page); err != nil {
			return patch, store.ModelVec{}, err
		}
		patch.Page = in.Page
	}
	content := cur.Content
	if in.Content != nil {
		if content, err = validateContent(cur.Type, in.Content); err != nil {
			return patch, store.ModelVec{}, err
		}
		patch.Content = content
	}
	return patch, s.embedAnnotation(r.Context(), cur.Type, content), nil
}

// annotationEmbedWait bounds the embedding of an annotation's text in its
// write; past it, the write goes on and a job indexes the annotation.
const annotationEmbedWait = 3 * time.Second

// embedAnnotation embeds an annotation's searchable text with the active
// model, naming it: no vector when it has none, or when the embedder
// failed or took too long (the store then queues the annotation_index
// job: nothing acknowledged is lost).
func (s *Server) embedAnnotation(ctx context.Context, typ string, content json.RawMessage) store.ModelVec {
	text := store.SearchableText(typ, content)
	if text == "" || s.embedder == nil {
		return store.ModelVec{}
	}
	ectx, cancel := context.WithTimeout(ctx, annotationEmbedWait)
	defer cancel()
	vs, model, err := embed.Named(ectx, s.embedder, []string{text})
	if err != nil || len(vs) != 1 {
		s.logger.Warn("annotation embedding failed; indexed later by a job", "component", "api", "error", err)
		return store.ModelVec{}
	}
	if s.models == nil {
		model = "" // one embedder: its vectors are the column's
	}
	return store.ModelVec{Model: model, Vec: vs[0]}
}

// ifMatchVersion reads If-Match: "<version>" (weak tags and bare numbers
// accepted).
func ifMatchVersion(r *http.Request) (int, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" {
		return 0, NewProblem(http.StatusPreconditionRequired, "precondition_required",
			`send If-Match: "<version>" with the version you are changing`)
	}
	v, err := strconv.Atoi(strings.Trim(strings.TrimPrefix(h, "W/"), `"`))
	if err != nil || v < 1 {
		return 0, NewProblem(http.StatusPreconditionFailed, "precondition_failed", "If-Match does not name a version of this annotation")
	}
	return v, nil
}

func (s *Server) deleteAnnotation(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if _, err := s.access.Annotation(r.Context(), actor(r), id, true); err != nil {
		s.WriteError(w, r, err)
		return
	}
	lsn, err := s.store.DeleteAnnotation(r.Context(), actor(r).ID, id)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.ackWrite(w, lsn)
	w.WriteHeader(http.StatusNoContent)
}

// annotationResponse is an annotation as the API answers it.
type annotationResponse struct {
	ID        uuid.UUID       `json:"id"`
	ProjectID uuid.UUID       `json:"project_id"`
	AuthorID  uuid.UUID       `json:"author_id"`
	Page      int             `json:"page"`
	Type      string          `json:"type"`
	Content   json.RawMessage `json:"content"`
	Version   int             `json:"version"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

func newAnnotationResponse(a store.Annotation) annotationResponse {
	return annotationResponse{ID: a.ID, ProjectID: a.ProjectID, AuthorID: a.AuthorID, Page: a.Page, Type: a.Type,
		Content: a.Content, Version: a.Version, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

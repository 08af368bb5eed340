package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/store"
)

// Problem codes of knowledge-document refreshes (docs/API.md).
const (
	// CodeNotRefreshable: only a web page or a YouTube video named by URL
	// can be fetched again.
	CodeNotRefreshable = "not_refreshable"
	// CodeAlreadyProcessing: the document is queued or processing; a
	// refresh waits until that is done.
	CodeAlreadyProcessing = "already_processing"
)

// optional is a JSON member that may be absent but, when present, is
// never null.
type optional[T any] struct {
	set, null bool
	v         T
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.set = true
	if string(b) == "null" {
		o.null = true
		return nil
	}
	return json.Unmarshal(b, &o.v)
}

type patchDocumentRequest struct {
	Title    optional[string] `json:"title"`
	IsPublic optional[bool]   `json:"is_public"`
}

// validate says what the edit changes; it names every invalid field.
func (in patchDocumentRequest) validate() (store.DocumentPatch, error) {
	var p store.DocumentPatch
	var errs []FieldError
	if in.Title.set {
		title := strings.TrimSpace(in.Title.v)
		switch msg := checkText(title, 1, 300); {
		case in.Title.null:
			errs = append(errs, FieldError{"title", "must be a string of 1 to 300 characters, not null"})
		case msg != "":
			errs = append(errs, FieldError{"title", msg})
		}
		p.Title = &title
	}
	if in.IsPublic.set {
		if in.IsPublic.null {
			errs = append(errs, FieldError{"is_public", "must be true or false"})
		}
		p.IsPublic = &in.IsPublic.v
	}
	if len(errs) > 0 {
		return p, Invalid("the edit has invalid fields", errs...)
	}
	if p.Title == nil && p.IsPublic == nil {
		return p, Invalid("nothing to change: give title or is_public",
			FieldError{"title", "title or is_public is required"})
	}
	return p, nil
}

// patchDocument changes a document's title or visibility (its owner or an
// admin). X-Index-LSN: from that position no index, cache or answer of any
// node serves the document outside its new visibility (docs/SECURITY.md
// "Knowledge visibility changes").
func (s *Server) patchDocument(w http.ResponseWriter, r *http.Request) {
	var in patchDocumentRequest
	if err := DecodeJSON(w, r, s.bodyLimit(smallBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	patch, err := in.validate()
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	d, err := s.loadDocument(r, true)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	d, lsn, err := s.store.UpdateDocument(r.Context(), actor(r).ID, d.ID, patch)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.ackWrite(w, lsn)
	WriteJSON(w, http.StatusOK, newDocumentResponse(d))
}

// refreshDocument queues a web or YouTube document to be fetched again
// (202): its chunks are replaced in one step, or kept when the content is
// unchanged (docs/INGESTION.md "Refresh"). 409 not_refreshable for other
// sources, already_processing while it is queued or processing.
func (s *Server) refreshDocument(w http.ResponseWriter, r *http.Request) {
	d, err := s.loadDocument(r, true)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if !refreshable(d) {
		s.WriteError(w, r, NewProblem(http.StatusConflict, CodeNotRefreshable,
			"only a web page or a YouTube video named by URL can be fetched again; process the document to rebuild its chunks"))
		return
	}
	d, err = s.store.RefreshDocument(r.Context(), actor(r).ID, d.ID)
	if errors.Is(err, fault.ErrConflict) {
		err = NewProblem(http.StatusConflict, CodeAlreadyProcessing, "the document is queued or processing; refresh it when that is done")
	}
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusAccepted, newDocumentResponse(d))
}

// refreshable says whether a document's source can be fetched again: a
// web page, or a YouTube video named by URL (not an uploaded caption file).
func refreshable(d store.Document) bool {
	return (d.SourceType == store.SourceWeb || d.SourceType == store.SourceYouTube) && d.SourceURL != nil && d.ObjectKey == nil
}

package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/ingest"
	"github.com/sostenuto/sostenuto/server/store"
)

// captionContentType is what caption files are uploaded as (WebVTT or SRT).
const captionContentType = "text/vtt"

// HeaderIndexLSN carries the changefeed position a write reached.
const HeaderIndexLSN = "X-Index-LSN"

// ackWrite answers a committed write's position (X-Index-LSN) and
// remembers the newest this node acknowledged: until the local index has
// applied it, cached chat retrievals are re-checked in PostgreSQL
// (indexBehindWrites), so a write made through this node reaches its
// cached answers at once, whatever the replication lag.
func (s *Server) ackWrite(w http.ResponseWriter, lsn index.LSN) {
	w.Header().Set(HeaderIndexLSN, lsn.String())
	for {
		old := s.acked.Load()
		if uint64(lsn) <= old || s.acked.CompareAndSwap(old, uint64(lsn)) {
			return
		}
	}
}

// indexBehindWrites reports whether the local index has yet to apply a
// write this node acknowledged.
func (s *Server) indexBehindWrites() bool {
	acked := s.acked.Load()
	return acked != 0 && (s.engine == nil || uint64(s.engine.Engine().Position().LSN) < acked)
}

func (s *Server) knowledgeRoutes(r chi.Router) {
	r.Post("/knowledge", s.createDocument)
	r.Get("/knowledge", s.listDocuments)
	r.Get("/knowledge/{id}", s.getDocument)
	r.Patch("/knowledge/{id}", s.patchDocument)
	r.Delete("/knowledge/{id}", s.deleteDocument)
	r.Post("/knowledge/{id}/process", s.processDocument)
	r.Post("/knowledge/{id}/refresh", s.refreshDocument)
	r.Get("/knowledge/{id}/status", s.documentStatus)
}

type createDocumentRequest struct {
	Title      string  `json:"title"`
	SourceType string  `json:"source_type"`
	SourceURL  *string `json:"source_url"`
	Content    *string `json:"content"`
	IsPublic   bool    `json:"is_public"`
}

type documentWithUpload struct {
	Document documentResponse `json:"document"`
	Upload   *blob.Upload     `json:"upload"`
}

func (s *Server) createDocument(w http.ResponseWriter, r *http.Request) {
	var in createDocumentRequest
	// The content's bound is on its text; its JSON may be escaped (up to 3×
	// the UTF-8 bytes for \u escapes).
	if err := DecodeJSON(w, r, 3*s.cfg.MaxDocumentBytes+64<<10, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	a := actor(r)
	if a.Role != store.RoleTeacher && !a.IsAdmin() {
		s.WriteError(w, r, NewProblem(http.StatusForbidden, CodeForbidden, "only teachers and admins add to the knowledge base"))
		return
	}
	nd, uploadType, err := s.validateDocument(in)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	nd.OwnerID = a.ID
	d, err := s.store.CreateDocument(r.Context(), nd)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	out := documentWithUpload{Document: newDocumentResponse(d)}
	if uploadType != "" {
		up, err := s.blob.PresignPut(r.Context(), *nd.ObjectKey, uploadType, s.cfg.MaxUploadBytes, blob.MaxUploadTTL)
		if err != nil {
			s.WriteError(w, r, err)
			return
		}
		out.Upload = &up
	}
	WriteJSON(w, http.StatusCreated, out)
}

// validateDocument checks a new document by source type and says what
// content type its upload takes ("" for none).
func (s *Server) validateDocument(in createDocumentRequest) (store.NewDocument, string, error) {
	var errs []FieldError
	title := strings.TrimSpace(in.Title)
	if msg := checkText(title, 1, 300); msg != "" {
		errs = append(errs, FieldError{"title", msg})
	}
	nd := store.NewDocument{ID: uuid.New(), Title: title, SourceType: in.SourceType, IsPublic: in.IsPublic}
	uploadType := ""
	switch in.SourceType {
	case store.SourceText:
		if in.Content == nil || strings.TrimSpace(*in.Content) == "" {
			errs = append(errs, FieldError{"content", "required for text sources"})
		} else if int64(len(*in.Content)) > s.cfg.MaxDocumentBytes {
			errs = append(errs, FieldError{"content", fmt.Sprintf("at most %d bytes", s.cfg.MaxDocumentBytes)})
		}
		nd.Content = in.Content
	case store.SourceWeb:
		if in.SourceURL == nil {
			errs = append(errs, FieldError{"source_url", "required for web sources"})
		} else if msg := s.checkSourceURL(*in.SourceURL); msg != "" {
			errs = append(errs, FieldError{"source_url", msg})
		}
		nd.SourceURL = in.SourceURL
	case store.SourceYouTube:
		if in.SourceURL != nil {
			if _, err := ingest.VideoID(*in.SourceURL); err != nil {
				errs = append(errs, FieldError{"source_url", "must be a YouTube video URL"})
			}
			nd.SourceURL = in.SourceURL
		} else {
			uploadType = captionContentType // upload a WebVTT or SRT caption file instead
		}
	case store.SourcePDF:
		uploadType = pdfContentType
	default:
		errs = append(errs, FieldError{"source_type", "must be pdf, web, youtube or text"})
	}
	if in.Content != nil && in.SourceType != store.SourceText {
		errs = append(errs, FieldError{"content", "only text sources carry content"})
	}
	if in.SourceURL != nil && (in.SourceType == store.SourcePDF || in.SourceType == store.SourceText) {
		errs = append(errs, FieldError{"source_url", "pdf and text sources take no URL"})
	}
	if len(errs) > 0 {
		return nd, "", Invalid("the document has invalid fields", errs...)
	}
	if uploadType != "" {
		ext := map[string]string{pdfContentType: "pdf", captionContentType: "vtt"}[uploadType]
		key := fmt.Sprintf("documents/%s/%s.%s", nd.ID, uuid.New(), ext)
		nd.ObjectKey = &key
	}
	return nd, uploadType, nil
}

// checkSourceURL says why a web source's URL is refused ("" if it is not):
// the SSRF guard's sentence, which names the rule, never an address.
func (s *Server) checkSourceURL(raw string) string {
	if len(raw) > 2048 {
		return "must be at most 2048 bytes"
	}
	_, err := s.fetch.CheckURL(raw)
	var fe *ingest.FetchError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &fe):
		return fe.Message
	}
	return "must be an http(s) URL of a public host"
}

func (s *Server) listDocuments(w http.ResponseWriter, r *http.Request) {
	page, err := pageParams(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	q := r.URL.Query()
	f := store.DocumentFilter{Status: q.Get("status"), SourceType: q.Get("source_type"), Q: q.Get("q")}
	var errs []FieldError
	if f.Status != "" && !oneOf(f.Status, store.DocPending, store.DocQueued, store.DocProcessing, store.DocCompleted, store.DocFailed) {
		errs = append(errs, FieldError{"status", "must be pending, queued, processing, completed or failed"})
	}
	if f.SourceType != "" && !oneOf(f.SourceType, store.SourcePDF, store.SourceWeb, store.SourceYouTube, store.SourceText) {
		errs = append(errs, FieldError{"source_type", "must be pdf, web, youtube or text"})
	}
	if len([]rune(f.Q)) > 200 {
		errs = append(errs, FieldError{"q", "at most 200 characters"})
	}
	if len(errs) > 0 {
		s.WriteError(w, r, Invalid("invalid filters", errs...))
		return
	}
	items, next, err := s.store.ListDocuments(r.Context(), actor(r).ID, f, page)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, newList(mapItems(items, newDocumentResponse), next))
}

func oneOf(v string, options ...string) bool {
	for _, o := range options {
		if v == o {
			return true
		}
	}
	return false
}

// loadDocument checks the caller may see (or, with manage, change) the
// {id} document and loads it.
func (s *Server) loadDocument(r *http.Request, manage bool) (store.Document, error) {
	id, err := pathID(r)
	if err != nil {
		return store.Document{}, err
	}
	if manage {
		_, err = s.access.ManageDocument(r.Context(), actor(r), id)
	} else {
		_, err = s.access.Document(r.Context(), actor(r), id)
	}
	if err != nil {
		return store.Document{}, err
	}
	return s.store.DocumentByID(r.Context(), actor(r).ID, id)
}

func (s *Server) getDocument(w http.ResponseWriter, r *http.Request) {
	d, err := s.loadDocument(r, false)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, newDocumentResponse(d))
}

func (s *Server) deleteDocument(w http.ResponseWriter, r *http.Request) {
	d, err := s.loadDocument(r, true)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	lsn, err := s.store.DeleteDocument(r.Context(), actor(r).ID, d.ID)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.ackWrite(w, lsn)
	w.WriteHeader(http.StatusNoContent)
}

// processDocument queues a document for (re)processing: 202. An uploaded
// file is sealed first (see uploads.go): this processing and every later
// one read the copy made now, never what is PUT afterwards.
func (s *Server) processDocument(w http.ResponseWriter, r *http.Request) {
	d, err := s.loadDocument(r, true)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if d.ObjectKey != nil && !blob.IsSealed(*d.ObjectKey) {
		if d, err = s.sealDocument(r, d); err != nil {
			s.WriteError(w, r, err)
			return
		}
	}
	d, err = s.store.QueueDocument(r.Context(), actor(r).ID, d.ID)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusAccepted, newDocumentResponse(d))
}

// sealDocument copies a document's upload to a sealed key and records it
// (409 before anything was uploaded).
func (s *Server) sealDocument(r *http.Request, d store.Document) (store.Document, error) {
	ctx, upload := r.Context(), *d.ObjectKey
	sealed, err := s.seal(ctx, upload)
	if isRejection(err) {
		return d, NewProblem(http.StatusConflict, CodeConflict, "upload the file first: PUT it to the upload URL this document was created with")
	}
	if err != nil {
		return d, err
	}
	d, err = s.store.SealDocumentObject(ctx, actor(r).ID, d.ID, upload, sealed)
	s.settleSeal(ctx, upload, sealed, d.CreatedAt, err == nil && d.ObjectKey != nil && *d.ObjectKey == sealed)
	return d, err
}

type documentStatus struct {
	Status      string     `json:"status"`
	Progress    progress   `json:"progress"`
	ChunkCount  int        `json:"chunk_count"`
	Error       *string    `json:"error"`
	ErrorCode   *string    `json:"error_code"`
	ProcessedAt *time.Time `json:"processed_at"`
	IndexLSN    *string    `json:"index_lsn"`
	EmptyPages  []int32    `json:"empty_pages"`
	// OCR (docs/INGESTION.md): pages read by OCR, each one's mean word
	// confidence, and those of very low confidence.
	OCRPages           int                    `json:"ocr_pages"`
	OCRConfidence      []store.PageConfidence `json:"ocr_confidence"`
	LowConfidencePages []int32                `json:"low_confidence_pages"`
}

type progress struct {
	ChunksDone    int `json:"chunks_done"`
	ChunksTotal   int `json:"chunks_total"`
	OCRPagesDone  int `json:"ocr_pages_done"`
	OCRPagesTotal int `json:"ocr_pages_total"`
}

func (s *Server) documentStatus(w http.ResponseWriter, r *http.Request) {
	d, err := s.loadDocument(r, false)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	var lsn *string
	if d.IndexLSN != nil {
		text := d.IndexLSN.String()
		lsn = &text
	}
	noStore(w)
	WriteJSON(w, http.StatusOK, documentStatus{Status: d.Status, Progress: progress{d.ChunksDone, d.ChunksTotal, d.OCRPagesDone, d.OCRPagesTotal},
		ChunkCount: d.ChunkCount, Error: d.Error, ErrorCode: d.ErrorCode, ProcessedAt: d.ProcessedAt, IndexLSN: lsn,
		EmptyPages: orEmpty(d.EmptyPages), OCRPages: d.OCRPages, OCRConfidence: orEmpty(d.OCRConfidence),
		LowConfidencePages: orEmpty(d.LowConfidencePages)})
}

// orEmpty answers a nil list as [], never null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// documentResponse is a knowledge-base document as the API answers it: its
// object key and processing bookkeeping stay inside (documentStatus answers
// the progress).
type documentResponse struct {
	ID          uuid.UUID  `json:"id"`
	OwnerID     uuid.UUID  `json:"owner_id"`
	Title       string     `json:"title"`
	SourceType  string     `json:"source_type"`
	SourceURL   *string    `json:"source_url"`
	IsPublic    bool       `json:"is_public"`
	Status      string     `json:"status"`
	ChunkCount  int        `json:"chunk_count"`
	Error       *string    `json:"error"`      // a sentence for a person
	ErrorCode   *string    `json:"error_code"` // why, for programs (docs/INGESTION.md)
	Language    string     `json:"language"`   // ISO 639-1, detected (docs/INGESTION.md "Language")
	CreatedAt   time.Time  `json:"created_at"`
	ProcessedAt *time.Time `json:"processed_at"`
	OCRPages    int        `json:"ocr_pages"` // pages read by OCR
}

func newDocumentResponse(d store.Document) documentResponse {
	return documentResponse{ID: d.ID, OwnerID: d.OwnerID, Title: d.Title, SourceType: d.SourceType,
		SourceURL: d.SourceURL, IsPublic: d.IsPublic, Status: d.Status, ChunkCount: d.ChunkCount,
		Error: d.Error, ErrorCode: d.ErrorCode, Language: d.Language, CreatedAt: d.CreatedAt, ProcessedAt: d.ProcessedAt, OCRPages: d.OCRPages}
}

package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/store"
)

// CodeInvalidUpload is the 422 code for an uploaded object that failed its checks.
const CodeInvalidUpload = "invalid_upload"

const pdfContentType = "application/pdf"

func (s *Server) projectRoutes(r chi.Router) {
	r.Post("/projects", s.createProject)
	r.Get("/projects", s.listProjects)
	r.Get("/projects/{id}", s.getProject)
	r.Patch("/projects/{id}", s.patchProject)
	r.Delete("/projects/{id}", s.deleteProject)
	r.Post("/projects/{id}/confirm", s.confirmProject)
	r.Get("/projects/{id}/stream", s.streamProject)
	r.Get("/projects/{id}/object", s.projectObject)
	r.Post("/projects/{id}/access", s.putGrant)
	r.Get("/projects/{id}/access", s.listGrants)
	r.Delete("/projects/{id}/access/{user_id}", s.deleteGrant)
}

type createProjectRequest struct {
	Title         string  `json:"title"`
	Description   *string `json:"description"`
	Filename      string  `json:"filename"`
	ContentType   *string `json:"content_type"`
	FileSizeBytes *int64  `json:"file_size_bytes"`
}

type projectWithUpload struct {
	Project projectResponse `json:"project"`
	Upload  blob.Upload     `json:"upload"`
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request) {
	var in createProjectRequest
	if err := DecodeJSON(w, r, s.bodyLimit(projectBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	a := actor(r)
	if a.Role != store.RoleTeacher && !a.IsAdmin() {
		s.WriteError(w, r, NewProblem(http.StatusForbidden, CodeForbidden, "only teachers and admins create projects"))
		return
	}
	np, err := s.validateNewProject(in)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	np.OwnerID = a.ID
	p, err := s.store.CreateProject(r.Context(), np)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	up, err := s.blob.PresignPut(r.Context(), p.ObjectKey, pdfContentType, s.cfg.MaxUploadBytes, blob.MaxUploadTTL)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusCreated, projectWithUpload{Project: newProjectResponse(p), Upload: up})
}

func (s *Server) validateNewProject(in createProjectRequest) (store.NewProject, error) {
	var errs []FieldError
	title := strings.TrimSpace(in.Title)
	if msg := checkText(title, 1, 200); msg != "" {
		errs = append(errs, FieldError{"title", msg})
	}
	desc := ""
	if in.Description != nil {
		desc = strings.TrimSpace(*in.Description)
		if msg := checkText(desc, 0, 5000); msg != "" {
			errs = append(errs, FieldError{"description", msg})
		}
	}
	if msg := checkFilename(in.Filename); msg != "" {
		errs = append(errs, FieldError{"filename", msg})
	}
	if in.ContentType != nil && *in.ContentType != pdfContentType {
		errs = append(errs, FieldError{"content_type", "must be application/pdf"})
	}
	if in.FileSizeBytes != nil && (*in.FileSizeBytes < 1 || *in.FileSizeBytes > s.cfg.MaxUploadBytes) {
		errs = append(errs, FieldError{"file_size_bytes", fmt.Sprintf("must be 1 to %d", s.cfg.MaxUploadBytes)})
	}
	if len(errs) > 0 {
		return store.NewProject{}, Invalid("the project has invalid fields", errs...)
	}
	id := uuid.New()
	return store.NewProject{ID: id, Title: title, Description: desc, Filename: in.Filename,
		ObjectKey: fmt.Sprintf("projects/%s/%s.pdf", id, uuid.New())}, nil
}

// checkText bounds a text field's length in characters and refuses control
// characters other than newlines and tabs.
func checkText(s string, lo, hi int) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	if n := utf8.RuneCountInString(s); n < lo || n > hi {
		return fmt.Sprintf("must be %d to %d characters", lo, hi)
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' }) >= 0 {
		return "must not contain control characters"
	}
	return ""
}

func checkFilename(name string) string {
	if msg := checkText(name, 1, 255); msg != "" {
		return msg
	}
	if strings.ContainsAny(name, "/\\\n\r\t") || name == "." || name == ".." {
		return "must be a plain file name"
	}
	return ""
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	page, err := pageParams(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	scope := r.URL.Query().Get("scope")
	if scope == "" {
		scope = store.ScopeAll
	}
	if scope != store.ScopeOwned && scope != store.ScopeShared && scope != store.ScopeAll {
		s.WriteError(w, r, Invalid("scope must be owned, shared or all", FieldError{"scope", "must be owned, shared or all"}))
		return
	}
	q := r.URL.Query().Get("q")
	if utf8.RuneCountInString(q) > 200 {
		s.WriteError(w, r, Invalid("q is too long", FieldError{"q", "at most 200 characters"}))
		return
	}
	items, next, err := s.store.ListProjects(r.Context(), actor(r).ID, scope, q, page)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, newList(mapItems(items, newProjectResponse), next))
}

// loadProject checks the caller holds need on the {id} project and loads it.
func (s *Server) loadProject(r *http.Request, need access.Permission) (store.Project, access.Permission, error) {
	id, err := pathID(r)
	if err != nil {
		return store.Project{}, access.None, err
	}
	perm, err := s.access.Project(r.Context(), actor(r), id, need)
	if err != nil {
		return store.Project{}, perm, err
	}
	p, err := s.store.ProjectByID(r.Context(), actor(r).ID, id)
	return p, perm, err
}

type projectView struct {
	Project    projectResponse `json:"project"`
	Permission string          `json:"permission"`
	Download   *blob.Download  `json:"download"`
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) {
	p, perm, err := s.loadProject(r, access.View)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	view := projectView{Project: newProjectResponse(p), Permission: perm.String()}
	if p.Status == store.StatusReady {
		d, err := s.blob.PresignGet(r.Context(), p.ObjectKey, p.Filename, pdfContentType, blob.MaxDownloadTTL)
		if err != nil {
			s.WriteError(w, r, err)
			return
		}
		view.Download = &d
	}
	noStore(w)
	WriteJSON(w, http.StatusOK, view)
}

type patchProjectRequest struct {
	Title       *string `json:"title"`
	Description *string `json:"description"`
}

func (s *Server) patchProject(w http.ResponseWriter, r *http.Request) {
	var in patchProjectRequest
	if err := DecodeJSON(w, r, s.bodyLimit(projectBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	p, _, err := s.loadProject(r, access.Edit)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	var errs []FieldError
	if in.Title != nil {
		*in.Title = strings.TrimSpace(*in.Title)
		if msg := checkText(*in.Title, 1, 200); msg != "" {
			errs = append(errs, FieldError{"title", msg})
		}
	}
	if in.Description != nil {
		*in.Description = strings.TrimSpace(*in.Description)
		if msg := checkText(*in.Description, 0, 5000); msg != "" {
			errs = append(errs, FieldError{"description", msg})
		}
	}
	if len(errs) > 0 {
		s.WriteError(w, r, Invalid("the patch has invalid fields", errs...))
		return
	}
	p, err = s.store.UpdateProject(r.Context(), actor(r).ID, p.ID, store.ProjectPatch{Title: in.Title, Description: in.Description})
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.setIndexLSN(w, r) // the title reaches its annotations' hits
	WriteJSON(w, http.StatusOK, newProjectResponse(p))
}

func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request) {
	p, _, err := s.loadProject(r, access.Admin)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if err := s.store.DeleteProject(r.Context(), actor(r).ID, p.ID); err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.setIndexLSN(w, r)
	w.WriteHeader(http.StatusNoContent)
}

type confirmRequest struct {
	FileSizeBytes *int64 `json:"file_size_bytes"`
	PageCount     *int   `json:"page_count"`
}

// confirmProject seals the uploaded object (a copy under a key no upload
// URL names, see blob.SealedKey), checks the copy itself (present, within
// the size limit, a PDF the parser can read) and marks the project ready
// with that copy and its real size, page count and ETag: what is served is
// exactly what was checked. A failed check deletes the upload: 422.
func (s *Server) confirmProject(w http.ResponseWriter, r *http.Request) {
	var hints confirmRequest
	if r.ContentLength != 0 {
		if err := DecodeJSON(w, r, s.bodyLimit(projectBody), &hints); err != nil {
			s.WriteError(w, r, err)
			return
		}
	}
	p, _, err := s.loadProject(r, access.Admin)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if p.Status == store.StatusReady {
		WriteJSON(w, http.StatusOK, newProjectResponse(p))
		return
	}
	ready, err := s.sealProjectUpload(r.Context(), p.ObjectKey)
	if err != nil {
		if now, ok := s.confirmedMeanwhile(r, p); ok { // a racing confirm won (and took the upload)
			WriteJSON(w, http.StatusOK, newProjectResponse(now))
			return
		}
		s.WriteError(w, r, err)
		return
	}
	p, err = s.store.MarkProjectReady(r.Context(), actor(r).ID, p.ID, ready)
	s.settleSeal(r.Context(), ready.From, ready.Key, p.CreatedAt, err == nil && p.ObjectKey == ready.Key)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, newProjectResponse(p))
}

// confirmedMeanwhile reloads p and says whether it is ready now.
func (s *Server) confirmedMeanwhile(r *http.Request, p store.Project) (store.Project, bool) {
	now, err := s.store.ProjectByID(r.Context(), actor(r).ID, p.ID)
	return now, err == nil && now.Status == store.StatusReady
}

// sealProjectUpload copies the upload to a new sealed key and checks the
// copy; on failure the copy is gone, and so is a rejected upload (422).
func (s *Server) sealProjectUpload(ctx context.Context, upload string) (store.ReadyUpload, error) {
	if err := s.checkUploadSize(ctx, upload); err != nil {
		return store.ReadyUpload{}, err
	}
	sealed, err := s.seal(ctx, upload)
	if err != nil {
		return store.ReadyUpload{}, err
	}
	info, pages, err := s.checkPDF(ctx, sealed)
	if err != nil {
		s.dropObjects(ctx, sealed)
		if isRejection(err) {
			s.dropObjects(ctx, upload)
		}
		return store.ReadyUpload{}, err
	}
	return store.ReadyUpload{From: upload, Key: sealed, Size: info.Size, Pages: pages, ETag: info.ETag}, nil
}

// checkUploadSize refuses a missing, empty or oversized upload before it
// is copied (a refused one is deleted).
func (s *Server) checkUploadSize(ctx context.Context, key string) error {
	info, err := s.blob.Stat(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return noUpload()
	}
	if err != nil {
		return err
	}
	if err := s.sizeProblem(info.Size); err != nil {
		s.dropObjects(ctx, key)
		return err
	}
	return nil
}

func noUpload() error {
	return NewProblem(http.StatusUnprocessableEntity, CodeInvalidUpload, "no file has been uploaded for this project")
}

func (s *Server) sizeProblem(size int64) error {
	switch {
	case size == 0:
		return NewProblem(http.StatusUnprocessableEntity, CodeInvalidUpload, "the uploaded file is empty")
	case size > s.cfg.MaxUploadBytes:
		return NewProblem(http.StatusUnprocessableEntity, CodeInvalidUpload,
			fmt.Sprintf("the uploaded file has %d bytes; the limit is %d", size, s.cfg.MaxUploadBytes))
	}
	return nil
}

// isRejection says whether err is a 422 about the upload itself.
func isRejection(err error) bool {
	var p *Problem
	return errors.As(err, &p) && p.Code == CodeInvalidUpload
}

// checkPDF inspects a sealed object (it cannot change while it is read)
// and returns its info and page count, or 422 with the reason.
func (s *Server) checkPDF(ctx context.Context, key string) (blob.Info, int, error) {
	info, err := s.blob.Stat(ctx, key)
	if err != nil {
		return blob.Info{}, 0, err
	}
	if err := s.sizeProblem(info.Size); err != nil {
		return blob.Info{}, 0, err
	}
	path, _, err := blob.ToTempFile(ctx, s.blob, key, info.Size)
	if err != nil {
		return blob.Info{}, 0, err
	}
	defer os.Remove(path)
	if !hasPDFMagic(path) {
		return blob.Info{}, 0, NewProblem(http.StatusUnprocessableEntity, CodeInvalidUpload, "the uploaded file is not a PDF (it does not start with %PDF-)")
	}
	res, err := s.pdf.Inspect(ctx, path, false)
	if errors.Is(err, pdf.ErrUnreadable) {
		return blob.Info{}, 0, NewProblem(http.StatusUnprocessableEntity, CodeInvalidUpload,
			"the PDF cannot be read: "+strings.TrimPrefix(err.Error(), pdf.ErrUnreadable.Error()+": "))
	}
	if err != nil {
		return blob.Info{}, 0, err
	}
	return info, res.Pages, nil
}

func hasPDFMagic(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 5)
	_, err = io.ReadFull(f, head)
	return err == nil && string(head) == "%PDF-"
}

// projectResponse is a project as the API answers it: its object key and
// ETag stay inside.
type projectResponse struct {
	ID            uuid.UUID `json:"id"`
	OwnerID       uuid.UUID `json:"owner_id"`
	Title         string    `json:"title"`
	Description   string    `json:"description"`
	Filename      string    `json:"filename"`
	ContentType   string    `json:"content_type"`
	Status        string    `json:"status"`
	FileSizeBytes *int64    `json:"file_size_bytes"`
	PageCount     *int      `json:"page_count"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func newProjectResponse(p store.Project) projectResponse {
	return projectResponse{ID: p.ID, OwnerID: p.OwnerID, Title: p.Title, Description: p.Description,
		Filename: p.Filename, ContentType: p.ContentType, Status: p.Status, FileSizeBytes: p.FileSizeBytes,
		PageCount: p.PageCount, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

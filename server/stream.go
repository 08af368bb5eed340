package server

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/store"
)

// streamProject sends a project's PDF for the in-app viewer: one byte range
// (206) or all of it, with a strong ETag, 304 on If-None-Match, and
// private caching that revalidates (so a revoked grant stops at once).
// The bytes are the sealed copy confirm checked; an object whose ETag is
// not the confirmed one is refused (500), never sent under that size.
func (s *Server) streamProject(w http.ResponseWriter, r *http.Request) {
	p, err := s.viewablePDF(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	size, etag := *p.FileSizeBytes, *p.ETag
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Accept-Ranges", "bytes")
	h.Set("Vary", "Authorization")
	if blob.ETagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	rng, status := blob.ParseRange(r.Header.Get("Range"), size)
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
		rng, status = nil, http.StatusOK // the client's copy is stale: send it all
	}
	if status == http.StatusRequestedRangeNotSatisfiable {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		s.WriteError(w, r, NewProblem(status, "range_not_satisfiable", "the range is outside the file"))
		return
	}
	body, info, err := s.blob.Open(r.Context(), p.ObjectKey, rng)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	defer body.Close()
	if info.ETag != etag { // not the confirmed bytes: never serve them
		s.WriteError(w, r, fmt.Errorf("stream: object %s has ETag %s, confirmed %s", p.ObjectKey, info.ETag, etag))
		return
	}
	h.Set("Content-Type", pdfContentType)
	h.Set("Content-Disposition", inlineDisposition(p.Filename))
	length := size
	if rng != nil {
		length = rng.End - rng.Start + 1
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rng.Start, rng.End, size))
		status = http.StatusPartialContent
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		io.Copy(w, body) //nolint:errcheck // the client went away
	}
}

// projectObject tells a caller who may view a project where its PDF is
// stored, so that the edge can stream the bytes from object storage itself
// (GET /api/projects/{id}/stream at the edge). Nothing here is secret from
// a viewer: a presigned download URL names the same key.
func (s *Server) projectObject(w http.ResponseWriter, r *http.Request) {
	p, err := s.viewablePDF(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	noStore(w)
	WriteJSON(w, http.StatusOK, ProjectObject{Key: p.ObjectKey, Size: *p.FileSizeBytes, ETag: *p.ETag,
		ContentType:        pdfContentType,
		ContentDisposition: inlineDisposition(p.Filename)})
}

// ProjectObject is the answer of GET /api/projects/{id}/object.
type ProjectObject struct {
	Key                string `json:"key"`
	Size               int64  `json:"size"`
	ETag               string `json:"etag"`
	ContentType        string `json:"content_type"`
	ContentDisposition string `json:"content_disposition"`
}

// viewablePDF loads the project the request names if the caller may view
// it, and requires its confirmed PDF (409 before that).
func (s *Server) viewablePDF(r *http.Request) (store.Project, error) {
	p, _, err := s.loadProject(r, access.View)
	if err != nil {
		return p, err
	}
	if p.Status != store.StatusReady || p.FileSizeBytes == nil || p.ETag == nil {
		return p, NewProblem(http.StatusConflict, CodeConflict, "the project has no confirmed PDF yet")
	}
	return p, nil
}

// inlineDisposition shows a PDF in the viewer under its file name.
func inlineDisposition(filename string) string {
	return strings.Replace(blob.ContentDisposition(filename), "attachment", "inline", 1)
}

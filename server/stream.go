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
func (s *Server) streamProject(w http.ResponseWriter, r *http.Request) {
	p, _, err := s.loadProject(r, access.View)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if p.Status != store.StatusReady || p.FileSizeBytes == nil || p.ETag == nil {
		s.WriteError(w, r, NewProblem(http.StatusConflict, CodeConflict, "the project has no confirmed PDF yet"))
		return
	}
	size, etag := *p.FileSizeBytes, *p.ETag
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Accept-Ranges", "bytes")
	h.Set("Vary", "Authorization")
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	rng, status := parseRange(r.Header.Get("Range"), size)
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
		rng, status = nil, http.StatusOK // the client's copy is stale: send it all
	}
	if status == http.StatusRequestedRangeNotSatisfiable {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		s.WriteError(w, r, NewProblem(status, "range_not_satisfiable", "the range is outside the file"))
		return
	}
	body, _, err := s.blob.Open(r.Context(), p.ObjectKey, rng)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	defer body.Close()
	h.Set("Content-Type", pdfContentType)
	h.Set("Content-Disposition", strings.Replace(blob.ContentDisposition(p.Filename), "attachment", "inline", 1))
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

// etagMatch implements If-None-Match (weak comparison, lists, "*").
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// parseRange reads a single-range "bytes=" header against size. It returns
// no range and 200 for no (or an unsupported multi-) range, a range and 206,
// or 416 when the range lies outside the file.
func parseRange(header string, size int64) (*blob.Range, int) {
	spec, ok := strings.CutPrefix(header, "bytes=")
	if header == "" || !ok || strings.Contains(spec, ",") {
		return nil, http.StatusOK
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return nil, http.StatusOK
	}
	var r blob.Range
	switch {
	case first == "": // suffix: the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return nil, http.StatusRequestedRangeNotSatisfiable
		}
		r = blob.Range{Start: max(0, size-n), End: size - 1}
	default:
		start, err := strconv.ParseInt(first, 10, 64)
		if err != nil || start < 0 {
			return nil, http.StatusOK
		}
		end := size - 1
		if last != "" {
			if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < start {
				return nil, http.StatusOK
			}
		}
		if start >= size {
			return nil, http.StatusRequestedRangeNotSatisfiable
		}
		r = blob.Range{Start: start, End: min(end, size-1)}
	}
	return &r, http.StatusPartialContent
}

// projectObject tells a caller who may view a project where its PDF is
// stored, so that the edge can stream the bytes from object storage itself
// (GET /api/projects/{id}/stream at the edge). Nothing here is secret from
// a viewer: a presigned download URL names the same key.
func (s *Server) projectObject(w http.ResponseWriter, r *http.Request) {
	p, _, err := s.loadProject(r, access.View)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if p.Status != store.StatusReady || p.FileSizeBytes == nil || p.ETag == nil {
		s.WriteError(w, r, NewProblem(http.StatusConflict, CodeConflict, "the project has no confirmed PDF yet"))
		return
	}
	noStore(w)
	WriteJSON(w, http.StatusOK, ProjectObject{Key: p.ObjectKey, Size: *p.FileSizeBytes, ETag: *p.ETag,
		ContentType:        pdfContentType,
		ContentDisposition: strings.Replace(blob.ContentDisposition(p.Filename), "attachment", "inline", 1)})
}

// ProjectObject is the answer of GET /api/projects/{id}/object.
type ProjectObject struct {
	Key                string `json:"key"`
	Size               int64  `json:"size"`
	ETag               string `json:"etag"`
	ContentType        string `json:"content_type"`
	ContentDisposition string `json:"content_disposition"`
}

package edge

import (
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/sostenuto/sostenuto/edge/rules"
)

// pageImage sends the image of a project's page from object storage: the
// node decides (GET .../pages/{n}/image/object: the caller may view the
// project, and the image is drawn and stored, now if it was missing), the
// bytes come from the store and never pass through a node. The node's
// answer kept for AuthzTTL per user, page and width; the headers, ETag
// and 304 are the node's own.
func (e *Edge) pageImage(w http.ResponseWriter, r *http.Request) {
	setKind(r, "page_image")
	id, ok := projectOf(w, r)
	if !ok {
		return
	}
	obj, err := e.authorizeAt(r, imageObjectPath(r, id))
	if err != nil {
		e.refuse(w, r, err)
		return
	}
	h := w.Header()
	h.Set("ETag", obj.ETag)
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Vary", "Authorization")
	if rules.ETagMatch(r.Header.Get("If-None-Match"), obj.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	e.sendObject(w, r, obj)
}

// imageObjectPath is the node's decision route for the requested image;
// the node checks the page number and width.
func imageObjectPath(r *http.Request, id string) string {
	p := "/api/projects/" + id + "/pages/" + url.PathEscape(chi.URLParam(r, "n")) + "/image/object"
	if q := r.URL.Query(); q.Has("width") {
		p += "?width=" + url.QueryEscape(q.Get("width"))
	}
	return p
}

// sendObject sends a whole stored object the node named, if it is still
// the one the node saw (its ETag).
func (e *Edge) sendObject(w http.ResponseWriter, r *http.Request, obj object) {
	body, info, err := e.cfg.Blob.Open(r.Context(), obj.Key, nil)
	if err != nil {
		e.logger.Warn("object storage read failed", "component", "edge", "request_id", r.Header.Get(headerRequestID), "key", obj.Key, "err", err)
		writeProblem(w, http.StatusBadGateway, "unavailable", "the file could not be read from storage; try again")
		return
	}
	defer body.Close()
	if info.ETag != obj.ETag {
		e.logger.Error("stored object differs from the node's", "component", "edge", "request_id", r.Header.Get(headerRequestID),
			"key", obj.Key, "etag", info.ETag, "node", obj.ETag)
		writeProblem(w, http.StatusBadGateway, "unavailable", "the stored file is not the one the node named")
		return
	}
	h := w.Header()
	h.Set("Content-Type", obj.ContentType)
	h.Set("Content-Disposition", obj.ContentDisposition)
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.Copy(w, body) //nolint:errcheck // the client went away
	}
}

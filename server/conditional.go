package server

import (
	"errors"
	"net/http"

	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/cache"
)

// Conditional answers. The JSON answers of POST /api/embeddings/generate,
// /api/search and /api/chat/query (without a session) carry a weak ETag
// built like the node's cache keys: the caller's visibility scope, what
// the local index holds (its data version, on this node: the node's id is
// part of the tag), the model and the request. A client (the edge) that
// kept an answer sends its tag in If-None-Match; the node computes the tag
// of a fresh answer without searching or answering and says 304 when they
// are equal, so a kept answer is served only while it is exactly what the
// node would answer now, and only to the user it was made for.

// etagOf makes a weak entity tag from parts.
func etagOf(parts ...string) string {
	k := cache.Key("etag", parts...)
	return `W/"` + k[len("etag:"):][:40] + `"`
}

// notModified answers 304 (with the tag) when the request's If-None-Match
// names etag.
func notModified(w http.ResponseWriter, r *http.Request, etag string) bool {
	if ifNoneMatch(r, etag) == nil {
		return false
	}
	writeNotModified(w, etag)
	return true
}

// errNotModified: the caller holds the answer already (If-None-Match).
var errNotModified = errors.New("not modified")

// ifNoneMatch is errNotModified when the request's If-None-Match names
// etag.
func ifNoneMatch(r *http.Request, etag string) error {
	if etag == "" || !blob.ETagMatch(r.Header.Get("If-None-Match"), etag) {
		return nil
	}
	return errNotModified
}

// writeNotModified answers 304 with the tag.
func writeNotModified(w http.ResponseWriter, etag string) {
	setValidator(w, etag)
	w.WriteHeader(http.StatusNotModified)
}

// revalidatable marks the answer with its tag when it has one and ok, and
// as not to be stored otherwise.
func revalidatable(w http.ResponseWriter, etag string, ok bool) {
	if etag != "" && ok {
		setValidator(w, etag)
		return
	}
	noStore(w)
}

// setValidator marks an answer as revalidatable: private (per user), never
// used without asking (no-cache), with its tag.
func setValidator(w http.ResponseWriter, etag string) {
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Vary", "Authorization")
}

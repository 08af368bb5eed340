package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/sync/singleflight"

	"github.com/sostenuto/sostenuto/edge/rules"
	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/clientip"
)

// object is a node's answer to GET /api/projects/{id}/object: the caller
// may view the project, and its PDF is stored there.
type object struct {
	Key                string `json:"key"`
	Size               int64  `json:"size"`
	ETag               string `json:"etag"`
	ContentType        string `json:"content_type"`
	ContentDisposition string `json:"content_disposition"`
}

// authzCache keeps "may view" decisions per user and project for ttl: the
// longest a revoked grant (or a deleted project) can still stream from the
// edge. Refusals are never kept.
type authzCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]authzEntry
	group   singleflight.Group
	sweep   time.Time
}

type authzEntry struct {
	obj     object
	expires time.Time
}

func newAuthzCache(ttl time.Duration) *authzCache {
	return &authzCache{ttl: ttl, entries: map[string]authzEntry{}}
}

func (c *authzCache) get(key string, now time.Time) (object, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || now.After(e.expires) {
		return object{}, false
	}
	return e.obj, true
}

func (c *authzCache) put(key string, obj object, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.After(c.sweep) { // drop expired entries now and then
		for k, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, k)
			}
		}
		c.sweep = now.Add(c.ttl)
	}
	c.entries[key] = authzEntry{obj: obj, expires: now.Add(c.ttl)}
}

// refusal is a node's answer other than 200 to the authorization request,
// relayed as it is.
type refusal struct {
	status int
	ctype  string
	body   []byte
}

func (r *refusal) Error() string { return fmt.Sprintf("node refused: %d", r.status) }

// authorize returns the object of project id for the caller, from the
// cache or from a node.
func (e *Edge) authorize(r *http.Request, id string) (object, error) {
	return e.authorizeAt(r, "/api/projects/"+id+"/object")
}

// authorizeAt returns the object a node's decision route (path, with its
// query) answers for the caller, from the cache or from a node.
func (e *Edge) authorizeAt(r *http.Request, path string) (object, error) {
	key := rules.DecisionKey(subject(r), path)
	if obj, ok := e.authz.get(key, time.Now()); ok {
		e.metrics.authz.WithLabelValues("cached", "allowed").Inc()
		return obj, nil
	}
	v, err, _ := e.authz.group.Do(key+"|"+r.Header.Get("Authorization"), func() (any, error) {
		obj, err := e.askNode(r, path)
		if err == nil {
			e.authz.put(key, obj, time.Now())
		}
		return obj, err
	})
	outcome := "allowed"
	if err != nil {
		outcome = "refused"
	}
	e.metrics.authz.WithLabelValues("node", outcome).Inc()
	if err != nil {
		return object{}, err
	}
	return v.(object), nil
}

func (e *Edge) askNode(r *http.Request, path string) (object, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), e.cfg.DecisionTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, planKey{}, &plan{idempotent: true})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://node"+path, nil)
	if err != nil {
		return object{}, err
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	req.Header.Set(headerRequestID, r.Header.Get(headerRequestID))
	req.Header.Set("X-Forwarded-For", forwardedFor(e, r))
	resp, err := e.client.Do(req)
	if err != nil {
		return object{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return object{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return object{}, &refusal{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: body}
	}
	var obj object
	if err := json.Unmarshal(body, &obj); err != nil || obj.Key == "" || obj.Size <= 0 || obj.ETag == "" {
		return object{}, fmt.Errorf("edge: the node's object answer is malformed: %s", body)
	}
	return obj, nil
}

// forwardedFor is the X-Forwarded-For the edge sends for r: a trusted
// proxy's chain with the peer added, or the peer alone.
func forwardedFor(e *Edge, r *http.Request) string {
	peer := clientip.Peer(r)
	if e.cfg.TrustedProxies.Trusts(peer) {
		if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			out := ""
			for _, p := range prior {
				out += p + ", "
			}
			return out + peer
		}
	}
	return peer
}

// refuse answers a failed authorization: the node's refusal as it is, or
// 503 when no node could decide.
func (e *Edge) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if ref, ok := err.(*refusal); ok {
		if ref.ctype != "" {
			w.Header().Set("Content-Type", ref.ctype)
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(ref.status)
		w.Write(ref.body) //nolint:errcheck // the client went away
		return
	}
	if r.Context().Err() != nil {
		return
	}
	e.logger.Warn("stream authorization failed", "component", "edge", "request_id", r.Header.Get(headerRequestID), "err", err)
	writeProblem(w, http.StatusServiceUnavailable, "unavailable", "the access decision could not be made; try again")
}

// projectOf reads the project id of a stream or page-image request that
// carries a verified token; otherwise it answers 401 (no token) or 404 (not
// a project id) itself and returns false.
func projectOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := chi.URLParam(r, "id")
	if subject(r) == "" {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeProblem(w, http.StatusUnauthorized, "unauthenticated", "an access token is required")
		return "", false
	}
	if !rules.ValidProjectID(id) {
		writeProblem(w, http.StatusNotFound, "not_found", "no such project")
		return "", false
	}
	return id, true
}

// stream sends a project's PDF from object storage: the node decides
// whether the caller may view it (kept for AuthzTTL), the bytes come from
// the store and never pass through a node. One byte range (206) or all of
// it, a strong ETag, 304 on If-None-Match, private caching that
// revalidates: the node's own answer, byte for byte. The key is the sealed
// copy the node confirmed; an object whose ETag differs is not sent.
func (e *Edge) stream(w http.ResponseWriter, r *http.Request) {
	setKind(r, "stream")
	id, ok := projectOf(w, r)
	if !ok {
		return
	}
	obj, err := e.authorize(r, id)
	if err != nil {
		e.refuse(w, r, err)
		return
	}
	h := w.Header()
	h.Set("ETag", obj.ETag)
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Accept-Ranges", "bytes")
	h.Set("Vary", "Authorization")
	sv := rules.ServeObject(r.Header.Get("If-None-Match"), r.Header.Get("Range"), r.Header.Get("If-Range"), obj.ETag, obj.Size)
	rng, status := sv.Range, sv.Status
	if status == http.StatusNotModified {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if status == http.StatusRequestedRangeNotSatisfiable {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", obj.Size))
		writeProblem(w, status, "range_not_satisfiable", "the range is outside the file")
		return
	}
	body, info, err := e.cfg.Blob.Open(r.Context(), obj.Key, (*blob.Range)(rng))
	if err != nil {
		e.logger.Warn("object storage read failed", "component", "edge", "request_id", r.Header.Get(headerRequestID), "key", obj.Key, "err", err)
		writeProblem(w, http.StatusBadGateway, "unavailable", "the file could not be read from storage; try again")
		return
	}
	defer body.Close()
	if info.ETag != obj.ETag { // not the bytes the node confirmed: never serve them
		e.logger.Error("stored object differs from the confirmed one", "component", "edge", "request_id", r.Header.Get(headerRequestID),
			"key", obj.Key, "etag", info.ETag, "confirmed", obj.ETag)
		writeProblem(w, http.StatusBadGateway, "unavailable", "the stored file is not the confirmed one")
		return
	}
	h.Set("Content-Type", obj.ContentType)
	h.Set("Content-Disposition", obj.ContentDisposition)
	length := obj.Size
	if rng != nil {
		length = rng.End - rng.Start + 1
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rng.Start, rng.End, obj.Size))
		status = http.StatusPartialContent
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		io.Copy(w, body) //nolint:errcheck // the client went away
	}
}

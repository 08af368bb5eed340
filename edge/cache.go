package edge

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/sostenuto/sostenuto/edge/rules"
)

// answer is a kept JSON answer: the node's tag, the node that made it
// (revalidated there first: its tag names its index), the headers a client
// needs and the body.
type answer struct {
	Key    string
	ETag   string
	Node   string
	Header map[string]string
	Body   []byte
}

// answerCache is a bounded LRU of answers (entries × largest answer bounds
// its memory), optionally saved to a file across restarts. Kept answers
// are never served without the node's 304: the key holds the verified user
// (issuer and subject), the route and the exact request body; the node's
// tag holds the user's visibility scope, the index content and the model.
type answerCache struct {
	lru      *lru.Cache[string, *answer]
	maxBytes int64
}

func newAnswerCache(entries int, maxBytes int64) (*answerCache, error) {
	c, err := lru.New[string, *answer](entries)
	if err != nil {
		return nil, err
	}
	return &answerCache{lru: c, maxBytes: maxBytes}, nil
}

// save writes every entry to path (atomically); it returns how many.
func (c *answerCache) save(path string) (int, error) {
	keys := c.lru.Keys() // oldest first, so a load keeps the order
	entries := make([]*answer, 0, len(keys))
	for _, k := range keys {
		if a, ok := c.lru.Peek(k); ok {
			entries = append(entries, a)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".edge-cache-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	if err := gob.NewEncoder(tmp).Encode(cacheFile{Version: cacheFileVersion, Entries: entries}); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	return len(entries), os.Rename(tmp.Name(), path)
}

// load reads a file save wrote; a missing file is an empty cache.
func (c *answerCache) load(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var cf cacheFile
	if err := gob.NewDecoder(f).Decode(&cf); err != nil {
		return 0, err
	}
	if cf.Version != cacheFileVersion {
		return 0, fmt.Errorf("cache file version %d, want %d", cf.Version, cacheFileVersion)
	}
	n := 0
	for _, a := range cf.Entries {
		if a != nil && a.Key != "" && a.ETag != "" && int64(len(a.Body)) <= c.maxBytes {
			c.lru.Add(a.Key, a)
			n++
		}
	}
	return n, nil
}

type cacheFile struct {
	Version int
	Entries []*answer
}

const cacheFileVersion = 1

// cacheOp is one request through the cache, carried in its plan.
type cacheOp struct {
	c     *answerCache
	route string
	key   string
	hit   *answer
	m     *metrics
}

// cached serves POST embeddings/search/chat: a kept answer is sent to the
// node that made it with If-None-Match; on 304 the kept body is the answer
// (X-Edge-Cache: hit), otherwise the node's new answer is passed on and
// kept (miss). Streams, chat inside a session, requests without a verified
// token and requests with their own conditions pass through (bypass).
func (e *Edge) cached(w http.ResponseWriter, r *http.Request) {
	route := r.URL.Path
	if err := keepBody(r, e.cfg.MaxReplayBytes); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid_input", "the request body could not be read")
		return
	}
	in := rules.Request{Method: r.Method, Path: route, Subject: subject(r), Accept: r.Header.Get("Accept"),
		IfNoneMatch: r.Header.Get("If-None-Match"), Kept: r.GetBody != nil} // not kept: too large, the node will say 413
	if in.Kept {
		rc, _ := r.GetBody()
		in.Body, _ = io.ReadAll(rc)
	}
	rp := rules.PlanFor(in)
	pl := &plan{idempotent: rp.Idempotent}
	if !rp.Cache {
		e.metrics.cache.WithLabelValues(route, "bypass").Inc()
		e.forwardWith(w, r, pl)
		return
	}
	setKind(r, "cache")
	op := &cacheOp{c: e.answers, route: route, key: rp.Key, m: e.metrics}
	if a, ok := e.answers.lru.Get(op.key); ok {
		op.hit = a
		pl.prefer = a.Node
		r.Header.Set("If-None-Match", a.ETag)
	}
	pl.cache = op
	e.forwardWith(w, r, pl)
}

// modify is the cache's part of the proxy's ModifyResponse.
func (op *cacheOp) modify(resp *http.Response, node string) {
	if resp.StatusCode == http.StatusNotModified && op.hit != nil {
		op.m.cache.WithLabelValues(op.route, "hit").Inc()
		resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
		for k, v := range op.hit.Header {
			resp.Header.Set(k, v)
		}
		resp.Header.Set("Content-Length", strconv.Itoa(len(op.hit.Body)))
		resp.Header.Set("X-Edge-Cache", "hit")
		resp.ContentLength = int64(len(op.hit.Body))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(op.hit.Body))
		return
	}
	result := "miss"
	if op.hit != nil {
		result = "stale"
		op.c.lru.Remove(op.key)
	}
	op.m.cache.WithLabelValues(op.route, result).Inc()
	resp.Header.Set("X-Edge-Cache", "miss")
	etag := resp.Header.Get("ETag")
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if !rules.Keepable(resp.StatusCode, etag, mt, resp.ContentLength, op.c.maxBytes) {
		return
	}
	a := &answer{Key: op.key, ETag: etag, Node: node, Header: map[string]string{}}
	for _, h := range []string{"Content-Type", "Cache-Control", "Vary", "ETag"} {
		if v := resp.Header.Get(h); v != "" {
			a.Header[h] = v
		}
	}
	resp.Body = &capture{ReadCloser: resp.Body, max: op.c.maxBytes, done: func(b []byte) {
		a.Body = b
		op.c.lru.Add(op.key, a)
	}}
}

// capture keeps what is read through it and hands it over when the body
// was read to its end within max bytes.
type capture struct {
	io.ReadCloser
	buf  bytes.Buffer
	max  int64
	over bool
	done func([]byte)
}

func (c *capture) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if !c.over {
		if int64(c.buf.Len()+n) > c.max {
			c.over = true
			c.buf = bytes.Buffer{}
		} else {
			c.buf.Write(p[:n])
		}
	}
	if errors.Is(err, io.EOF) && !c.over && c.done != nil {
		c.done(c.buf.Bytes())
		c.done = nil
	}
	return n, err
}

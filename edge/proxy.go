package edge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sostenuto/sostenuto/edge/rules"
	"github.com/sostenuto/sostenuto/server/clientip"
)

// plan is what the transport needs to know of a request: whether it may be
// sent again after a failure that may have reached a node, and which node
// it should go to first (a kept answer is revalidated where it was made).
type plan struct {
	idempotent bool
	prefer     string
	served     atomic.Pointer[string] // the node that answered
	cache      *cacheOp               // set when the answer cache takes part
}

type planKey struct{}

func planOf(ctx context.Context) *plan {
	p, _ := ctx.Value(planKey{}).(*plan)
	return p
}

// errNoNode is the transport's error when every node failed or none is
// healthy.
var errNoNode = errors.New("no node is available")

func newTransport(headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // the nodes are reached directly
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// retrier sends a request to a node chosen by the pool and, when that
// fails, to another: always when the node could not be reached (nothing
// was sent), and for idempotent requests also when the connection broke
// or the node answered 502/504. A body is sent again only when the
// edge kept it (GetBody).
type retrier struct {
	pool    *pool
	base    http.RoundTripper
	metrics *metrics
}

func (t *retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	pl := planOf(req.Context())
	if pl == nil {
		pl = &plan{}
	}
	tried := map[*backend]bool{}
	var lastErr error
	unreached := true // every attempt so far failed to connect
	for attempt := 0; ; attempt++ {
		var b *backend
		if attempt == 0 && pl.prefer != "" {
			b = t.pool.byHost(pl.prefer)
		}
		if b == nil {
			b = t.pool.pick(tried)
		}
		if b == nil {
			if unreached {
				return nil, errors.Join(errNoNode, lastErr)
			}
			return nil, lastErr
		}
		tried[b] = true
		out := req.Clone(req.Context())
		out.URL.Scheme, out.URL.Host, out.Host = b.url.Scheme, b.url.Host, ""
		if attempt > 0 {
			t.metrics.retries.Inc()
			if req.Body != nil && req.Body != http.NoBody {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				out.Body = body
			}
		}
		b.inflight.Add(1)
		resp, err := t.base.RoundTrip(out)
		if err != nil {
			b.inflight.Add(-1)
			t.metrics.upstream.WithLabelValues(b.name, "error").Inc()
			if req.Context().Err() != nil {
				return nil, err // the client went away
			}
			f := failureOf(err)
			if rules.MarkDown(f) {
				t.pool.down(b, err)
			}
			lastErr, unreached = err, unreached && f == rules.Unreached
			if rules.RetryAfterFailure(f, pl.idempotent, replayable(req)) {
				continue
			}
			return nil, err
		}
		if rules.RetryStatus(resp.StatusCode, pl.idempotent, replayable(req)) && t.pool.pick(tried) != nil {
			t.metrics.upstream.WithLabelValues(b.name, "unavailable").Inc()
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // drained for reuse
			resp.Body.Close()
			b.inflight.Add(-1)
			unreached = false
			continue
		}
		t.metrics.upstream.WithLabelValues(b.name, "ok").Inc()
		name := b.name
		pl.served.Store(&name)
		resp.Body = &doneBody{ReadCloser: resp.Body, done: func() { b.inflight.Add(-1) }}
		return resp, nil
	}
}

// replayable: no body, or one the edge kept.
func replayable(r *http.Request) bool {
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}

// failureOf tells how an attempt failed: the node unreached (a dial
// error: nothing was sent), the connection broken, or "" for another error.
func failureOf(err error) rules.Failure {
	switch {
	case isDialError(err):
		return rules.Unreached
	case isConnError(err):
		return rules.Broken
	}
	return ""
}

// isDialError: the node was not reached, so nothing of the request was
// sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// isConnError: the connection broke (reset, closed early).
func isConnError(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op)
}

// doneBody calls done once, when the body is closed.
type doneBody struct {
	io.ReadCloser
	once atomic.Bool
	done func()
}

func (d *doneBody) Close() error {
	err := d.ReadCloser.Close()
	if d.once.CompareAndSwap(false, true) {
		d.done()
	}
	return err
}

// newProxy is the reverse proxy to the nodes: X-Forwarded-For from the
// real peer (a trusted proxy's chain kept, anyone else's dropped), the
// request id passed on, server-sent events flushed as they come.
func (e *Edge) newProxy(tr http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "node" // the retrier picks the node
			// Rewrite starts with the X-Forwarded-* headers removed; a
			// trusted proxy's chain is put back before the peer is added.
			if e.cfg.TrustedProxies.Trusts(clientip.Peer(pr.In)) {
				if v := pr.In.Header.Values("X-Forwarded-For"); len(v) > 0 {
					pr.Out.Header["X-Forwarded-For"] = append([]string(nil), v...)
				}
			}
			pr.SetXForwarded()
			pr.Out.Header.Set(headerRequestID, pr.In.Header.Get(headerRequestID))
		},
		Transport:     &retrier{pool: e.pool, base: tr, metrics: e.metrics},
		FlushInterval: 50 * time.Millisecond, // event streams are flushed at once regardless
		ErrorLog:      nil,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away
			}
			if errors.Is(err, errNoNode) {
				writeProblem(w, http.StatusServiceUnavailable, "unavailable", "no node is available; try again shortly")
				return
			}
			e.logger.Warn("upstream failed", "component", "edge", "request_id", r.Header.Get(headerRequestID), "err", err)
			writeProblem(w, http.StatusBadGateway, "unavailable", "the node did not answer; try again")
		},
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del(headerRequestID) // the edge answers it already (the same id)
			if len(e.cfg.CORSOrigins) > 0 {  // the edge answers CORS for every route
				for k := range resp.Header {
					if strings.HasPrefix(k, "Access-Control-") {
						resp.Header.Del(k)
					}
				}
			}
			pl := planOf(resp.Request.Context())
			if pl == nil {
				return nil
			}
			node := ""
			if n := pl.served.Load(); n != nil {
				node = *n
				resp.Header.Set("X-Sostenuto-Node", node)
			}
			if pl.cache != nil {
				pl.cache.modify(resp, node)
			}
			return nil
		},
	}
}

// forward sends a request on to a node, keeping a small body so it can be
// sent again; GET, HEAD, OPTIONS, PUT and DELETE are idempotent.
func (e *Edge) forward(w http.ResponseWriter, r *http.Request) {
	pl := &plan{idempotent: rules.IdempotentMethod(r.Method)}
	e.forwardWith(w, r, pl)
}

func (e *Edge) forwardWith(w http.ResponseWriter, r *http.Request, pl *plan) {
	if err := keepBody(r, e.cfg.MaxReplayBytes); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid_input", "the request body could not be read")
		return
	}
	e.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), planKey{}, pl)))
}

// keepBody reads a body of at most limit bytes into memory and makes it
// replayable (GetBody); a larger one is left streaming.
func keepBody(r *http.Request, limit int64) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	if r.ContentLength > limit {
		return nil
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return err
	}
	if int64(len(head)) > limit { // unknown length, too long: stream it
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
		return nil
	}
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(head))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(head)), nil }
	r.ContentLength = int64(len(head))
	return nil
}

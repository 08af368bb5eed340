// Package edge is the logic of sostenuto-edge, the proxy in front of the
// nodes: it checks access tokens with the nodes' published keys, spreads
// requests over healthy nodes (power of two choices on outstanding
// requests, active checks on /api/ready, idempotent requests retried on
// another node), passes server-sent events through unbuffered, streams
// project PDFs and page images straight from object storage after a
// node's authorization decision, and keeps JSON answers of embeddings, searches and chat that it
// revalidates with the node (ETag / If-None-Match) before serving them
// again. It imports neither pgx nor raft nor bleve: everything it knows of
// users and data it learns from the nodes over HTTP.
package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/sostenuto/sostenuto/edge/rules"
	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/clientip"
	"github.com/sostenuto/sostenuto/server/cors"
	"github.com/sostenuto/sostenuto/server/requestid"
	"github.com/sostenuto/sostenuto/server/tracing"
)

// Config is the edge's configuration.
type Config struct {
	// Nodes are the base URLs of the nodes (http://host:port).
	Nodes []*url.URL
	// HealthInterval and HealthTimeout pace the active health checks.
	HealthInterval, HealthTimeout time.Duration
	// UpstreamTimeout bounds the wait for a node's response headers
	// (streams may then run longer).
	UpstreamTimeout time.Duration
	// DecisionTimeout bounds the wait for a node's decision on a stored
	// object (a PDF stream's or a page image's): the node may draw the
	// page image first, for up to its own request timeout (60 s by
	// default). Zero: UpstreamTimeout + 10 s.
	DecisionTimeout time.Duration
	// TrustedProxies may set X-Forwarded-For (a load balancer in front of
	// the edge); any other peer's copy is dropped.
	TrustedProxies clientip.Trusted
	// JWKSURLs publish the keys of access tokens (by default each node's
	// /api/auth/jwks.json); HS256Secrets verify HS256 tokens.
	JWKSURLs     []string
	JWKSRefresh  time.Duration
	HS256Secrets [][]byte
	Issuers      []string
	Audiences    []string
	Leeway       time.Duration
	// Blob is the object store the nodes write PDFs to; nil: streams are
	// proxied to the nodes.
	Blob blob.Store
	// AuthzTTL is how long a node's "may view" for a user and project is
	// reused: the longest a revoked grant can still stream.
	AuthzTTL time.Duration
	// CacheEntries bounds the answer cache (0: off); CacheMaxBytes bounds
	// one kept answer; CacheFile, when set, keeps the cache across
	// restarts.
	CacheEntries  int
	CacheMaxBytes int64
	CacheFile     string
	// CORSOrigins may call through the edge from browsers (with
	// credentials); the edge then answers CORS itself for every route.
	CORSOrigins []string
	// MaxReplayBytes bounds the request bodies the edge keeps to send
	// again to another node; larger bodies are streamed and not retried.
	MaxReplayBytes int64
	// Tracer records a span per request and per call to a node, and
	// carries the trace to the node (traceparent); nil: off (a caller's
	// traceparent is then passed on untouched).
	Tracer trace.TracerProvider
}

func (c *Config) defaults() {
	if c.HealthInterval <= 0 {
		c.HealthInterval = time.Second
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = time.Second
	}
	if c.UpstreamTimeout <= 0 {
		c.UpstreamTimeout = 60 * time.Second
	}
	if c.DecisionTimeout <= 0 {
		c.DecisionTimeout = c.UpstreamTimeout + 10*time.Second
	}
	if c.JWKSRefresh <= 0 {
		c.JWKSRefresh = 5 * time.Minute
	}
	if c.AuthzTTL <= 0 {
		c.AuthzTTL = DefaultAuthzTTL
	}
	if c.CacheMaxBytes <= 0 {
		c.CacheMaxBytes = 256 << 10
	}
	if c.MaxReplayBytes <= 0 {
		c.MaxReplayBytes = 1 << 20
	}
}

// DefaultAuthzTTL is the default of Config.AuthzTTL.
const DefaultAuthzTTL = 15 * time.Second

// Edge is the proxy.
type Edge struct {
	cfg     Config
	logger  *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	pool    *pool
	tokens  *verifier
	proxy   http.Handler
	authz   *authzCache
	answers *answerCache
	client  *http.Client // the edge's own calls to nodes (authorization)
	router  chi.Router
	handler http.Handler
}

// New builds the edge; ctx bounds its background key refreshes.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Edge, error) {
	cfg.defaults()
	if len(cfg.Nodes) == 0 {
		return nil, errors.New("edge: no nodes configured")
	}
	if len(cfg.JWKSURLs) == 0 {
		for _, n := range cfg.Nodes {
			cfg.JWKSURLs = append(cfg.JWKSURLs, n.JoinPath("/api/auth/jwks.json").String())
		}
	}
	reg := prometheus.NewRegistry()
	e := &Edge{cfg: cfg, logger: tracing.Logger(logger, cfg.Tracer), reg: reg, metrics: newMetrics(reg)}
	e.pool = newPool(cfg.Nodes, cfg.HealthInterval, cfg.HealthTimeout, logger, e.metrics)
	var err error
	if e.tokens, err = newVerifier(ctx, cfg); err != nil {
		return nil, err
	}
	tr := tracing.Transport(newTransport(cfg.UpstreamTimeout), cfg.Tracer, "node")
	e.client = &http.Client{Transport: &retrier{pool: e.pool, base: tr, metrics: e.metrics}, Timeout: cfg.DecisionTimeout}
	e.proxy = e.newProxy(tr)
	e.authz = newAuthzCache(cfg.AuthzTTL)
	if cfg.CacheEntries > 0 {
		if e.answers, err = newAnswerCache(cfg.CacheEntries, cfg.CacheMaxBytes); err != nil {
			return nil, err
		}
		if cfg.CacheFile != "" {
			n, err := e.answers.load(cfg.CacheFile)
			if err != nil {
				logger.Warn("the answer cache file could not be read; starting empty", "component", "edge", "file", cfg.CacheFile, "err", err)
			} else if n > 0 {
				logger.Info("answer cache restored", "component", "edge", "entries", n)
			}
		}
	}
	e.router = e.routes()
	e.handler = cors.Handler(cfg.CORSOrigins, e.router)
	return e, nil
}

// Handler is the edge's root handler.
func (e *Edge) Handler() http.Handler { return e.handler }

// Run checks the nodes' health until ctx ends, then saves the answer cache
// when a file is configured. The first round runs before Run returns
// control to the caller's listener (call Start first to have it done).
func (e *Edge) Run(ctx context.Context) error {
	e.pool.run(ctx)
	return e.Close()
}

// Start runs one round of health checks, so the edge knows which nodes are
// up before it takes requests.
func (e *Edge) Start(ctx context.Context) { e.pool.check(ctx) }

// Close saves the answer cache when a file is configured.
func (e *Edge) Close() error {
	if e.answers != nil && e.cfg.CacheFile != "" {
		n, err := e.answers.save(e.cfg.CacheFile)
		if err != nil {
			return fmt.Errorf("edge: save the answer cache: %w", err)
		}
		e.logger.Info("answer cache saved", "component", "edge", "entries", n, "file", e.cfg.CacheFile)
	}
	return nil
}

func (e *Edge) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(requestid.Middleware, tracing.Middleware(e.cfg.Tracer, spanName), e.observe, e.checkToken)
	r.Get("/metrics", promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{Registry: e.reg}).ServeHTTP)
	r.Get("/edge/health", e.health)
	if e.cfg.Blob != nil {
		r.Get("/api/projects/{id}/stream", e.stream)
		r.Head("/api/projects/{id}/stream", e.stream)
		r.Get("/api/projects/{id}/pages/{n}/image", e.pageImage)
	}
	if e.answers != nil {
		for _, p := range rules.CachedRoutes {
			r.Post(p, e.cached)
		}
	}
	r.NotFound(e.forward)
	r.MethodNotAllowed(e.forward)
	r.Handle("/*", http.HandlerFunc(e.forward))
	return r
}

// health is the edge's own liveness: 200 with the healthy node count, 503
// when no node is healthy.
func (e *Edge) health(w http.ResponseWriter, _ *http.Request) {
	n := e.pool.healthyCount()
	status, word := http.StatusOK, "ok"
	if n == 0 {
		status, word = http.StatusServiceUnavailable, "no healthy node"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status": word, "nodes_healthy": n, "nodes": len(e.pool.backends)}) //nolint:errcheck // the client went away
}

type ctxKey int

const (
	subjectKey ctxKey = iota
	kindKey
)

// headerRequestID carries the request id, to the nodes and back.
const headerRequestID = requestid.Header

// kind labels a request in metrics and logs; handlers refine it.
type kind struct{ name string }

func setKind(r *http.Request, name string) {
	if k, ok := r.Context().Value(kindKey).(*kind); ok {
		k.name = name
	}
}

// observe logs one line per request and feeds the metrics.
func (e *Edge) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		k := &kind{name: "proxy"}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), kindKey, k)))
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		elapsed := time.Since(start)
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("edge.kind", k.name))
		e.metrics.requests.WithLabelValues(k.name, fmt.Sprint(status)).Inc()
		e.metrics.duration.WithLabelValues(k.name).Observe(elapsed.Seconds())
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelWarn
		}
		e.logger.LogAttrs(r.Context(), level, "request",
			slog.String("component", "edge"),
			slog.String("request_id", r.Header.Get(headerRequestID)),
			slog.String("kind", k.name),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Int("bytes", ww.BytesWritten()),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.String("remote", e.cfg.TrustedProxies.Of(r)),
		)
	})
}

// spanName names a request's span by its route pattern: "GET
// /api/projects/{id}/stream", "POST /api/search", "POST /*" for a request
// passed on as it is.
func spanName(r *http.Request) (name, route string) {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if route = rc.RoutePattern(); route != "" {
			return r.Method + " " + route, route
		}
	}
	return r.Method, ""
}

// checkToken verifies a bearer token when the request carries one: a bad
// token is answered 401 here and never reaches a node. Requests without a
// token pass (the nodes answer 401 where one is needed).
func (e *Edge) checkToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, err := e.tokens.verify(r)
		switch rules.Decide(err, r.URL.Path) {
		case rules.TokenNone:
			e.metrics.tokens.WithLabelValues("none").Inc()
			next.ServeHTTP(w, r)
		case rules.TokenDropped:
			// A stale token on a route that needs none (a client refreshing
			// with its expired access token still attached): the request
			// goes on without it.
			e.metrics.tokens.WithLabelValues("dropped").Inc()
			r.Header.Del("Authorization")
			next.ServeHTTP(w, r)
		case rules.TokenRefused:
			e.metrics.tokens.WithLabelValues("refused").Inc()
			e.logger.Info("token refused at the edge", "component", "edge", "request_id", r.Header.Get(headerRequestID), "err", err)
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeProblem(w, http.StatusUnauthorized, "unauthenticated", "the access token is not valid")
		default:
			e.metrics.tokens.WithLabelValues("valid").Inc()
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), subjectKey, sub)))
		}
	})
}

// subject is the verified token's issuer|subject, or "".
func subject(r *http.Request) string {
	s, _ := r.Context().Value(subjectKey).(string)
	return s
}

// problem is an RFC 9457 answer, the same shape the nodes give.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(problem{ //nolint:errcheck // the client went away
		Type:   "https://sostenuto.dev/problems/" + strings.ReplaceAll(code, "_", "-"),
		Title:  http.StatusText(status),
		Status: status, Detail: detail, Code: code,
	})
}

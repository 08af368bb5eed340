// Package server is Sostenuto's HTTP API: the chi router, its middleware
// (request ids, access logs, metrics, panic recovery), problem+json errors,
// and one handler file per resource. Domain services live in subpackages
// and are passed in; the server holds no globals.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/clientip"
	"github.com/sostenuto/sostenuto/server/cors"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/ingest"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/rag"
	"github.com/sostenuto/sostenuto/server/ratelimit"
	"github.com/sostenuto/sostenuto/server/search"
	"github.com/sostenuto/sostenuto/server/store"
	"github.com/sostenuto/sostenuto/server/tracing"
)

// Config holds the HTTP settings of a node.
type Config struct {
	// MaxBodyBytes bounds JSON request bodies; larger ones answer 413.
	MaxBodyBytes int64
	// ReadyTimeout bounds each readiness check.
	ReadyTimeout time.Duration
	// MaxUploadBytes bounds uploaded PDFs (100 MiB by default).
	MaxUploadBytes int64
	// MaxDocumentBytes bounds the content of text documents (5 MiB).
	MaxDocumentBytes int64
	// Version is reported by /api/health.
	Version string
	// NodeID names this node in search answers and cluster status.
	NodeID string
	// MinLSNWait bounds how long a search waits for the local index to
	// reach min_lsn before answering from PostgreSQL.
	MinLSNWait time.Duration
	// ClusterSecret admits nodes joining the cluster (POST
	// /api/cluster/nodes); empty: only administrators may add nodes.
	ClusterSecret string
	// LinkAllowlist lists the hosts answers may link to (and their
	// subdomains); links and images elsewhere are removed.
	LinkAllowlist []string
	// CacheEntries bounds the in-process cache (10,000 by default; -1
	// turns caching off); the TTLs are those of its three layers
	// (embeddings 24 h, searches 5 min, answers 10 min by default).
	CacheEntries int
	// ChatRecheckHits re-checks every cached chat retrieval in PostgreSQL
	// (one round trip a hit; rag.Config.RecheckHits).
	ChatRecheckHits bool
	// TrustedProxies are the proxies (the edge) whose X-Forwarded-For
	// names the client.
	TrustedProxies clientip.Trusted
	// CORSOrigins may call the API from browsers (with credentials);
	// empty: same origin only.
	CORSOrigins []string
	// Limits bound requests: rates, time, open streams.
	Limits Limits
	// Fusion chooses how hybrid searches that name no weights fuse their
	// lists, per embedder (zero: search.DefaultFusion).
	Fusion                                        search.FusionDefaults
	EmbedCacheTTL, SearchCacheTTL, AnswerCacheTTL time.Duration
	// Rerank configures the optional rerank stage (Deps.Reranker).
	Rerank RerankConfig
}

// Pinger is what readiness needs of the database.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are the services the API is built on.
type Deps struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry
	DB       Pinger // readiness; usually the Store
	Store    *store.Store
	Auth     *auth.Service
	Access   *access.Service
	Blob     blob.Store
	PDF      *pdf.Checker
	Fetch    *ingest.Fetcher // URL checks of web sources
	Embedder embed.Embedder
	// Models are the configured embedders by name (the admin's choice
	// of a model to re-embed with); nil: Embedder alone, at embed.Dim.
	Models *embed.Models
	// Engine is the node's in-memory index; nil until replication feeds
	// one (searches then answer from PostgreSQL).
	Engine *index.Live
	// EngineReady reports whether the engine is fed and within its lag
	// bound; nil means never.
	EngineReady func() bool
	// EngineBased reports whether the engine holds a complete base (it
	// may lag); nil means never.
	EngineBased func() bool
	// Cluster is this node's Raft membership; nil without the index.
	Cluster Cluster
	// Answerer writes chat answers; the extractive provider when nil.
	Answerer rag.Provider
	// Rewriter makes chat follow-ups standalone; the built-in rule when nil.
	Rewriter rag.Rewriter
	// Cache is where the answer path caches; in process when nil.
	Cache cache.Store
	// Reranker reranks fused hits when a query asks; nil: not configured
	// (requested reranks keep the fused order, flagged not_configured).
	Reranker search.Reranker
	// Tracer records spans (HTTP requests, searches, embeddings, answers);
	// nil: tracing is off and nothing is installed.
	Tracer trace.TracerProvider
}

// RerankConfig configures the rerank stage.
type RerankConfig struct {
	// TopN is how many fused hits are reranked (50 if zero).
	TopN int
	// Default reranks searches and questions that do not say (only with
	// a Reranker).
	Default bool
}

// rerankDefault resolves a request's rerank field.
func (s *Server) rerankDefault(asked *bool) bool {
	if asked != nil {
		return *asked
	}
	return s.cfg.Rerank.Default && s.reranker != nil
}

// Server is the HTTP API of one node.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	reg     *prometheus.Registry
	metrics *httpMetrics
	db      Pinger
	store   *store.Store
	auth    *auth.Service
	access  *access.Service
	blob    blob.Store
	// localBlob is Blob when it is the local store, whose signed URLs
	// this server answers.
	localBlob   *blob.Local
	pdf         *pdf.Checker
	fetch       *ingest.Fetcher
	embedder    embed.Embedder
	models      *embed.Models
	engine      *index.Live
	engineOK    func() bool
	engineBased func() bool
	// acked is the newest write position this node answered
	// (X-Index-LSN: ackWrite).
	acked      atomic.Uint64
	cluster    Cluster
	caches     cache.Layers
	limiters   limiters
	streams    *streamSlots
	pages      *pageImages
	fallback   search.Slots // PostgreSQL search slots
	waiters    search.Slots // read-your-writes wait slots
	searcher   search.Searcher
	fusion     index.Fusion // the default of this node's embedder
	reranker   search.Reranker
	rerankID   string // the rerank stage's identity, for tags (search.Rerank.Identity)
	embeddings *rag.Embeddings
	rag        *rag.Service
	inflight   atomic.Int64
	tracer     trace.TracerProvider // nil: off
	router     chi.Router
	handler    http.Handler
}

// New builds the API and its routes.
func New(cfg Config, deps Deps) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = 100 << 20
	}
	if cfg.MaxDocumentBytes <= 0 {
		cfg.MaxDocumentBytes = 5 << 20
	}
	if cfg.MinLSNWait <= 0 {
		cfg.MinLSNWait = 2 * time.Second
	}
	if cfg.NodeID == "" {
		cfg.NodeID, _ = os.Hostname()
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 2 * time.Second
	}
	cfg.Limits.defaults()
	if cfg.Fusion.Method == "" {
		cfg.Fusion = search.DefaultFusion()
	}
	s := &Server{
		cfg:         cfg,
		logger:      tracing.Logger(deps.Logger, deps.Tracer),
		reg:         deps.Registry,
		metrics:     newHTTPMetrics(deps.Registry),
		db:          deps.DB,
		store:       deps.Store,
		auth:        deps.Auth,
		access:      deps.Access,
		blob:        deps.Blob,
		pdf:         deps.PDF,
		fetch:       deps.Fetch,
		embedder:    embed.Traced(deps.Embedder, deps.Tracer),
		models:      deps.Models,
		engine:      deps.Engine,
		engineOK:    deps.EngineReady,
		engineBased: deps.EngineBased,
		cluster:     deps.Cluster,
		reranker:    deps.Reranker,
		tracer:      deps.Tracer,
	}
	s.localBlob, _ = deps.Blob.(*blob.Local)
	s.limiters = limiters{ip: ratelimit.New(cfg.Limits.RateIP), user: ratelimit.New(cfg.Limits.RateUser),
		auth: ratelimit.New(cfg.Limits.RateAuth), chat: ratelimit.New(cfg.Limits.RateChat)}
	s.pages = newPageImages(deps.Registry)
	s.streams = &streamSlots{max: cfg.Limits.MaxStreamsPerUser, open: map[uuid.UUID]int{}}
	s.fallback = search.NewSlots(cfg.Limits.MaxFallbackSearches)
	s.waiters = search.NewSlots(cfg.Limits.MaxLSNWaiters)
	s.caches = newCaches(cfg, deps)
	s.services(deps.Answerer, deps.Rewriter)
	s.router = s.routes()
	s.handler = cors.Handler(cfg.CORSOrigins, s.router)
	if s.cluster != nil && s.reg != nil {
		s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sostenuto_index_lag_bytes",
			Help: "WAL bytes between PostgreSQL's current position and this node's applied one."}, s.lagBytes))
	}
	return s
}

// Handler returns the root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Router exposes the router so tests can walk every registered route.
func (s *Server) Router() chi.Routes { return s.router }

// routes registers every route of the API. Each route also appears in
// openapi.json (a test holds the two equal) and in the authorization matrix.
func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(requestID, tracing.Middleware(s.tracer, spanName), s.deadlines, s.metrics.track, s.accessLog, s.recoverer, securityHeaders, s.shed, s.limitIP)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, r, NewProblem(http.StatusNotFound, CodeNotFound, "no such resource"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, r, NewProblem(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			r.Method+" is not allowed on this resource"))
	})

	r.Get("/metrics", metricsHandler(s.reg).ServeHTTP)
	r.Route("/api", func(r chi.Router) {
		s.operationsRoutes(r)
		s.authRoutes(r)
		s.blobRoutes(r)
		s.clusterRoutes(r)
		r.Group(func(r chi.Router) {
			r.Use(s.requireAuth, s.limitUser)
			s.relationshipRoutes(r)
			s.projectRoutes(r)
			s.pageRoutes(r)
			s.annotationRoutes(r)
			s.knowledgeRoutes(r)
			s.searchRoutes(r)
			s.embeddingRoutes(r)
			s.embeddingModelRoutes(r)
			s.chatRoutes(r)
		})
		r.Group(func(r chi.Router) {
			// Authenticated too, its session confirmed in the answer's own
			// round trip (chat.go chatQuery).
			r.Use(s.requireAuthDeferred, s.limitUser)
			r.With(s.limitChat).Post("/chat/query", s.chatQuery)
		})
	})
	return r
}

// engineReady reports whether the local engine may answer: fed, within
// its lag bound, and searching a model this node can embed queries with.
func (s *Server) engineReady() bool {
	return s.engineOK != nil && s.engineOK() && s.modelProblem() == nil
}

// services builds the search and answer services over the node's parts.
func (s *Server) services(answerer rag.Provider, rewriter rag.Rewriter) {
	if answerer == nil {
		x, err := rag.NewExtractive()
		if err != nil {
			panic(err) // the analyzer is compiled in
		}
		answerer = x
	}
	answerer, rewriter = rag.TracedProvider(answerer, s.tracer), rag.TracedRewriter(rewriter, s.tracer)
	m := search.Metrics{Limited: s.metrics.limited, Vector: s.metrics.vector, Text: s.metrics.bm25}
	// Not while the index is behind a write this node acknowledged: a
	// relationship removed here is read afresh until the index has it.
	scopes := search.NewScopeCache(s.engine, func() bool { return s.engineReady() && !s.indexBehindWrites() }, s.store, 0)
	idx, lagging := search.NewIndex(search.IndexConfig{Live: s.engine, Ready: s.engineReady,
		Based:    func() bool { return s.engineBased != nil && s.engineBased() },
		Teachers: scopes, Waiters: s.waiters, Wait: s.cfg.MinLSNWait, Metrics: m})
	if s.embedder != nil {
		s.fusion = s.cfg.Fusion.For(s.embedder.Model())
	}
	fallback := &search.Fallback{Index: idx, Lagging: lagging, Postgres: search.NewPostgres(s.store, s.fallback),
		Embedder: s.embedder, Fusion: s.fusion, Metrics: m}
	rerank := search.NewRerank(fallback, search.RerankConfig{Reranker: search.TracedReranker(s.reranker, s.tracer), TopN: s.cfg.Rerank.TopN,
		Logger: s.logger, Outcomes: s.metrics.rerank})
	s.searcher, s.rerankID = search.Traced(rerank, s.tracer), rerank.Identity()
	s.embeddings = rag.NewEmbeddings(s.embedder, s.caches.Embeddings, s.caches.Askers)
	s.rag = rag.NewService(rag.Config{Searcher: s.searcher, Index: idx, Store: s.store, Teachers: scopes, Embeddings: s.embeddings,
		Answerer: answerer, Searches: s.caches.Searches, Answers: s.caches.Answers, Allow: s.cfg.LinkAllowlist, LLM: s.metrics.llm,
		Rewriter: rewriter, Fusion: search.Fill(index.Fusion{}, s.fusion), Reranker: rerank.Identity(), RecheckHits: s.cfg.ChatRecheckHits,
		Behind: s.indexBehindWrites})
}

// newCaches builds the three cache layers over the configured store.
func newCaches(cfg Config, deps Deps) cache.Layers {
	or := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	embedTTL, searchTTL, answerTTL := or(cfg.EmbedCacheTTL, 24*time.Hour), or(cfg.SearchCacheTTL, 5*time.Minute), or(cfg.AnswerCacheTTL, 10*time.Minute)
	store := deps.Cache
	if store == nil && cfg.CacheEntries >= 0 {
		size := cfg.CacheEntries
		if size == 0 {
			size = 10000
		}
		store = cache.NewMemory(size, max(embedTTL, searchTTL, answerTTL))
	}
	return cache.NewLayers(store, embedTTL, searchTTL, answerTTL, deps.Registry, deps.Logger)
}

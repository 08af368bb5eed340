package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/replication"
	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/blob/blobtest"
	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/clientip"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/ingest"
	"github.com/sostenuto/sostenuto/server/jobs"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/rag"
	"github.com/sostenuto/sostenuto/server/search"
	"github.com/sostenuto/sostenuto/server/store"
)

func TestMain(m *testing.M) {
	pdf.MaybeChild() // the PDF checker re-executes this test binary
	os.Exit(m.Run())
}

// testAPI is the whole API on a real PostgreSQL database of its own, served
// over real HTTP, with the request path under Row Level Security.
type testAPI struct {
	t      *testing.T
	url    string
	blob   blob.Store
	s3     *blobtest.S3 // when the API runs on versitygw
	local  string       // the local store's folder otherwise
	db     *pgtest.DB   // owner connection: fixtures and assertions
	store  *store.Store
	tokens *auth.Tokens
	logs   *syncBuffer
	// handler is the API's root handler, for tests that serve it on a
	// listener of their own (server limits).
	handler http.Handler
	server  *Server
	// fromAddr holds the clients that connect from a given loopback
	// address (callFrom).
	fromAddr map[string]*http.Client
	keyPath  string // the token signing key's file
}

// database is the API's database, signing key file and changefeed slot
// ("": the database's default): a new database, or its peer's.
func (set apiSettings) database(t *testing.T) (*pgtest.DB, string, string) {
	if set.peer == nil {
		return pgtest.NewDB(t), filepath.Join(t.TempDir(), "key.pem"), ""
	}
	return set.peer.db, set.peer.keyPath, fmt.Sprintf("sostenuto_peer_%x", time.Now().UnixNano())
}

type apiOption func(*auth.Config, *auth.SupabaseConfig)

// apiSettings are the non-auth options of a test API.
type apiSettings struct {
	s3         bool
	maxUpload  int64
	fetchAllow []string // ip:port the SSRF guard lets through (local test pages)
	fetchPorts []uint16 // ports web sources may name (80 and 443 when empty)
	// fetchTimeout bounds one web fetch (5 s when zero).
	fetchTimeout time.Duration
	// embedder serves the API and the ingestion pipeline (embed.Hash when nil).
	embedder   embed.Embedder
	youtubeURL string
	answerer   rag.Provider // nil: the extractive default
	rewriter   rag.Rewriter // nil: the built-in rule
	// engine feeds an in-memory index from the changefeed (no Raft), so
	// searches answer from it as on a running node.
	engine bool
	// limits and cors configure the node's bounds (all off by default).
	limits Limits
	cors   []string
	// cache is the answer-path cache store (nil: in process).
	cache cache.Store
	// trusted are the proxies whose X-Forwarded-For names the client.
	trusted clientip.Trusted
	// reranker and rerank configure the rerank stage (none by default).
	reranker search.Reranker
	rerank   RerankConfig
	// tracer records the node's spans (nil: tracing off).
	tracer trace.TracerProvider
	// pgTracer traces the node's pool (nil: none).
	pgTracer pgx.QueryTracer
	// peer, when set, makes this API a second node of peer's: the same
	// database and signing key, its own index fed by a changefeed slot of
	// its own (engine), its own caches and job runner.
	peer *testAPI
	// models, when set, are the node's embedders by name (re-embedding):
	// queries are embedded with the model the index names active, the
	// default is adopted, and the build jobs run (at reembedRate).
	models      *embed.Models
	reembedRate float64
}

// fastHash keeps argon2id cheap in tests that make many accounts.
var fastHash = auth.HashParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func newAPI(t *testing.T, opts ...apiOption) *testAPI {
	t.Helper()
	return newAPIWith(t, apiSettings{}, opts...)
}

func newAPIWith(t *testing.T, set apiSettings, opts ...apiOption) *testAPI {
	t.Helper()
	db, keyPath, slot := set.database(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pcfg, err := store.PoolConfig(db.URL, store.AppRole)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.ConnConfig.Tracer = set.pgTracer
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool)
	key, _, err := auth.EnsureKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens(auth.TokenConfig{Issuer: "sostenuto", Audience: "sostenuto-api", AccessTTL: time.Hour, Leeway: 30 * time.Second}, key, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := auth.DefaultConfig()
	cfg.Hash = fastHash
	var sbCfg auth.SupabaseConfig
	for _, o := range opts {
		o(&cfg, &sbCfg)
	}
	var sb *auth.Supabase
	if sbCfg.Issuer != "" {
		if sb, err = auth.NewSupabase(ctx, sbCfg, nil); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := auth.NewService(cfg, st, tokens, sb, logger)
	if err != nil {
		t.Fatal(err)
	}
	// The server's URL is needed by the local blob store before the
	// handler exists.
	var handler http.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	srv.Config.WriteTimeout = 20 * time.Minute // as Serve sets it: fresh deadlines per request
	srv.Start()
	t.Cleanup(srv.Close)
	a := &testAPI{t: t, url: srv.URL, db: db, store: st, tokens: tokens, logs: logs, keyPath: keyPath}
	if set.s3 {
		a.s3 = blobtest.Start(t)
		s3, err := blob.NewS3(a.s3.Config)
		if err != nil {
			t.Fatal(err)
		}
		a.blob = s3
	} else {
		a.local = t.TempDir()
		local, err := blob.NewLocal(a.local, srv.URL, []byte(strings.Repeat("s", 32)))
		if err != nil {
			t.Fatal(err)
		}
		a.blob = local
	}
	checker, err := pdf.NewChecker(pdf.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	ocr, err := pdf.NewOCR(ctx, checker, pdf.DefaultOCR, logger)
	if err != nil {
		t.Fatal(err)
	}
	if set.fetchTimeout == 0 {
		set.fetchTimeout = 5 * time.Second
	}
	if set.embedder == nil {
		set.embedder = embed.Hash{}
	}
	fetcher := ingest.NewFetcher(ingest.FetchConfig{MaxBytes: 1 << 20, Timeout: set.fetchTimeout, MaxRedirects: 3, Ports: set.fetchPorts, AllowAddrs: set.fetchAllow})
	deps := Deps{Logger: logger, Registry: NewRegistry(), DB: st, Store: st, Auth: svc,
		Access: access.New(st), Blob: a.blob, PDF: checker, Fetch: fetcher, Embedder: set.embedder, Answerer: set.answerer, Rewriter: set.rewriter, Cache: set.cache, Reranker: set.reranker, Tracer: set.tracer}
	if set.engine {
		empty, err := index.New(index.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		live := index.NewLive(empty)
		fsm := replication.NewFSM(live, index.DefaultConfig())
		feed := &replication.Feed{URL: db.URL, Slot: slot, Logger: logger, KeepaliveEvery: 200 * time.Millisecond}
		fed := make(chan struct{})
		go func() { feed.Run(ctx, replication.DirectProposer{FSM: fsm}); close(fed) }()
		t.Cleanup(func() { cancel(); <-fed })
		deadline := time.Now().Add(30 * time.Second)
		for !fsm.State().Based {
			if time.Now().After(deadline) {
				t.Fatal("the changefeed loaded no base")
			}
			time.Sleep(20 * time.Millisecond)
		}
		deps.Engine, deps.EngineReady = live, func() bool { return fsm.State().Based }
		deps.EngineBased = func() bool { return fsm.State().Based }
	}
	if set.models != nil {
		deps.Models = set.models
		deps.Embedder = &embed.Active{Models: set.models, Name: func() string {
			if deps.Engine == nil {
				return ""
			}
			return deps.Engine.Engine().Model().Active
		}}
	}
	s := New(Config{MaxUploadBytes: set.maxUpload, Limits: set.limits, CORSOrigins: set.cors, TrustedProxies: set.trusted, Rerank: set.rerank}, deps)
	handler = s.Handler()
	a.handler = handler
	a.server = s
	// The durable jobs (object deletion, ingestion) run as the worker role.
	workerPool, err := store.OpenPool(ctx, db.URL, store.WorkerRole)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(workerPool.Close)
	chunker, err := ingest.NewChunker(512, 128)
	if err != nil {
		t.Fatal(err)
	}
	pipeline := &ingest.Pipeline{Store: store.New(workerPool), Blob: a.blob, PDF: checker, OCR: ocr, Fetch: fetcher,
		YouTube: &ingest.YouTubeCaptions{BaseURL: set.youtubeURL}, Chunker: chunker, Embedder: set.embedder,
		MaxObjectBytes: 100 << 20, Logger: logger, Models: set.models}
	handlers := map[string]jobs.Handler{store.BlobDeleteJob: jobs.BlobDelete(a.blob), store.IngestJob: pipeline.Handler(),
		store.AnnotationIndexJob: jobs.AnnotationIndex(store.New(workerPool), pipeline.ActiveEmbedder)}
	if set.models != nil {
		handlers[store.EmbedBuildJob] = jobs.EmbedBuild(store.New(workerPool), set.models, jobs.EmbedBuildConfig{Batch: 4, Rate: set.reembedRate}, logger)
		handlers[store.EmbedDropJob] = jobs.EmbedDrop(store.New(workerPool))
		def := set.models.Default()
		if _, err := store.New(workerPool).AdoptEmbeddingModel(ctx, def.Name, def.Dim); err != nil {
			t.Fatal(err)
		}
	}
	runner := jobs.NewRunner(jobs.Config{Lease: 5 * time.Second, Poll: 20 * time.Millisecond, BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond},
		store.New(workerPool), handlers, logger)
	runner.OnGiveUp(store.IngestJob, pipeline.GiveUp())
	// The node's operational metrics, as serve registers them.
	st.RegisterPoolMetrics(deps.Registry, "app")
	store.New(workerPool).RegisterPoolMetrics(deps.Registry, "worker")
	store.New(workerPool).RegisterWorkMetrics(deps.Registry, logger)
	runner.Instrument(deps.Registry)
	done := make(chan struct{})
	go func() { runner.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r response) problem(t *testing.T) Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q for status %d: %s", ct, r.status, r.body)
	}
	var p Problem
	r.decode(t, &p)
	return p
}

// call sends a request; body is JSON-encoded unless it is a string (sent
// as is) or nil.
func (a *testAPI) call(method, path, token string, body any, hdr ...string) response {
	a.t.Helper()
	return a.send(http.DefaultClient, a.url, method, path, token, body, hdr...)
}

// callFrom sends a request as call does, over a connection whose source
// address is ip (any 127.0.0.0/8 address): the server sees a distinct
// client address per ip.
func (a *testAPI) callFrom(ip, method, path, token string, body any, hdr ...string) response {
	a.t.Helper()
	c, ok := a.fromAddr[ip]
	if !ok {
		local, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			a.t.Fatal(err)
		}
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}).DialContext}
		c = &http.Client{Transport: tr}
		if a.fromAddr == nil {
			a.fromAddr = map[string]*http.Client{}
		}
		a.fromAddr[ip] = c
		a.t.Cleanup(tr.CloseIdleConnections)
	}
	return a.send(c, a.url, method, path, token, body, hdr...)
}

// callAt is call sent to base (the node, or an edge in front of it).
func (a *testAPI) callAt(base, method, path, token string, body any, hdr ...string) response {
	a.t.Helper()
	return a.send(http.DefaultClient, base, method, path, token, body, hdr...)
}

// send sends a request to base+path through client.
func (a *testAPI) send(client *http.Client, base, method, path, token string, body any, hdr ...string) response {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(resp.Header.Get("Content-Type"), "text/event-stream") {
		checkResponse(a.t, method, base+path, req.Header, resp.StatusCode, resp.Header, b)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (a *testAPI) mustStatus(r response, want int) response {
	a.t.Helper()
	if r.status != want {
		a.t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
	return r
}

// register signs up a user and returns its session.
func (a *testAPI) register(email, role string) sessionResponse {
	a.t.Helper()
	r := a.mustStatus(a.call("POST", "/api/auth/register", "", map[string]string{
		"email": email, "password": "correct horse battery", "display_name": email, "role": role}), 201)
	var s sessionResponse
	r.decode(a.t, &s)
	return s
}

// admin creates an app admin (as the CLI does) and signs it in.
func (a *testAPI) admin(email string) sessionResponse {
	a.t.Helper()
	hash, _ := auth.HashPassword("correct horse battery", fastHash)
	if _, err := a.store.CreateUser(context.Background(), store.NewUser{Email: email, DisplayName: "Admin", Role: store.RoleAdmin, PasswordHash: hash}); err != nil {
		a.t.Fatal(err)
	}
	r := a.mustStatus(a.call("POST", "/api/auth/login", "", map[string]string{"email": email, "password": "correct horse battery"}), 200)
	var s sessionResponse
	r.decode(a.t, &s)
	return s
}

func (a *testAPI) ownerPool() *pgxpool.Pool { return a.db.Pool }

func t0() context.Context { return context.Background() }

func (a *testAPI) localDir() string { return a.local }

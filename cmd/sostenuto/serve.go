package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/migrations"
	"github.com/sostenuto/sostenuto/replication"
	"github.com/sostenuto/sostenuto/server"
	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/clientip"
	"github.com/sostenuto/sostenuto/server/cors"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/jobs"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/rag"
	"github.com/sostenuto/sostenuto/server/ratelimit"
	"github.com/sostenuto/sostenuto/server/recall"
	"github.com/sostenuto/sostenuto/server/rerank"
	"github.com/sostenuto/sostenuto/server/store"
)

type serveConfig struct {
	log               logConfig
	db                dbConfig
	auth              authConfig
	blob              blobConfig
	ingest            ingestConfig
	llm               llmConfig
	fusion            fusionConfig
	rerank            rerankConfig
	trace             traceConfig
	listen            string
	autoMigrate       bool
	maxBodyBytes      int64
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	shutdownTimeout   time.Duration
	dbConnectTimeout  time.Duration
	jobLease          time.Duration
	indexEnabled      bool
	node              string
	recallEvery       time.Duration
	raftBind          string
	raftAdvertise     string
	raftDir           string
	raftTLSCA         string
	raftTLSCert       string
	raftTLSKey        string
	raftInsecure      bool
	httpAdvertise     string
	join              string
	clusterSecret     string
	snapshotThreshold int64
	shipCandidates    bool
	snapshotInterval  time.Duration
	lagBound          time.Duration
	antiEntropyEvery  time.Duration
	linkAllowlist     string
	trustedProxies    string
	corsOrigins       string
	rateIP, rateUser  string
	rateAuth          string
	rateChat          string
	readTimeout       time.Duration
	requestTimeout    time.Duration
	transferTimeout   time.Duration
	streamTimeout     time.Duration
	streamsPerUser    int64
	maxFallback       int64
	maxLSNWaiters     int64
	maxInFlight       int64
	cacheURL          string
	cacheEntries      int64
	reembedRate       int64
	reembedBatch      int64
	chatHitRecheck    bool
}

func (c *serveConfig) settings() []setting {
	s := append(c.log.settings(), c.db.settings()...)
	s = append(s, c.auth.settings()...)
	s = append(s, c.blob.settings()...)
	s = append(s, c.ingest.settings()...)
	s = append(s, c.llm.settings()...)
	s = append(s, c.fusion.settings()...)
	s = append(s, c.rerank.settings()...)
	s = append(s, c.trace.settings()...)
	s = append(s, setting{name: "reembed-rate", usage: "chunks a re-embedding embeds per second at most, on each node that runs its job (0: unbounded)", def: "200",
		parse: intVar(&c.reembedRate, 0, 1_000_000)},
		setting{name: "reembed-batch", usage: "chunks a re-embedding embeds and stores together (one transaction, one log entry)", def: "256",
			parse: intVar(&c.reembedBatch, 1, 10_000)})
	return append(s,
		setting{name: "listen", usage: "HTTP listen address", def: ":8080", parse: addrVar(&c.listen)},
		boolSetting("index", "serve search from the in-memory index fed by the changefeed (else from PostgreSQL)", "true", &c.indexEnabled),
		setting{name: "recall-every", usage: "how often the live index's recall is sampled against pgvector's exact search (0s: never)", def: "10m", parse: durationVar(&c.recallEvery, 0, 24*time.Hour)},
		setting{name: "node-id", usage: "this node's name in answers and cluster status, and its Raft server id (default: the host name)", parse: stringVar(&c.node)},
		setting{name: "raft-bind", usage: "host:port the Raft transport listens on", def: "127.0.0.1:7000", parse: addrVar(&c.raftBind)},
		setting{name: "raft-advertise", usage: "host:port other nodes reach this node's Raft transport at (default: raft-bind)", parse: stringVar(&c.raftAdvertise)},
		setting{name: "raft-tls-ca", usage: "PEM file of the cluster CA: Raft peers must present a node certificate it issued (`sostenuto cluster certs`)", parse: stringVar(&c.raftTLSCA)},
		setting{name: "raft-tls-cert", usage: "PEM file of this node's certificate, naming the host of its raft-advertise address", parse: stringVar(&c.raftTLSCert)},
		setting{name: "raft-tls-key", usage: "PEM file of this node's private key (mode 0600)", parse: stringVar(&c.raftTLSKey)},
		boolSetting("raft-insecure", "run the Raft transport on plain TCP, without authentication: only for development, with raft-bind and raft-advertise on loopback", "false", &c.raftInsecure),
		setting{name: "raft-dir", usage: "directory of this node's Raft log and snapshots (default: DATA_DIR/raft/NODE_ID)", parse: stringVar(&c.raftDir)},
		setting{name: "http-advertise", usage: "base URL other nodes reach this node's API at (default: http://LISTEN, with 127.0.0.1 for an empty host)", parse: stringVar(&c.httpAdvertise)},
		setting{name: "join", usage: "base URL of a node of an existing cluster to join; without it, a node with no Raft state founds a new cluster", parse: stringVar(&c.join)},
		setting{name: "cluster-secret", secret: true, usage: "shared secret nodes present to join a cluster (POST /api/cluster/nodes); needed with --join", parse: stringVar(&c.clusterSecret)},
		setting{name: "snapshot-threshold", usage: "Raft log entries between index snapshots", def: "8192", parse: intVar(&c.snapshotThreshold, 16, 1<<30)},
		boolSetting("ship-candidates", "the leader ships each new chunk's candidate neighbours in the log (log format version 5), so followers link without searching; turn on only once every node of the cluster runs a release that reads version 5", "false", &c.shipCandidates),
		setting{name: "snapshot-interval", usage: "how often Raft checks whether a snapshot is due", def: "120s", parse: durationVar(&c.snapshotInterval, 100*time.Millisecond, 24*time.Hour)},
		setting{name: "link-allowlist", usage: "comma-separated hosts chat answers may link to (with their subdomains); other links and images are removed", parse: stringVar(&c.linkAllowlist)},
		setting{name: "trusted-proxies", usage: "comma-separated CIDRs or addresses of proxies (the edge, a load balancer) whose X-Forwarded-For names the client (login throttling, rate limits, logs)", parse: stringVar(&c.trustedProxies)},
		setting{name: "cors-origins", usage: "comma-separated origins (https://app.example.com) browsers may call the API from, with credentials; * allows any origin without credentials; empty: same origin only", parse: stringVar(&c.corsOrigins)},
		setting{name: "rate-limit-ip", usage: "token bucket per client address over every request but health checks: N/s, N/m or N/h[:burst], or off", def: "100/s:200", parse: stringVar(&c.rateIP)},
		setting{name: "rate-limit-user", usage: "token bucket per signed-in user over authenticated requests", def: "20/s:60", parse: stringVar(&c.rateUser)},
		setting{name: "rate-limit-auth", usage: "token bucket per client address over sign-up, sign-in, refresh and logout", def: "120/m:60", parse: stringVar(&c.rateAuth)},
		setting{name: "rate-limit-chat", usage: "token bucket per user over chat questions", def: "60/m:20", parse: stringVar(&c.rateChat)},
		setting{name: "read-timeout", usage: "time allowed to read a request body (blob transfers: transfer-timeout)", def: "30s", parse: durationVar(&c.readTimeout, time.Second, time.Hour)},
		setting{name: "request-timeout", usage: "deadline of an ordinary request: its database and outbound calls stop then", def: "60s", parse: durationVar(&c.requestTimeout, time.Second, time.Hour)},
		setting{name: "transfer-timeout", usage: "deadline of a blob upload or download and a PDF stream", def: "15m", parse: durationVar(&c.transferTimeout, time.Second, 24*time.Hour)},
		setting{name: "stream-timeout", usage: "longest a streamed chat answer may run", def: "5m", parse: durationVar(&c.streamTimeout, time.Second, 24*time.Hour)},
		setting{name: "max-streams-per-user", usage: "answer streams one user may hold open at once", def: "3", parse: intVar(&c.streamsPerUser, 1, 1000)},
		setting{name: "max-fallback-searches", usage: "searches answered by PostgreSQL at once while the index loads or lags; more answer 503", def: "4", parse: intVar(&c.maxFallback, 1, 1000)},
		setting{name: "max-lsn-waiters", usage: "searches that may wait at once for this node's index to reach their min_lsn; more answer 503 with Retry-After", def: "256", parse: intVar(&c.maxLSNWaiters, 1, 1_000_000)},
		setting{name: "max-in-flight", usage: "requests worked on at once; past it requests are shed with 503 (health checks excepted)", def: "512", parse: intVar(&c.maxInFlight, 8, 1_000_000)},
		setting{name: "cache-url", secret: true, usage: "Redis URL (redis://[:password@]host:port/db) of a cache the nodes share; without it each node caches in process", parse: stringVar(&c.cacheURL)},
		setting{name: "cache-entries", usage: "entries of the in-process cache of embeddings, searches and answers (0: no caching)", def: "10000", parse: intVar(&c.cacheEntries, 0, 10_000_000)},
		boolSetting("chat-hit-recheck", "re-check every cached chat answer's sources in PostgreSQL (one round trip a hit): a hidden document leaves cached answers at its commit, not within the lag bound", "false", &c.chatHitRecheck),
		setting{name: "lag-bound", usage: "a node whose index applied nothing for this long is not ready (searches then answer from PostgreSQL)", def: "5s", parse: durationVar(&c.lagBound, time.Second, time.Hour)},
		setting{name: "anti-entropy-every", usage: "how often the index's chunk ids and versions are compared with PostgreSQL's (0s: never)", def: "5m", parse: durationVar(&c.antiEntropyEvery, 0, 24*time.Hour)},
		boolSetting("auto-migrate", "apply pending migrations at start (under an advisory lock)", "true", &c.autoMigrate),
		setting{name: "max-body-bytes", usage: "largest JSON request body accepted (413 past it)", def: "1048576", parse: intVar(&c.maxBodyBytes, 1024, 1<<30)},
		setting{name: "read-header-timeout", usage: "time allowed to read request headers", def: "10s", parse: durationVar(&c.readHeaderTimeout, time.Second, 5*time.Minute)},
		setting{name: "idle-timeout", usage: "keep-alive connections idle longer are closed", def: "120s", parse: durationVar(&c.idleTimeout, time.Second, time.Hour)},
		setting{name: "shutdown-timeout", usage: "on SIGTERM, how long in-flight requests may run before connections are cut", def: "20s", parse: durationVar(&c.shutdownTimeout, 0, 10*time.Minute)},
		setting{name: "job-lease", usage: "how long a background job stays claimed without a heartbeat (a crashed worker's job is retried after it)", def: "60s", parse: durationVar(&c.jobLease, time.Second, time.Hour)},
		setting{name: "db-connect-timeout", usage: "how long start-up waits for PostgreSQL to accept connections", def: "30s", parse: durationVar(&c.dbConnectTimeout, 0, 10*time.Minute)},
	)
}

// runServe runs an API node in two steps: configuration (settings into a
// validated serveSetup, before anything connects) and run.
func runServe(ctx context.Context, args, env []string, _ io.Reader, _, stderr io.Writer) error {
	s, err := configureServe(args, env, stderr)
	if err != nil {
		return err
	}
	return s.run(ctx, stderr)
}

// serveSetup is serve's configuration, checked, with what is derived from
// it before anything starts.
type serveSetup struct {
	cfg      serveConfig
	logger   *slog.Logger
	answerer rag.Provider
	reranker *rerank.Client // nil: none
	rewriter rag.Rewriter
	raftTLS  *replication.TLS
	api      server.Config
}

// configureServe reads serve's settings and checks them: the Raft
// transport's security, the cluster secret, the proxies, origins and rate
// limits. A bad setting is reported before anything connects or listens.
func configureServe(args, env []string, stderr io.Writer) (*serveSetup, error) {
	s := &serveSetup{}
	if err := loadSettings("serve", s.cfg.settings(), args, env, stderr); err != nil {
		return nil, err
	}
	s.logger = s.cfg.log.logger(stderr)
	var err error
	if s.answerer, s.rewriter, err = s.cfg.llm.answerer(s.logger); err != nil {
		return nil, err
	}
	if s.reranker, err = s.cfg.rerank.reranker(); err != nil {
		return nil, err
	}
	if s.raftTLS, err = s.cfg.raftSecurity(); err != nil {
		return nil, err
	}
	if s.cfg.indexEnabled && s.cfg.join != "" && s.cfg.clusterSecret == "" {
		return nil, &configError{setting: envName("cluster-secret"), err: errors.New("needed with --join (the cluster's nodes must share it)")}
	}
	if s.api, err = s.cfg.apiConfig(); err != nil {
		return nil, err
	}
	return s, nil
}

// apiConfig is the API's configuration, with the proxy, origin and
// rate-limit settings parsed.
func (c *serveConfig) apiConfig() (server.Config, error) {
	trusted, err := clientip.Parse(c.trustedProxies)
	if err != nil {
		return server.Config{}, &configError{setting: envName("trusted-proxies"), err: err}
	}
	origins, err := cors.ParseOrigins(c.corsOrigins)
	if err != nil {
		return server.Config{}, &configError{setting: envName("cors-origins"), err: err}
	}
	limits, err := c.limits()
	if err != nil {
		return server.Config{}, err
	}
	entries := int(c.cacheEntries)
	if entries == 0 {
		entries = -1 // off
	}
	fusion, err := c.fusion.defaults()
	if err != nil {
		return server.Config{}, err
	}
	return server.Config{Fusion: fusion, TrustedProxies: trusted, CORSOrigins: origins, Limits: limits, MaxBodyBytes: c.maxBodyBytes, MaxUploadBytes: c.blob.maxUpload,
		MaxDocumentBytes: c.ingest.maxDocumentLen, Version: buildVersion(), NodeID: c.node, ClusterSecret: c.clusterSecret,
		LinkAllowlist: hostList(c.linkAllowlist), CacheEntries: entries, ChatRecheckHits: c.chatHitRecheck, Rerank: c.rerank.apiConfig()}, nil
}

// limits are the API's timeouts, concurrency bounds and rate limits.
func (c *serveConfig) limits() (server.Limits, error) {
	limits := server.Limits{ReadTimeout: c.readTimeout, RequestTimeout: c.requestTimeout, TransferTimeout: c.transferTimeout,
		StreamTimeout: c.streamTimeout, MaxStreamsPerUser: int(c.streamsPerUser),
		MaxFallbackSearches: int(c.maxFallback), MaxLSNWaiters: int(c.maxLSNWaiters), MaxInFlight: int(c.maxInFlight)}
	for _, rl := range []struct {
		name string
		text string
		dst  *ratelimit.Rule
	}{{"rate-limit-ip", c.rateIP, &limits.RateIP}, {"rate-limit-user", c.rateUser, &limits.RateUser},
		{"rate-limit-auth", c.rateAuth, &limits.RateAuth}, {"rate-limit-chat", c.rateChat, &limits.RateChat}} {
		var err error
		if *rl.dst, err = ratelimit.Parse(rl.text); err != nil {
			return server.Limits{}, &configError{setting: envName(rl.name), err: err}
		}
	}
	return limits, nil
}

// serveParts are what the run step builds; close releases them, the last
// opened first.
type serveParts struct {
	reg     *prometheus.Registry
	deps    server.Deps
	runner  *jobs.Runner
	node    *replication.Node // nil without the index
	dbURL   string
	ln      net.Listener
	closers []func()
}

func (p *serveParts) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

// run migrates (if asked), builds the node's parts, runs them until ctx
// ends or one fails, and releases them.
func (s *serveSetup) run(ctx context.Context, logOut io.Writer) error {
	if s.cfg.autoMigrate {
		if err := migrate(ctx, &s.cfg.db, s.cfg.dbConnectTimeout, s.logger); err != nil {
			return err
		}
	}
	p := &serveParts{reg: server.NewRegistry()}
	defer p.close()
	if err := s.build(ctx, p, logOut); err != nil {
		return err
	}
	err := s.serve(ctx, p)
	s.logger.Info("stopped", "component", "node", "error", err)
	return err
}

// build opens the stores and the job runner, starts the Raft node (with
// the index), listens, and gathers the API's dependencies.
func (s *serveSetup) build(ctx context.Context, p *serveParts, logOut io.Writer) error {
	if err := s.tracing(ctx, p); err != nil {
		return err
	}
	worker, err := s.openStores(ctx, p)
	if err != nil {
		return err
	}
	if err := s.jobRunner(ctx, p, worker); err != nil {
		return err
	}
	p.deps.Store.RegisterPoolMetrics(p.reg, "app")
	worker.RegisterPoolMetrics(p.reg, "worker")
	worker.RegisterWorkMetrics(p.reg, s.logger)
	p.runner.Instrument(p.reg)
	if s.cfg.indexEnabled {
		if p.node, p.dbURL, err = s.cfg.startNode(s.logger, logOut, p.reg, s.raftTLS, p.deps.Tracer); err != nil {
			return err
		}
		node := p.node
		p.deps.Engine, p.deps.EngineReady, p.deps.Cluster = node.Live, node.Ready, node
		p.deps.EngineBased = func() bool { return node.FSM.State().Based }
		slots, err := replication.NewSlotMetrics(ctx, p.dbURL)
		if err != nil {
			return err
		}
		p.closers = append(p.closers, slots.Close)
		p.reg.MustRegister(slots)
	}
	p.deps.Embedder = activeEmbedder(p, worker)
	if p.ln, err = net.Listen("tcp", s.cfg.listen); err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.listen, err)
	}
	if s.cfg.cacheURL != "" {
		r, err := cache.NewRedis(s.cfg.cacheURL)
		if err != nil {
			return &configError{setting: envName("cache-url"), err: err}
		}
		p.closers = append(p.closers, func() { r.Close() }) //nolint:errcheck // nothing to do on exit
		p.deps.Cache = r
	}
	p.deps.Answerer, p.deps.Rewriter, p.deps.Logger, p.deps.Registry = s.answerer, s.rewriter, s.logger, p.reg
	if s.reranker != nil { // a typed nil would not be nil in the interface
		p.deps.Reranker = s.reranker
	}
	return nil
}

// tracing starts the tracer provider (off without an endpoint); it is
// flushed and stopped last, after the server.
func (s *serveSetup) tracing(ctx context.Context, p *serveParts) error {
	tp, err := s.cfg.trace.provider(ctx, "sostenuto", s.cfg.node)
	if err != nil {
		return err
	}
	p.closers = append(p.closers, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			s.logger.Warn("spans not exported at shutdown", "component", "tracing", "error", err)
		}
	})
	p.deps.Tracer = tp.Tracer()
	if p.deps.Tracer != nil {
		s.logger.Info("tracing on", "component", "tracing", "endpoint", s.cfg.trace.endpoint, "sample", s.cfg.trace.sample)
	}
	return nil
}

// openStores opens the two pools (the request path runs as sostenuto_app,
// under Row Level Security; background jobs as sostenuto_worker), the
// auth service, the blob store and the PDF checker; it returns the
// worker's store.
func (s *serveSetup) openStores(ctx context.Context, p *serveParts) (*store.Store, error) {
	c := &s.cfg
	pool, err := openPool(ctx, &c.db, store.AppRole, c.dbConnectTimeout, s.logger)
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, pool.Close)
	st := store.New(pool)
	authSvc, err := c.auth.authService(ctx, c.db.dataDir, st, s.logger)
	if err != nil {
		return nil, err
	}
	blobs, err := c.blob.store(ctx, c.db.dataDir, c.listen)
	if err != nil {
		return nil, err
	}
	checker, err := pdf.NewChecker(pdf.DefaultLimits)
	if err != nil {
		return nil, err
	}
	workerPool, err := openPool(ctx, &c.db, store.WorkerRole, c.dbConnectTimeout, s.logger)
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, workerPool.Close)
	p.deps.DB, p.deps.Store, p.deps.Auth, p.deps.Access = st, st, authSvc, access.New(st)
	p.deps.Blob, p.deps.PDF = blobs, checker
	return store.New(workerPool), nil
}

// jobRunner builds the ingest pipeline and the runner of background jobs
// over the worker's store.
func (s *serveSetup) jobRunner(ctx context.Context, p *serveParts, worker *store.Store) error {
	pipeline, err := s.cfg.ingest.pipeline(ctx, worker, p.deps.Blob, p.deps.PDF, s.cfg.blob.maxUpload, s.logger)
	if err != nil {
		return err
	}
	jobCfg := jobs.DefaultConfig
	jobCfg.Lease = s.cfg.jobLease
	build := jobs.EmbedBuildConfig{Batch: int(s.cfg.reembedBatch), Rate: float64(s.cfg.reembedRate)}
	p.runner = jobs.NewRunner(jobCfg, worker, map[string]jobs.Handler{
		store.BlobDeleteJob: jobs.BlobDelete(p.deps.Blob),
		store.IngestJob:     pipeline.Handler(),
		// Annotations whose write could not embed their text.
		store.AnnotationIndexJob: jobs.AnnotationIndex(worker, pipeline.ActiveEmbedder),
		store.EmbedBuildJob:      jobs.EmbedBuild(worker, pipeline.Models, build, s.logger),
		store.EmbedDropJob:       jobs.EmbedDrop(worker),
	}, s.logger)
	p.runner.OnGiveUp(store.IngestJob, pipeline.GiveUp())
	p.deps.Fetch, p.deps.Models = pipeline.Fetch, pipeline.Models
	return adoptModel(ctx, worker, pipeline.Models, s.logger)
}

// adoptModel names the default embedder the active model when the
// database names none yet, and logs which one is.
func adoptModel(ctx context.Context, worker *store.Store, models *embed.Models, logger *slog.Logger) error {
	def := models.Default()
	st, err := worker.AdoptEmbeddingModel(ctx, def.Name, def.Dim)
	if err != nil {
		return err
	}
	if _, ok := models.Get(st.Active); !ok {
		logger.Warn("the active embedding model is not configured on this node: it will not be ready", "component", "node",
			"active", st.Active, "configured", models.Names())
	}
	logger.Info("embedding models", "component", "node", "active", st.Active, "dim", st.ActiveDim, "building", st.Building,
		"configured", models.Names())
	return nil
}

// activeEmbedder embeds queries with the model the index names active
// while it is ready; otherwise (no index, or one behind: searches then go
// to PostgreSQL, which refuses another model), and for any search
// PostgreSQL answers (a min_lsn the index did not reach in time), with
// the database's, read at most once a second.
func activeEmbedder(p *serveParts, worker *store.Store) *embed.Active {
	var mu sync.Mutex
	var name string
	var at time.Time
	database := func() string {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) > time.Second {
			if st, err := worker.EmbeddingState(context.Background()); err == nil {
				name, at = st.Active, time.Now()
			}
		}
		return name
	}
	if p.node == nil {
		return &embed.Active{Models: p.deps.Models, Name: database}
	}
	node := p.node
	return &embed.Active{Models: p.deps.Models, Stored: database, Name: func() string {
		if node.Ready() {
			return node.Live.Engine().Model().Active
		}
		return database()
	}}
}

// serve runs the job runner, the node and its workers, and the HTTP
// server until ctx ends or one of them fails; the server then shuts down
// gracefully.
func (s *serveSetup) serve(ctx context.Context, p *serveParts) error {
	api := server.New(s.api, p.deps)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.runner.Run(gctx) })
	if p.node != nil {
		s.runNode(gctx, g, p)
	}
	g.Go(func() error {
		return server.Serve(gctx, p.ln, api.Handler(), server.HTTPConfig{
			ReadHeaderTimeout: s.cfg.readHeaderTimeout,
			IdleTimeout:       s.cfg.idleTimeout,
			MaxHeaderBytes:    64 << 10,
			WriteTimeout:      max(s.cfg.transferTimeout, s.cfg.streamTimeout) + time.Minute,
			ShutdownTimeout:   s.cfg.shutdownTimeout,
		}, s.logger)
	})
	return g.Wait()
}

// runNode runs the Raft node in g, with its join, recall sampler and
// anti-entropy when configured.
func (s *serveSetup) runNode(ctx context.Context, g *errgroup.Group, p *serveParts) {
	c, node := &s.cfg, p.node
	g.Go(func() error { return node.Run(ctx) })
	if c.join != "" {
		g.Go(func() error { return node.JoinVia(ctx, c.join, c.clusterSecret) })
	}
	if c.recallEvery > 0 {
		sampler := recallSampler(p.dbURL, node.Live, node.Ready, c.recallEvery, p.reg, s.logger)
		g.Go(func() error { return sampler.Run(ctx) })
	}
	if c.antiEntropyEvery > 0 {
		ae := &replication.AntiEntropy{URL: p.dbURL, Node: node, Every: c.antiEntropyEvery, Logger: s.logger, Registry: p.reg, Secret: c.clusterSecret}
		g.Go(func() error { return ae.Run(ctx) })
	}
}

// migrate applies pending migrations as the configured (owning) role.
func migrate(ctx context.Context, c *dbConfig, timeout time.Duration, logger *slog.Logger) error {
	pool, err := openPool(ctx, c, "", timeout, logger)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := migrations.Up(ctx, pool, logger)
	if err != nil {
		return err
	}
	logger.Info("schema up to date", "component", "migrations", "version", res.To, "applied", res.Applied)
	return nil
}

// openPool connects to PostgreSQL, waiting up to timeout for it to accept
// connections (nodes and the database often start together). With a role,
// every connection runs as that role; without, as the login role.
func openPool(ctx context.Context, c *dbConfig, role string, timeout time.Duration, logger *slog.Logger) (*pgxpool.Pool, error) {
	url, err := c.resolveURL()
	if err != nil {
		return nil, err
	}
	var pcfg *pgxpool.Config
	if role == "" {
		pcfg, err = pgxpool.ParseConfig(url)
	} else {
		pcfg, err = store.PoolConfig(url, role)
	}
	if err != nil {
		return nil, &configError{setting: envName("database-url"), err: err}
	}
	pcfg.MaxConns = int32(c.maxConns)
	pcfg.ConnConfig.RuntimeParams["application_name"] = "sostenuto"
	if role != "" && c.statementTimeout > 0 {
		pcfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(c.statementTimeout.Milliseconds(), 10)
		pcfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(2*c.statementTimeout.Milliseconds(), 10)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = pool.Ping(pctx)
		cancel()
		if err == nil {
			return pool, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			pool.Close()
			return nil, fmt.Errorf("database %s:%d unreachable: %w", pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, errors.Join(err, ctx.Err()))
		}
		if attempt == 0 {
			logger.Warn("waiting for PostgreSQL", "component", "node", "error", err, "timeout", timeout)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// recallSampler exports the live index's sampled recall as metrics.
func recallSampler(url string, live *index.Live, ready func() bool, every time.Duration, reg *prometheus.Registry, logger *slog.Logger) *recall.Sampler {
	meanRecall := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sostenuto_index_recall_at_10",
		Help: "Mean recall@10 of the local index's vector search against pgvector's exact search, last sample."})
	minRecall := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sostenuto_index_recall_at_10_min",
		Help: "Lowest recall@10 of one query in the last sample."})
	// Not a number until the first sample: an alert on a low recall must
	// not fire on a node that has not measured it yet.
	meanRecall.Set(math.NaN())
	minRecall.Set(math.NaN())
	reg.MustRegister(meanRecall, minRecall)
	return &recall.Sampler{URL: url, Live: live, Ready: ready, Every: every, Samples: 20,
		Report: func(r recall.Result, err error) {
			if err != nil {
				logger.Warn("recall sample failed", "component", "index", "error", err)
				return
			}
			if r.Samples > 0 {
				meanRecall.Set(r.Mean)
				minRecall.Set(r.Min)
				logger.Info("index recall sampled", "component", "index", "recall_at_10", r.Mean, "min", r.Min, "samples", r.Samples)
			}
		}}
}

// startNode opens this node's Raft state and index (founding a cluster
// when it has no state and is not told to join one).
func (c *serveConfig) startNode(logger *slog.Logger, logOut io.Writer, reg *prometheus.Registry, raftTLS *replication.TLS, tracer trace.TracerProvider) (*replication.Node, string, error) {
	url, err := c.db.resolveURL()
	if err != nil {
		return nil, "", err
	}
	id := c.node
	if id == "" {
		id, _ = os.Hostname()
	}
	dir := c.raftDir
	if dir == "" {
		dir = filepath.Join(c.db.dataDir, "raft", id)
	}
	httpAdv := c.httpAdvertise
	if httpAdv == "" {
		host, port, _ := net.SplitHostPort(c.listen)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		httpAdv = "http://" + net.JoinHostPort(host, port)
	}
	node, err := replication.StartNode(replication.NodeConfig{
		ID: id, RaftBind: c.raftBind, RaftAdvertise: c.raftAdvertise, TLS: raftTLS, Insecure: c.raftInsecure, HTTPAddr: strings.TrimSuffix(httpAdv, "/"), Dir: dir,
		Bootstrap: c.join == "", Index: index.DefaultConfig(), Stale: c.lagBound,
		SnapshotThreshold: uint64(c.snapshotThreshold), SnapshotInterval: c.snapshotInterval, ShipCandidates: c.shipCandidates,
		Feed:   &replication.Feed{URL: url, Logger: logger, KeepaliveEvery: time.Second},
		Logger: logger, LogOutput: logOut, Registry: reg, Tracer: tracer,
	})
	if err != nil {
		return nil, "", err
	}
	return node, url, nil
}

// raftSecurity checks the Raft transport's settings before anything
// starts and loads its TLS material: mutual TLS, or plain TCP only when
// asked for and only on loopback. Without the index there is no Raft.
func (c *serveConfig) raftSecurity() (*replication.TLS, error) {
	if !c.indexEnabled {
		return nil, nil
	}
	files := map[string]string{"raft-tls-ca": c.raftTLSCA, "raft-tls-cert": c.raftTLSCert, "raft-tls-key": c.raftTLSKey}
	if c.raftInsecure {
		for name, v := range files {
			if v != "" {
				return nil, &configError{setting: envName("raft-insecure"), err: fmt.Errorf("conflicts with %s: choose TLS or plain TCP", envName(name))}
			}
		}
		if err := replication.CheckLoopback(c.raftBind, c.raftAdvertise); err != nil {
			return nil, &configError{setting: envName("raft-insecure"), err: fmt.Errorf("%w; use TLS instead (--raft-tls-ca, --raft-tls-cert, --raft-tls-key; docs/CLUSTER.md)", err)}
		}
		return nil, nil
	}
	for _, name := range []string{"raft-tls-ca", "raft-tls-cert", "raft-tls-key"} {
		if files[name] == "" {
			return nil, &configError{setting: envName(name), err: errors.New("not set: the Raft transport runs on mutual TLS. " +
				"Make a CA and node certificates with `sostenuto cluster certs --dir DIR --nodes NAME=RAFT_HOST` and set " +
				"--raft-tls-ca, --raft-tls-cert and --raft-tls-key (docs/CLUSTER.md), or, for development on loopback only, --raft-insecure")}
		}
	}
	m, err := replication.LoadTLS(c.raftTLSCA, c.raftTLSCert, c.raftTLSKey)
	if err != nil {
		return nil, &configError{setting: envPrefix + "RAFT_TLS_*", err: err}
	}
	return m, nil
}

// hostList splits a comma-separated host list, lower-cased.
func hostList(s string) []string {
	var out []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			out = append(out, h)
		}
	}
	return out
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/migrations"
	"github.com/sostenuto/sostenuto/replication"
	"github.com/sostenuto/sostenuto/server"
	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/clientip"
	"github.com/sostenuto/sostenuto/server/cors"
	"github.com/sostenuto/sostenuto/server/jobs"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/ratelimit"
	"github.com/sostenuto/sostenuto/server/recall"
	"github.com/sostenuto/sostenuto/server/store"
)

type serveConfig struct {
	log               logConfig
	db                dbConfig
	auth              authConfig
	blob              blobConfig
	ingest            ingestConfig
	llm               llmConfig
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
}

func (c *serveConfig) settings() []setting {
	s := append(c.log.settings(), c.db.settings()...)
	s = append(s, c.auth.settings()...)
	s = append(s, c.blob.settings()...)
	s = append(s, c.ingest.settings()...)
	s = append(s, c.llm.settings()...)
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

func runServe(ctx context.Context, args, env []string, _ io.Reader, _, stderr io.Writer) error {
	var cfg serveConfig
	if err := loadSettings("serve", cfg.settings(), args, env, stderr); err != nil {
		return err
	}
	logger := cfg.log.logger(stderr)
	answerer, err := cfg.llm.answerer(logger)
	if err != nil {
		return err
	}
	raftTLS, err := cfg.raftSecurity()
	if err != nil {
		return err
	}
	if cfg.autoMigrate {
		if err := migrate(ctx, &cfg.db, cfg.dbConnectTimeout, logger); err != nil {
			return err
		}
	}
	// The request path runs as sostenuto_app, under Row Level Security.
	pool, err := openPool(ctx, &cfg.db, store.AppRole, cfg.dbConnectTimeout, logger)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	authSvc, err := cfg.auth.authService(ctx, cfg.db.dataDir, st, logger)
	if err != nil {
		return err
	}
	blobs, err := cfg.blob.store(ctx, cfg.db.dataDir, cfg.listen)
	if err != nil {
		return err
	}
	checker, err := pdf.NewChecker(pdf.DefaultLimits)
	if err != nil {
		return err
	}
	// Background jobs run as sostenuto_worker.
	workerPool, err := openPool(ctx, &cfg.db, store.WorkerRole, cfg.dbConnectTimeout, logger)
	if err != nil {
		return err
	}
	defer workerPool.Close()
	workerStore := store.New(workerPool)
	pipeline, err := cfg.ingest.pipeline(ctx, workerStore, blobs, checker, cfg.blob.maxUpload, logger)
	if err != nil {
		return err
	}
	jobCfg := jobs.DefaultConfig
	jobCfg.Lease = cfg.jobLease
	runner := jobs.NewRunner(jobCfg, workerStore, map[string]jobs.Handler{
		store.BlobDeleteJob: jobs.BlobDelete(blobs),
		store.IngestJob:     pipeline.Handler(),
	}, logger)
	runner.OnGiveUp(store.IngestJob, pipeline.GiveUp())

	reg := server.NewRegistry()
	st.RegisterPoolMetrics(reg, "app")
	workerStore.RegisterPoolMetrics(reg, "worker")
	workerStore.RegisterWorkMetrics(reg, logger)
	runner.Instrument(reg)
	var node *replication.Node
	var dbURL string
	if cfg.indexEnabled {
		if node, dbURL, err = cfg.startNode(logger, stderr, reg, raftTLS); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.listen, err)
	}
	var shared cache.Store
	if cfg.cacheURL != "" {
		r, err := cache.NewRedis(cfg.cacheURL)
		if err != nil {
			return &configError{setting: envName("cache-url"), err: err}
		}
		defer r.Close()
		shared = r
	}
	entries := int(cfg.cacheEntries)
	if entries == 0 {
		entries = -1 // off
	}
	deps := server.Deps{Answerer: answerer, Cache: shared, Logger: logger, Registry: reg, DB: st, Store: st, Auth: authSvc, Access: access.New(st),
		Blob: blobs, PDF: checker, Fetch: pipeline.Fetch, Embedder: pipeline.Embedder}
	if node != nil {
		deps.Engine, deps.EngineReady, deps.Cluster = node.Live, node.Ready, node
		deps.EngineBased = func() bool { return node.FSM.State().Based }
	}
	trusted, err := clientip.Parse(cfg.trustedProxies)
	if err != nil {
		return &configError{setting: envName("trusted-proxies"), err: err}
	}
	origins, err := cors.ParseOrigins(cfg.corsOrigins)
	if err != nil {
		return &configError{setting: envName("cors-origins"), err: err}
	}
	limits := server.Limits{ReadTimeout: cfg.readTimeout, RequestTimeout: cfg.requestTimeout, TransferTimeout: cfg.transferTimeout,
		StreamTimeout: cfg.streamTimeout, MaxStreamsPerUser: int(cfg.streamsPerUser),
		MaxFallbackSearches: int(cfg.maxFallback), MaxLSNWaiters: int(cfg.maxLSNWaiters), MaxInFlight: int(cfg.maxInFlight)}
	for _, rl := range []struct {
		name string
		text string
		dst  *ratelimit.Rule
	}{{"rate-limit-ip", cfg.rateIP, &limits.RateIP}, {"rate-limit-user", cfg.rateUser, &limits.RateUser},
		{"rate-limit-auth", cfg.rateAuth, &limits.RateAuth}, {"rate-limit-chat", cfg.rateChat, &limits.RateChat}} {
		if *rl.dst, err = ratelimit.Parse(rl.text); err != nil {
			return &configError{setting: envName(rl.name), err: err}
		}
	}
	api := server.New(server.Config{TrustedProxies: trusted, CORSOrigins: origins, Limits: limits, MaxBodyBytes: cfg.maxBodyBytes, MaxUploadBytes: cfg.blob.maxUpload,
		MaxDocumentBytes: cfg.ingest.maxDocumentLen, Version: buildVersion(), NodeID: cfg.node, ClusterSecret: cfg.clusterSecret,
		LinkAllowlist: hostList(cfg.linkAllowlist), CacheEntries: entries}, deps)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return runner.Run(gctx) })
	if node != nil {
		g.Go(func() error { return node.Run(gctx) })
		if cfg.join != "" {
			g.Go(func() error { return node.JoinVia(gctx, cfg.join, cfg.clusterSecret) })
		}
		if cfg.recallEvery > 0 {
			sampler := recallSampler(dbURL, node.Live, node.Ready, cfg.recallEvery, reg, logger)
			g.Go(func() error { return sampler.Run(gctx) })
		}
		if cfg.antiEntropyEvery > 0 {
			ae := &replication.AntiEntropy{URL: dbURL, Node: node, Every: cfg.antiEntropyEvery, Logger: logger, Registry: reg, Secret: cfg.clusterSecret}
			g.Go(func() error { return ae.Run(gctx) })
		}
	}
	g.Go(func() error {
		return server.Serve(gctx, ln, api.Handler(), server.HTTPConfig{
			ReadHeaderTimeout: cfg.readHeaderTimeout,
			IdleTimeout:       cfg.idleTimeout,
			MaxHeaderBytes:    64 << 10,
			WriteTimeout:      max(cfg.transferTimeout, cfg.streamTimeout) + time.Minute,
			ShutdownTimeout:   cfg.shutdownTimeout,
		}, logger)
	})
	err = g.Wait()
	logger.Info("stopped", "component", "node", "error", err)
	return err
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
func (c *serveConfig) startNode(logger *slog.Logger, logOut io.Writer, reg *prometheus.Registry, raftTLS *replication.TLS) (*replication.Node, string, error) {
	url, err := c.db.resolveURL()
	if err != nil {
		return nil, "", err
	}
	id := c.node
	if id == "" {
		id, _ = os.Hostname()
	}
	if c.join != "" && c.clusterSecret == "" {
		return nil, "", &configError{setting: envName("cluster-secret"), err: errors.New("needed with --join (the cluster's nodes must share it)")}
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
		SnapshotThreshold: uint64(c.snapshotThreshold), SnapshotInterval: c.snapshotInterval,
		Feed:   &replication.Feed{URL: url, Logger: logger, KeepaliveEvery: time.Second},
		Logger: logger, LogOutput: logOut, Registry: reg,
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

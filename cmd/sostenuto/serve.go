package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/migrations"
	"github.com/sostenuto/sostenuto/replication"
	"github.com/sostenuto/sostenuto/server"
	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/jobs"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/store"
)

type serveConfig struct {
	log               logConfig
	db                dbConfig
	auth              authConfig
	blob              blobConfig
	ingest            ingestConfig
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
}

func (c *serveConfig) settings() []setting {
	s := append(c.log.settings(), c.db.settings()...)
	s = append(s, c.auth.settings()...)
	s = append(s, c.blob.settings()...)
	s = append(s, c.ingest.settings()...)
	return append(s,
		setting{name: "listen", usage: "HTTP listen address", def: ":8080", parse: addrVar(&c.listen)},
		boolSetting("index", "serve search from the in-memory index fed by the changefeed (else from PostgreSQL)", "true", &c.indexEnabled),
		setting{name: "recall-every", usage: "how often the live index's recall is sampled against pgvector's exact search (0s: never)", def: "10m", parse: durationVar(&c.recallEvery, 0, 24*time.Hour)},
		setting{name: "node-id", usage: "this node's name in answers and cluster status (default: the host name)", parse: stringVar(&c.node)},
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
	pipeline, err := cfg.ingest.pipeline(workerStore, blobs, checker, cfg.blob.maxUpload, logger)
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

	var live *index.Live
	var sink *replication.EngineSink
	var feed *replication.Feed
	if cfg.indexEnabled {
		url, _ := cfg.db.resolveURL()
		ecfg := index.DefaultConfig()
		empty, err := index.New(ecfg)
		if err != nil {
			return err
		}
		live = index.NewLive(empty)
		sink = &replication.EngineSink{Live: live, Config: ecfg}
		feed = &replication.Feed{URL: url, Slot: "sostenuto", Logger: logger, KeepaliveEvery: time.Second}
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.listen, err)
	}
	reg := server.NewRegistry()
	deps := server.Deps{Logger: logger, Registry: reg, DB: st, Store: st, Auth: authSvc, Access: access.New(st),
		Blob: blobs, PDF: checker, Fetch: pipeline.Fetch, Embedder: pipeline.Embedder}
	if live != nil {
		deps.Engine, deps.EngineReady = live, sink.Ready
	}
	api := server.New(server.Config{MaxBodyBytes: cfg.maxBodyBytes, MaxUploadBytes: cfg.blob.maxUpload,
		MaxDocumentBytes: cfg.ingest.maxDocumentLen, Version: buildVersion(), NodeID: cfg.node}, deps)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return runner.Run(gctx) })
	if feed != nil {
		g.Go(func() error { return feed.Run(gctx, sink) })
		if cfg.recallEvery > 0 {
			sampler := recallSampler(feed.URL, live, sink, cfg.recallEvery, reg, logger)
			g.Go(func() error { return sampler.Run(gctx) })
		}
	}
	g.Go(func() error {
		return server.Serve(gctx, ln, api.Handler(), server.HTTPConfig{
			ReadHeaderTimeout: cfg.readHeaderTimeout,
			IdleTimeout:       cfg.idleTimeout,
			MaxHeaderBytes:    64 << 10,
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
func recallSampler(url string, live *index.Live, sink *replication.EngineSink, every time.Duration, reg *prometheus.Registry, logger *slog.Logger) *replication.RecallSampler {
	recall := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sostenuto_index_recall_at_10",
		Help: "Mean recall@10 of the local index's vector search against pgvector's exact search, last sample."})
	minRecall := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sostenuto_index_recall_at_10_min",
		Help: "Lowest recall@10 of one query in the last sample."})
	reg.MustRegister(recall, minRecall)
	return &replication.RecallSampler{URL: url, Live: live, Ready: sink.Ready, Every: every, Samples: 20,
		Report: func(r replication.Recall, err error) {
			if err != nil {
				logger.Warn("recall sample failed", "component", "index", "error", err)
				return
			}
			if r.Samples > 0 {
				recall.Set(r.Mean)
				minRecall.Set(r.Min)
				logger.Info("index recall sampled", "component", "index", "recall_at_10", r.Mean, "min", r.Min, "samples", r.Samples)
			}
		}}
}

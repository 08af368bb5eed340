package store

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterPoolMetrics publishes the connection pool's statistics as
// sostenuto_db_pool_* with pool=name (app, worker).
func (s *Store) RegisterPoolMetrics(reg prometheus.Registerer, name string) {
	l := prometheus.Labels{"pool": name}
	gauge := func(metric, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: metric, Help: help, ConstLabels: l}, f)
	}
	counter := func(metric, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: metric, Help: help, ConstLabels: l}, f)
	}
	st := s.pool.Stat
	reg.MustRegister(
		gauge("sostenuto_db_pool_connections", "Open connections of the pool.", func() float64 { return float64(st().TotalConns()) }),
		gauge("sostenuto_db_pool_acquired_connections", "Connections in use.", func() float64 { return float64(st().AcquiredConns()) }),
		gauge("sostenuto_db_pool_idle_connections", "Idle connections.", func() float64 { return float64(st().IdleConns()) }),
		gauge("sostenuto_db_pool_max_connections", "The pool's bound.", func() float64 { return float64(st().MaxConns()) }),
		counter("sostenuto_db_pool_acquires_total", "Connections acquired.", func() float64 { return float64(st().AcquireCount()) }),
		counter("sostenuto_db_pool_acquire_wait_seconds_total", "Time spent waiting for a connection.", func() float64 { return st().AcquireDuration().Seconds() }),
		counter("sostenuto_db_pool_empty_acquires_total", "Acquires that had to wait for a connection.", func() float64 { return float64(st().EmptyAcquireCount()) }),
		counter("sostenuto_db_pool_canceled_acquires_total", "Acquires given up (context ended).", func() float64 { return float64(st().CanceledAcquireCount()) }),
	)
}

// workCollector reports, at each scrape, the jobs by kind and status and
// the knowledge documents by ingestion status (the store must run as the
// worker role, which sees them all).
type workCollector struct {
	s      *Store
	logger *slog.Logger
	jobs   *prometheus.Desc
	docs   *prometheus.Desc
}

// RegisterWorkMetrics publishes sostenuto_jobs{kind,status} and
// sostenuto_documents{status}, read from PostgreSQL at each scrape (bounded
// by 2 s; a failed read leaves them out of that scrape).
func (s *Store) RegisterWorkMetrics(reg prometheus.Registerer, logger *slog.Logger) {
	reg.MustRegister(&workCollector{s: s, logger: logger,
		jobs: prometheus.NewDesc("sostenuto_jobs", "Background jobs by kind and status (queued, running, succeeded, failed).", []string{"kind", "status"}, nil),
		docs: prometheus.NewDesc("sostenuto_documents", "Knowledge documents by ingestion status.", []string{"status"}, nil),
	})
}

func (c *workCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.docs
}

func (c *workCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	collect := func(desc *prometheus.Desc, sql string) {
		rows, err := c.s.pool.Query(ctx, sql)
		if err != nil {
			c.logger.Warn("metrics: read work counts", "error", err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			var labels [2]string
			var n int64
			var err error
			if desc == c.jobs {
				err = rows.Scan(&labels[0], &labels[1], &n)
			} else {
				err = rows.Scan(&labels[0], &n)
			}
			if err != nil {
				return
			}
			lv := labels[:1]
			if desc == c.jobs {
				lv = labels[:]
			}
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n), lv...)
		}
	}
	collect(c.jobs, `SELECT kind, status, count(*) FROM jobs GROUP BY 1, 2`)
	collect(c.docs, `SELECT status, count(*) FROM documents GROUP BY 1`)
}

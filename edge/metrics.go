package edge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the edge's own, served on its /metrics.
type metrics struct {
	requests *prometheus.CounterVec   // by route kind and status
	duration *prometheus.HistogramVec // by route kind
	upstream *prometheus.CounterVec   // attempts by node and outcome
	retries  prometheus.Counter
	healthy  *prometheus.GaugeVec
	cache    *prometheus.CounterVec // by route and result
	tokens   *prometheus.CounterVec // by result
	authz    *prometheus.CounterVec // stream decisions by source
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_requests_total",
			Help: "Requests answered by the edge, by kind (proxy, stream, cache, edge) and status."}, []string{"kind", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "edge_request_duration_seconds",
			Help:    "Time to the end of the answer, by kind.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"kind"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_upstream_attempts_total",
			Help: "Requests sent to nodes, by node and outcome (ok, error, unavailable)."}, []string{"node", "outcome"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "edge_retries_total",
			Help: "Requests sent again to another node after a failure."}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edge_node_healthy",
			Help: "1 when the node passed its last health check."}, []string{"node"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_cache_total",
			Help: "Answer cache lookups by route and result (hit: revalidated 304, miss, stale: replaced, bypass)."}, []string{"route", "result"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_tokens_total",
			Help: "Bearer tokens checked at the edge, by result."}, []string{"result"}),
		authz: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_stream_authz_total",
			Help: "Stream authorization decisions, by source (cached, node) and outcome."}, []string{"source", "outcome"}),
	}
	reg.MustRegister(m.requests, m.duration, m.upstream, m.retries, m.healthy, m.cache, m.tokens, m.authz)
	return m
}

package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpMetrics are the request counters and latency histograms, by route
// pattern (never the raw path: ids would explode the cardinality).
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
	limited  *prometheus.CounterVec
	// The answer path.
	vector *prometheus.HistogramVec // vector_search_duration_seconds
	bm25   *prometheus.HistogramVec // bm25_search_duration_seconds
	rag    *prometheus.HistogramVec // rag_query_duration_seconds
	llm    *prometheus.HistogramVec // llm_response_duration_seconds
	rerank *prometheus.CounterVec   // rerank_total
	// feedback counts ratings of answers (sostenuto_chat_feedback_total).
	feedback *prometheus.CounterVec
}

// searchBuckets suit in-memory searches (tens of µs) to slow fallbacks.
var searchBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "HTTP request durations, by method and route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_limited_total",
		Help: "Requests answered 429 by a rate limit or the stream limit, by limit (ip, user, auth, chat, streams).",
	}, []string{"limit"})
	m.vector = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vector_search_duration_seconds",
		Help: "The vector (HNSW or exact) list of a search in the node's index, by use (search, chat).", Buckets: searchBuckets}, []string{"use"})
	m.bm25 = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bm25_search_duration_seconds",
		Help: "The BM25 list of a search in the node's index, by use (search, chat).", Buckets: searchBuckets}, []string{"use"})
	m.rag = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rag_query_duration_seconds",
		Help:    "A chat question from arrival to its answer, by delivery (json, stream) and outcome (answered, cached, not_modified, error).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"delivery", "outcome"})
	m.llm = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "llm_response_duration_seconds",
		Help:    "The answerer's time for one answer, by model (the extractive answerer included) and outcome (ok, error).",
		Buckets: []float64{.0005, .001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"model", "outcome"})
	m.rerank = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rerank_total",
		Help: "Requested reranks, by outcome (ok, timeout, unavailable, bad_response, not_configured)."}, []string{"outcome"})
	m.feedback = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sostenuto_chat_feedback_total",
		Help: "Ratings of chat answers accepted, by rating (up, down); a replaced rating counts again."}, []string{"rating"})
	for _, rating := range []string{"up", "down"} {
		m.feedback.WithLabelValues(rating) // both series exist from the start
	}
	reg.MustRegister(m.requests, m.duration, m.inflight, m.limited, m.vector, m.bm25, m.rag, m.llm, m.feedback, m.rerank)
	return m
}

func (m *httpMetrics) observe(method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}

func (m *httpMetrics) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.inflight.Inc()
		defer m.inflight.Dec()
		next.ServeHTTP(w, r)
	})
}

// NewRegistry returns a registry with the Go runtime and process collectors,
// the one every component of a node registers its metrics on.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

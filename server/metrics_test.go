package server

import (
	"strings"
	"testing"
	"time"
)

// /metrics carries what operators watch: HTTP by route and status, the
// answer path's durations (vector, BM25, RAG, the answerer), cache results
// per layer, jobs and documents by state, job durations, pool statistics.
func TestOperationalMetrics(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true})
	tok := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(tok, map[string]any{"title": "Scales", "source_type": "text", "content": "Play scales slowly with a relaxed thumb.", "is_public": true})
	a.process(tok, d.Document.ID)
	a.waitDocument(tok, d.Document.ID)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := a.mustStatus(a.call("POST", "/api/search", tok, map[string]any{"query": "relaxed thumb"}), 200)
		if strings.Contains(string(r.body), `"source":"local"`) && strings.Contains(string(r.body), "chunk_id") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.mustStatus(a.call("POST", "/api/chat/query", tok, map[string]any{"query": "How do I play scales?"}), 200)
	a.mustStatus(a.call("POST", "/api/chat/query", tok, map[string]any{"query": "How do I play scales?"}), 200)
	// The job is recorded as done just after the document is completed.
	var body string
	for deadline := time.Now().Add(10 * time.Second); ; {
		body = string(a.mustStatus(a.call("GET", "/metrics", "", nil), 200).body)
		if strings.Contains(body, `sostenuto_jobs{kind="ingest.document",status="succeeded"} 1`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		`http_requests_total{method="POST",route="/api/search",status="200"}`,
		`http_request_duration_seconds_bucket{method="POST",route="/api/chat/query"`,
		`vector_search_duration_seconds_count{use="search"}`,
		`bm25_search_duration_seconds_count{use="chat"}`,
		`rag_query_duration_seconds_count{delivery="json",outcome="answered"} 1`,
		`rag_query_duration_seconds_count{delivery="json",outcome="cached"} 1`,
		`llm_response_duration_seconds_count{model="sostenuto-extractive-v2",outcome="ok"} 1`,
		`sostenuto_cache_requests_total{layer="answers",result="hit"} 1`,
		`sostenuto_cache_requests_total{layer="embeddings",result="miss"}`,
		`sostenuto_jobs{kind="ingest.document",status="succeeded"} 1`,
		`sostenuto_documents{status="completed"} 1`,
		`sostenuto_jobs_run_total{kind="ingest.document",outcome="done"} 1`,
		`sostenuto_job_duration_seconds_count{kind="ingest.document",outcome="done"} 1`,
		`sostenuto_db_pool_connections{pool="app"}`,
		`sostenuto_db_pool_acquires_total{pool="worker"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

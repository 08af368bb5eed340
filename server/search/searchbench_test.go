package search

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
)

// benchWords make the benchmark's documents.
var benchWords = strings.Fields(`piano pedal damper chord scale arpeggio wrist finger legato staccato
	phrase tempo metronome rubato octave trill sonata etude nocturne waltz practice hand thumb posture bench`)

// benchFallback is the node's searcher over an engine of n public
// one-chunk documents embedded by embed.Hash (no database: every query is
// an administrator's, its scope resolved).
func benchFallback(b *testing.B, n int) *Fallback {
	b.Helper()
	e, err := index.New(index.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	ops := index.Ops{Position: index.Position{LSN: 1}}
	for i := range n {
		words := make([]string, 40)
		for j := range words {
			words[j] = benchWords[r.IntN(len(benchWords))]
		}
		text := strings.Join(words, " ")
		vs, err := embed.Hash{}.Embed(context.Background(), []string{text})
		if err != nil {
			b.Fatal(err)
		}
		doc := index.ID(uuid.New())
		ops.Documents = append(ops.Documents, index.Document{ID: doc, IsPublic: true, Title: fmt.Sprint("doc ", i)})
		ops.Upserts = append(ops.Upserts, index.Chunk{ID: index.ID(uuid.New()), DocumentID: doc, Title: fmt.Sprint("doc ", i),
			Text: text, Version: 1, Vector: vs[0]})
	}
	if err := e.Apply(ops); err != nil {
		b.Fatal(err)
	}
	ready := func() bool { return true }
	idx, lagging := NewIndex(IndexConfig{Live: index.NewLive(e), Ready: ready, Based: ready})
	return &Fallback{Index: idx, Lagging: lagging, Embedder: embed.Hash{}, Fusion: DefaultFusion().For(embed.Hash{}.Model())}
}

// benchHandler answers POST {"query": ...} with s, as the node's search
// route does (decode, search, encode).
func benchHandler(s Searcher) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Query string `json:"query"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, err := s.Search(r.Context(), Query{Text: in.Query, K: 10, Scope: Scope{Admin: true, Resolved: true}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res.Hits) //nolint:errcheck // recorder
	})
}

// runSearchRequests serves b.N search requests through h in process.
func runSearchRequests(b *testing.B, h http.Handler) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/api/search", strings.NewReader(`{"query":"damper pedal after each chord"}`))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkSearchRequestPlain is a hybrid search request over 2,000
// documents with no tracing installed: the baseline of the tracing
// benchmarks (it also runs, unchanged, on a tree without tracing).
func BenchmarkSearchRequestPlain(b *testing.B) {
	runSearchRequests(b, benchHandler(benchFallback(b, 2000)))
}

package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/store"
)

// twoHashes are the built-in embedder at 768 dimensions (the default,
// sostenuto-hash-v1) and at 256 (hash256).
func twoHashes(t *testing.T) *embed.Models {
	t.Helper()
	m, err := embed.NewModels(embed.Model{Name: "sostenuto-hash-v1", Dim: 768, Embedder: embed.Hash{}},
		embed.Model{Name: "hash256", Dim: 256, Embedder: embed.Hash{Dims: 256}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// embeddingStatus reads GET /api/admin/embedding.
func (a *testAPI) embeddingStatus(tok string) EmbeddingStatus {
	a.t.Helper()
	var st EmbeddingStatus
	a.mustStatus(a.call("GET", "/api/admin/embedding", tok, nil), 200).decode(a.t, &st)
	return st
}

// waitFor polls cond for up to 60 s.
func (a *testAPI) waitFor(what string, cond func() bool) {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			a.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// searchModel searches and returns the embedding model that answered.
func (a *testAPI) searchModel(tok, query string) (string, int) {
	a.t.Helper()
	var res searchResponse
	a.mustStatus(a.call("POST", "/api/search", tok, map[string]any{"query": query, "mode": "vector", "k": 3}), 200).decode(a.t, &res)
	return res.Index.EmbeddingModel, len(res.Results)
}

// A re-embedding with the hash embedder at 256 dimensions, end to end on
// one node fed by the changefeed: the admin routes answer as the
// contract says; searches keep the old model until the switch and report
// the new one after; a document ingested afterwards gets the new model's
// vector only; the old vectors are dropped; PostgreSQL's vector search
// follows the active model and refuses another; a second build is
// abandoned and its vectors dropped.
func TestReembedSwitchesEveryAnswer(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true, models: twoHashes(t), reembedRate: 4})
	teacher := a.register("t@example.com", "teacher").AccessToken
	admin := a.admin("admin@example.com").AccessToken
	for i := range 12 {
		a.ingestText(teacher, fmt.Sprintf("Etude %d", i), true, fmt.Sprintf("Practise legato scales slowly, etude number %d, with a loose wrist.", i))
	}
	st := a.embeddingStatus(admin)
	if st.Active.Model != "sostenuto-hash-v1" || st.Active.Dim != 768 || st.Active.Chunks != 12 || st.Building != nil {
		t.Fatalf("before: %+v", st)
	}
	a.mustStatus(a.call("POST", "/api/admin/embedding", admin, map[string]any{"model": "nope"}), 400)
	a.mustStatus(a.call("POST", "/api/admin/embedding", admin, map[string]any{"model": "sostenuto-hash-v1"}), 409)
	a.mustStatus(a.call("POST", "/api/admin/embedding", admin, map[string]any{"model": "hash256", "x": 1}), 400)
	a.mustStatus(a.call("POST", "/api/admin/embedding", admin, map[string]any{"model": "hash256"}), 202)
	a.mustStatus(a.call("POST", "/api/admin/embedding", admin, map[string]any{"model": "hash256"}), 409)
	if st := a.embeddingStatus(admin); st.Building == nil || st.Building.Model != "hash256" || st.Building.Dim != 256 || st.Building.Total != 12 {
		t.Fatalf("building: %+v", st.Building)
	}
	// Until the switch every answer is the old model's; after it, the new one's.
	seenOld := false
	a.waitFor("the switch", func() bool {
		model, n := a.searchModel(teacher, "legato scales")
		if n == 0 {
			t.Fatalf("no hits from %s", model)
		}
		if model == "sostenuto-hash-v1" {
			seenOld = true
			return false
		}
		if model != "hash256" {
			t.Fatalf("answered by %q", model)
		}
		return true
	})
	if !seenOld {
		t.Error("no answer of the old model during the build (the build was too quick to observe)")
	}
	if st := a.embeddingStatus(admin); st.Active.Model != "hash256" || st.Active.Dim != 256 || st.Building != nil {
		t.Fatalf("after: %+v", st)
	}
	a.checkAfterSwitch(teacher)
	a.checkAbandon(admin)
}

// checkAfterSwitch: the old vectors go, a new document gets the new
// model's vector only, and PostgreSQL's vector search follows the model.
func (a *testAPI) checkAfterSwitch(teacher string) {
	t := a.t
	a.waitFor("the old vectors dropped", func() bool {
		return a.count(`SELECT count(*) FROM chunks WHERE embedding IS NOT NULL`) == 0
	})
	a.ingestText(teacher, "Pedal", true, "Change the damper pedal after the chord, never with it.")
	if n := a.count(`SELECT count(*) FROM chunk_embeddings e JOIN chunks c ON c.id = e.chunk_id
		WHERE e.model = 'hash256' AND vector_dims(e.embedding) = 256`); n != 13 {
		t.Fatalf("%d chunks hold a 256-dimensional vector, want 13", n)
	}
	q, err := embed.Hash{Dims: 256}.Embed(context.Background(), []string{"damper pedal chord"})
	if err != nil {
		t.Fatal(err)
	}
	var teacherID uuid.UUID
	a.db.Pool.QueryRow(context.Background(), `SELECT id FROM users WHERE email = 't@example.com'`).Scan(&teacherID)
	hits, err := a.store.SearchVector(context.Background(), teacherID, "hash256", q[0], 3, 10, store.SearchFilter{Knowledge: true, Annotations: true})
	if err != nil || len(hits) == 0 {
		t.Fatalf("PostgreSQL's search over the new model: %d hits, %v", len(hits), err)
	}
	if _, err := a.store.SearchVector(context.Background(), teacherID, "sostenuto-hash-v1", q[0], 3, 10, store.SearchFilter{Knowledge: true, Annotations: true}); !errors.Is(err, index.ErrModel) {
		t.Fatalf("PostgreSQL's search with the old model: %v, want index.ErrModel", err)
	}
}

// checkAbandon: a build back to the first model is abandoned; its graph
// and vectors go, the active model stays.
func (a *testAPI) checkAbandon(admin string) {
	t := a.t
	a.mustStatus(a.call("POST", "/api/admin/embedding", admin, map[string]any{"model": "sostenuto-hash-v1"}), 202)
	a.waitFor("some vectors of the build", func() bool {
		return a.count(`SELECT count(*) FROM chunk_embeddings WHERE model = 'sostenuto-hash-v1'`) > 0
	})
	a.mustStatus(a.call("DELETE", "/api/admin/embedding/building", admin, nil), 204)
	a.mustStatus(a.call("DELETE", "/api/admin/embedding/building", admin, nil), 404)
	if st := a.embeddingStatus(admin); st.Active.Model != "hash256" || st.Building != nil {
		t.Fatalf("after abandoning: %+v", st)
	}
	a.waitFor("the abandoned vectors dropped", func() bool {
		return a.count(`SELECT count(*) FROM chunk_embeddings WHERE model = 'sostenuto-hash-v1'`) == 0
	})
	a.waitFor("the building graph dropped", func() bool {
		e := a.server.engine.Engine()
		return e.Model().Building == "" && e.BuildLen() == 0
	})
	if model, n := a.searchModel(admin, "legato scales"); model != "hash256" || n == 0 {
		t.Fatalf("after abandoning: %d hits from %q", n, model)
	}
}

// count runs a count query as the owner.
func (a *testAPI) count(q string) int {
	a.t.Helper()
	var n int
	if err := a.db.Pool.QueryRow(context.Background(), q).Scan(&n); err != nil {
		a.t.Fatal(err)
	}
	return n
}

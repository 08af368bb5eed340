package index

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"testing"
)

// randVec is a random vector of n dimensions.
func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for j := range v {
		v[j] = float32(r.NormFloat64())
	}
	return v
}

// modelWorld is an engine whose active model "a" (dim) is the column
// model, holding n chunks of one public document.
func modelWorld(t *testing.T, r *rand.Rand, n int) (*Engine, []Chunk) {
	t.Helper()
	e, err := New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	doc := Document{ID: idn('d', 0), OwnerID: idn('u', 0), IsPublic: true, Title: "Doc"}
	ops := Ops{Documents: []Document{doc}, Position: Position{LSN: 1},
		Model: &ModelState{Active: "a", ActiveDim: dim, Column: "a"}}
	for i := range n {
		ops.Upserts = append(ops.Upserts, Chunk{ID: idn('c', i), DocumentID: doc.ID, OwnerID: doc.OwnerID,
			Text: "legato pedal", Version: 1, Vector: randVec(r, dim)})
	}
	if err := e.Apply(ops); err != nil {
		t.Fatal(err)
	}
	return e, ops.Upserts
}

// building is the state while model "b" (bdim) is built beside "a".
func building(bdim int) *ModelState {
	return &ModelState{Active: "a", ActiveDim: dim, Building: "b", BuildingDim: bdim, Column: "a"}
}

func TestModelSwitchAtOneBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 1))
	e, chunks := modelWorld(t, r, 100)
	const bdim = 12
	if err := e.Apply(Ops{Position: Position{LSN: 2}, Model: building(bdim)}); err != nil {
		t.Fatal(err)
	}
	// Half the new vectors arrive; searches keep the active model.
	var emb []Embedding
	for _, c := range chunks[:50] {
		emb = append(emb, Embedding{Chunk: c.ID, Model: "b", Vector: randVec(r, bdim)})
	}
	if err := e.Apply(Ops{Position: Position{LSN: 3}, Embeddings: emb}); err != nil {
		t.Fatal(err)
	}
	if e.BuildLen() != 50 || e.Model().Active != "a" {
		t.Fatalf("build holds %d, active %q", e.BuildLen(), e.Model().Active)
	}
	if _, err := e.Search(Query{Text: "pedal", Vector: randVec(r, dim), K: 5, Model: "a", Scope: Scope{Admin: true}}); err != nil {
		t.Fatalf("search with the active model: %v", err)
	}
	if _, err := e.Search(Query{Text: "pedal", Vector: randVec(r, bdim), K: 5, Model: "b", Scope: Scope{Admin: true}}); !errors.Is(err, ErrModel) {
		t.Fatalf("search with the building model: %v, want ErrModel", err)
	}
	// A new chunk during the build gets both vectors; a deleted one
	// leaves both graphs.
	nc := Chunk{ID: idn('c', 999), DocumentID: chunks[0].DocumentID, OwnerID: chunks[0].OwnerID, Text: "new", Version: 1, Vector: randVec(r, dim)}
	emb = []Embedding{{Chunk: nc.ID, Model: "b", Vector: randVec(r, bdim)}}
	for _, c := range chunks[50:] {
		emb = append(emb, Embedding{Chunk: c.ID, Model: "b", Vector: randVec(r, bdim)})
	}
	if err := e.Apply(Ops{Position: Position{LSN: 4}, Upserts: []Chunk{nc}, Deletes: []ID{chunks[0].ID}, Embeddings: emb}); err != nil {
		t.Fatal(err)
	}
	if got := len(e.ModelVectors("b")); got != 100 {
		t.Fatalf("building graph holds %d vectors, want 100", got)
	}
	// The switch: one batch.
	if err := e.Apply(Ops{Position: Position{LSN: 5}, Model: &ModelState{Active: "b", ActiveDim: bdim}}); err != nil {
		t.Fatal(err)
	}
	if m := e.Model(); m.Active != "b" || e.BuildLen() != 0 || e.graph().Config().Dim != bdim || e.graph().Len() != 100 {
		t.Fatalf("after the switch: %+v, graph %d×%d", m, e.graph().Len(), e.graph().Config().Dim)
	}
	hits, err := e.Search(Query{Text: "x", Vector: randVec(r, bdim), K: 5, Mode: ModeVector, Model: "b", Scope: Scope{Admin: true}})
	if err != nil || len(hits) != 5 {
		t.Fatalf("search after the switch: %d hits, %v", len(hits), err)
	}
	if _, err := e.Search(Query{Text: "x", Vector: randVec(r, dim), K: 5, Model: "a", Scope: Scope{Admin: true}}); !errors.Is(err, ErrModel) {
		t.Fatalf("search with the old model: %v, want ErrModel", err)
	}
	// Column vectors of the old model are ignored from now on.
	up := chunks[1]
	up.Version, up.Vector = 2, randVec(r, dim)
	if err := e.Apply(Ops{Position: Position{LSN: 6}, Upserts: []Chunk{up}}); err != nil {
		t.Fatalf("a chunk upsert carrying the old model's vector: %v", err)
	}
}

func TestModelBuildAbandoned(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 2))
	e, chunks := modelWorld(t, r, 20)
	if err := e.Apply(Ops{Position: Position{LSN: 2}, Model: building(8),
		Embeddings: []Embedding{{Chunk: chunks[0].ID, Model: "b", Vector: randVec(r, 8)}}}); err != nil {
		t.Fatal(err)
	}
	if e.BuildLen() != 1 {
		t.Fatalf("build holds %d", e.BuildLen())
	}
	if err := e.Apply(Ops{Position: Position{LSN: 3}, Model: &ModelState{Active: "a", ActiveDim: dim, Column: "a"}}); err != nil {
		t.Fatal(err)
	}
	if e.BuildLen() != 0 || e.graph().Len() != 20 || e.Model().Building != "" {
		t.Fatalf("after abandoning: build %d, graph %d, %+v", e.BuildLen(), e.graph().Len(), e.Model())
	}
	// Late vectors of the abandoned model change nothing.
	if err := e.Apply(Ops{Position: Position{LSN: 4}, Embeddings: []Embedding{{Chunk: chunks[1].ID, Model: "b", Vector: randVec(r, 8)}}}); err != nil {
		t.Fatal(err)
	}
	if e.BuildLen() != 0 {
		t.Fatal("a vector of an abandoned model was kept")
	}
}

func TestModelWrongDimensionRefused(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 3))
	e, chunks := modelWorld(t, r, 3)
	if err := e.Apply(Ops{Position: Position{LSN: 2}, Model: building(8)}); err != nil {
		t.Fatal(err)
	}
	err := e.Apply(Ops{Position: Position{LSN: 3}, Embeddings: []Embedding{{Chunk: chunks[0].ID, Model: "b", Vector: randVec(r, 9)}}})
	if !errors.Is(err, ErrDimension) {
		t.Fatalf("a 9-dimensional vector of an 8-dimensional model: %v", err)
	}
}

func TestSnapshotCarriesTheBuildingGraph(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 4))
	e, chunks := modelWorld(t, r, 30)
	var emb []Embedding
	for _, c := range chunks[:10] {
		emb = append(emb, Embedding{Chunk: c.ID, Model: "b", Vector: randVec(r, 8)})
	}
	if err := e.Apply(Ops{Position: Position{LSN: 2}, Model: building(8), Embeddings: emb}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := e.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSnapshot(cfg(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if got.Model() != e.Model() || got.BuildLen() != 10 || got.Len() != 30 {
		t.Fatalf("restored %+v with %d building, %d chunks", got.Model(), got.BuildLen(), got.Len())
	}
	for id, v := range e.ModelVectors("b") {
		w := got.ModelVectors("b")[id]
		if !vecEqual(v, w) {
			t.Fatalf("chunk %x: building vector changed in the snapshot", id)
		}
	}
}

func vecEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A version 3 snapshot (written before models were named, testdata:
// one knowledge chunk and one teacher's note) still loads, as an engine
// whose models are not named yet, and takes a model state after it.
func TestVersion3SnapshotStillLoads(t *testing.T) {
	b, err := os.ReadFile("testdata/snapshot_v3.bin")
	if err != nil {
		t.Fatal(err)
	}
	e, err := ReadSnapshot(cfg(), bytes.NewReader(b))
	if err != nil {
		t.Fatalf("a version 3 snapshot: %v", err)
	}
	if e.Len() != 2 || e.Position().LSN != 7 || e.Model() != (ModelState{}) {
		t.Fatalf("restored %d chunks at %v, %+v", e.Len(), e.Position(), e.Model())
	}
	hits, err := e.Search(Query{K: 5, Mode: ModeBM25, Text: "pedal", Scope: Scope{User: idn('u', 2)}})
	if err != nil || len(hits) != 2 {
		t.Fatalf("v3 snapshot: %+v, %v", hits, err)
	}
	m := ModelState{Active: "hash-768", ActiveDim: dim, Column: "hash-768"}
	if err := e.Apply(Ops{Position: Position{LSN: 8}, Model: &m}); err != nil || e.Model() != m {
		t.Fatalf("model after a v3 snapshot: %v, %+v", err, e.Model())
	}
}

// An engine whose models are not named yet (no state replicated) answers
// a query whatever model it names, as before models were named.
func TestUnnamedEngineAcceptsAnyModel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 6))
	e, err := New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	doc := Document{ID: idn('d', 1), OwnerID: idn('u', 1), IsPublic: true}
	if err := e.Apply(Ops{Documents: []Document{doc}, Position: Position{LSN: 1}, Upserts: []Chunk{
		{ID: idn('c', 1), DocumentID: doc.ID, OwnerID: doc.OwnerID, Text: "scale", Version: 1, Vector: randVec(r, dim)}}}); err != nil {
		t.Fatal(err)
	}
	var served Served
	hits, err := e.Search(Query{Text: "scale", Vector: randVec(r, dim), K: 1, Model: "anything", Scope: Scope{Admin: true}, Served: &served})
	if err != nil || len(hits) != 1 || served.Model != "" || served.Position.LSN != 1 {
		t.Fatalf("%d hits, %v, served %+v", len(hits), err, served)
	}
}

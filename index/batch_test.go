package index

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/sostenuto/sostenuto/index/vector"
)

// Applying runs of batches with ApplyBatch ends where applying them one by
// one does: the same position, data version, documents and chunks, the
// same vector for every chunk and the same BM25 answers in every scope —
// through runs that upsert a chunk and update it without a vector, delete
// and re-create chunks, and flip a document's visibility after writing its
// chunks. A batch with a vector of the wrong length is refused alone.
func TestApplyBatchMatchesOneByOne(t *testing.T) {
	s := newScript(33)
	var batches []Ops
	for lsn := 1; lsn <= 600; lsn++ {
		batches = append(batches, s.batch(lsn))
	}
	bad := Ops{Upserts: []Chunk{{ID: idn('c', 1), Version: 99, Vector: []float32{1}}}, Position: Position{LSN: 700}}
	batches = slices.Insert(batches, 250, bad)
	tail := edgeRun(s, 800)
	batches = append(batches, tail...)
	one, _ := New(cfg())
	for i, o := range batches {
		if err := one.Apply(o); (err != nil) != (i == 250) {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	runs, _ := New(cfg())
	r := rand.New(rand.NewPCG(4, 4))
	for i := 0; i < len(batches); {
		n := min(1+r.IntN(25), len(batches)-len(tail)-i)
		if i == len(batches)-len(tail) {
			n = len(tail) // the edge cases, in one run
		}
		for j, err := range runs.ApplyBatch(batches[i : i+n]) {
			if (err != nil) != (i+j == 250) {
				t.Fatalf("batch %d: %v", i+j, err)
			}
		}
		i += n
	}
	assertSameContent(t, runs, one)
}

// edgeRun is batches from lsn on that one run must get right: a private
// document's chunks written, then the document made public; a chunk
// written with a vector, then updated without one; a chunk deleted, then
// written again.
func edgeRun(s *script, lsn int) []Ops {
	d := Document{ID: idn('d', 9999), OwnerID: idn('u', 3), Title: "Edge"}
	c := Chunk{ID: idn('c', 999999), DocumentID: d.ID, OwnerID: d.OwnerID, Text: "edge " + words[0], Version: 1, Vector: s.vec()}
	c2, c3, once := c, c, c
	once.ID, once.Text = idn('c', 999998), "edge once "+words[2]
	c2.Version, c2.Vector, c2.Text = 2, nil, "edge "+words[1]
	c3.Version, c3.Vector = 3, s.vec()
	pub := d
	pub.IsPublic = true
	return []Ops{
		{Documents: []Document{d}, Upserts: []Chunk{c, once}, Position: Position{LSN: LSN(lsn)}},
		{Documents: []Document{pub}, Position: Position{LSN: LSN(lsn + 1)}},
		{Upserts: []Chunk{c2}, Position: Position{LSN: LSN(lsn + 2)}},
		{Deletes: []ID{c.ID}, Position: Position{LSN: LSN(lsn + 3)}},
		{Upserts: []Chunk{c3}, Position: Position{LSN: LSN(lsn + 4)}},
	}
}

// assertSameContent fails unless got and want hold the same position,
// documents, chunks and vectors, and answer BM25 queries alike in every
// scope (their graphs and postings may be laid out differently).
func assertSameContent(t *testing.T, got, want *Engine) {
	t.Helper()
	if got.Position() != want.Position() || got.DataVersion() != want.DataVersion() || got.public != want.public {
		t.Fatalf("position %v data %s public %d, want %v %s %d", got.Position(), got.DataVersion(), got.public,
			want.Position(), want.DataVersion(), want.public)
	}
	if !reflect.DeepEqual(got.chunks, want.chunks) || len(got.docs) != len(want.docs) {
		t.Fatal("chunk maps differ")
	}
	for id, d := range want.docs {
		if g := got.docs[id]; g == nil || !reflect.DeepEqual(*g, *d) {
			t.Fatalf("document %x differs", id)
		}
	}
	for id := range want.chunks {
		a, _ := got.graph().Vector(vector.ID(id))
		b, _ := want.graph().Vector(vector.ID(id))
		// Equal up to rounding: one by one, an update without a vector
		// normalizes the stored (normalized) vector again.
		if a == nil || !slices.EqualFunc(a, b, func(x, y float32) bool { return math.Abs(float64(x-y)) < 1e-6 }) {
			t.Fatalf("chunk %x: vector differs", id)
		}
	}
	if got.graph().Len() != want.graph().Len() || got.text.Count() != want.text.Count() {
		t.Fatalf("graph %d text %d, want %d %d", got.graph().Len(), got.text.Count(), want.graph().Len(), want.text.Count())
	}
	for _, sc := range []Scope{{Admin: true}, {User: idn('u', 0)}, {User: idn('u', 1), Teachers: []ID{idn('u', 2)}}} {
		for _, q := range append(slices.Clone(words), canary(1), canary(3), "edge") {
			a, _ := got.Search(Query{K: 20, Mode: ModeBM25, Text: q, Scope: sc})
			b, _ := want.Search(Query{K: 20, Mode: ModeBM25, Text: q, Scope: sc})
			if len(a) != len(b) {
				t.Fatalf("%q in %+v: %d hits, want %d", q, sc, len(a), len(b))
			}
			for i := range a {
				if a[i].Chunk.ID != b[i].Chunk.ID || a[i].Score != b[i].Score {
					t.Fatalf("%q in %+v: hit %d differs", q, sc, i)
				}
			}
		}
	}
}

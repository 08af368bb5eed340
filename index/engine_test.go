package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/index/vector"
)

const dim = 32

func cfg() Config {
	return Config{Vector: vector.Config{Dim: dim, M: 16, EfConstruction: 64, EfSearch: 40}, ExactBelow: 50}
}

func idn(prefix byte, i int) ID {
	var id ID
	id[0] = prefix
	id[1], id[2], id[3] = byte(i>>16), byte(i>>8), byte(i)
	return id
}

var words = strings.Fields("legato staccato pedal scale arpeggio chord tempo rubato phrase fingering thumb wrist metronome dynamics forte piano crescendo etude nocturne sonata")

// world is users, documents with random visibility, and chunks whose text
// carries a canary word unique to their document.
type world struct {
	e       *Engine
	users   []ID
	teacher map[ID][]ID // student → teachers
	docs    []Document
	chunks  []Chunk
}

func canary(d int) string { return fmt.Sprintf("canary%04d", d) }

func newWorld(t *testing.T, r *rand.Rand, nUsers, nDocs, perDoc int) *world {
	t.Helper()
	e, err := New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	w := &world{e: e, teacher: map[ID][]ID{}}
	for i := range nUsers {
		w.users = append(w.users, idn('u', i))
	}
	for _, u := range w.users {
		for _, t := range w.users {
			if t != u && r.IntN(6) == 0 {
				w.teacher[u] = append(w.teacher[u], t)
			}
		}
	}
	var ops Ops
	for d := range nDocs {
		doc := Document{ID: idn('d', d), OwnerID: w.users[r.IntN(nUsers)], IsPublic: r.IntN(3) == 0}
		w.docs = append(w.docs, doc)
		ops.Documents = append(ops.Documents, doc)
		for c := range perDoc {
			v := make([]float32, dim)
			for j := range v {
				v[j] = float32(r.NormFloat64())
			}
			text := canary(d) + " " + words[r.IntN(len(words))] + " " + words[r.IntN(len(words))]
			ch := Chunk{ID: idn('c', d*1000+c), DocumentID: doc.ID, OwnerID: doc.OwnerID, Title: "Doc", Text: text, PageStart: 1, PageEnd: 1, Version: 1, Vector: v}
			w.chunks = append(w.chunks, ch)
			ops.Upserts = append(ops.Upserts, ch)
		}
	}
	ops.Position = Position{LSN: 1}
	if err := e.Apply(ops); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) visible(s Scope, c *Chunk) bool {
	if s.Admin || c.OwnerID == s.User {
		return true
	}
	for _, d := range w.docs {
		if d.ID == c.DocumentID {
			if d.IsPublic {
				return true
			}
			for _, t := range s.Teachers {
				if t == d.OwnerID {
					return true
				}
			}
			return false
		}
	}
	return false
}

// Random scopes × random queries in every mode: no result is ever outside
// the caller's scope.
func TestNoLeaks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	w := newWorld(t, r, 12, 80, 6)
	leaks, queries := 0, 0
	lsn := LSN(1)
	for i := range 600 {
		switch {
		case i == 300:
			// Few public documents left: scopes become small enough for the
			// exact scan over the allowed chunks.
			var ops Ops
			for j := range w.docs {
				w.docs[j].IsPublic = j < 5
				ops.Documents = append(ops.Documents, w.docs[j])
			}
			lsn++
			ops.Position = Position{LSN: lsn}
			w.e.Apply(ops)
		case i%20 == 0:
			// Visibility flips and deletions while searching.
			j := r.IntN(len(w.docs))
			w.docs[j].IsPublic = !w.docs[j].IsPublic
			lsn++
			w.e.Apply(Ops{Documents: []Document{w.docs[j]}, Deletes: []ID{w.chunks[r.IntN(len(w.chunks))].ID}, Position: Position{LSN: lsn}})
		}
		if got, want := w.e.public, w.e.countPublic(); got != want {
			t.Fatalf("step %d: %d public chunks counted, %d there", i, got, want)
		}
		u := w.users[r.IntN(len(w.users))]
		s := Scope{User: u, Teachers: w.teacher[u], Admin: i%50 == 0}
		q := Query{K: 1 + r.IntN(20), Mode: []string{ModeHybrid, ModeVector, ModeBM25}[i%3], Scope: s,
			Text: canary(r.IntN(80)) + " " + words[r.IntN(len(words))], Vector: w.chunks[r.IntN(len(w.chunks))].Vector}
		hits, err := w.e.Search(q)
		if err != nil {
			t.Fatal(err)
		}
		queries++
		for _, h := range hits {
			if !w.visible(s, h.Chunk) {
				leaks++
			}
		}
		if len(hits) > q.K {
			t.Fatalf("%d hits for k %d", len(hits), q.K)
		}
	}
	if leaks != 0 {
		t.Fatalf("%d foreign chunks in %d searches", leaks, queries)
	}
	// A visibility change is honoured at once.
	d := w.docs[0]
	d.IsPublic = false
	w.e.Apply(Ops{Documents: []Document{d}, Position: Position{LSN: lsn + 1}})
	w.docs[0] = d
	stranger := Scope{User: idn('x', 1)}
	hits, _ := w.e.Search(Query{K: 50, Mode: ModeBM25, Text: canary(0), Scope: stranger})
	if len(hits) != 0 {
		t.Errorf("a document made private is still found by strangers: %d hits", len(hits))
	}
}

// Filtered vector recall against the exact filtered top-k, reported.
func TestFilteredRecall(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	w := newWorld(t, r, 10, 200, 10)
	hit, total := 0, 0
	for range 100 {
		u := w.users[r.IntN(len(w.users))]
		s := Scope{User: u, Teachers: w.teacher[u]}
		q := w.chunks[r.IntN(len(w.chunks))].Vector
		hits, _ := w.e.Search(Query{K: 10, Mode: ModeVector, Vector: q, Scope: s})
		var exact []struct {
			id ID
			s  float64
		}
		for i := range w.chunks {
			c := &w.chunks[i]
			if w.visible(s, c) {
				exact = append(exact, struct {
					id ID
					s  float64
				}{c.ID, cos(q, c.Vector)})
			}
		}
		sortDesc(exact)
		want := map[ID]bool{}
		for i := 0; i < 10 && i < len(exact); i++ {
			want[exact[i].id] = true
		}
		for _, h := range hits {
			if want[h.Chunk.ID] {
				hit++
			}
		}
		total += len(want)
	}
	rc := float64(hit) / float64(total)
	t.Logf("recall@10 under filters: %.3f", rc)
	if rc < 0.9 {
		t.Errorf("filtered recall %.3f", rc)
	}
}

func cos(a, b []float32) float64 {
	var d, na, nb float64
	for i := range a {
		d += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return d / math.Sqrt(na*nb)
}

func sortDesc(xs []struct {
	id ID
	s  float64
}) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j].s > xs[j-1].s; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

func TestHybridRanks(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	w := newWorld(t, r, 3, 30, 4)
	target := w.chunks[17]
	hits, err := w.e.Search(Query{K: 5, Mode: ModeHybrid, Text: canary(4) + " " + strings.Fields(target.Text)[1], Vector: target.Vector, Scope: Scope{Admin: true},
		Fusion: Fusion{Method: FusionRRF}})
	if err != nil {
		t.Fatal(err)
	}
	if hits[0].Chunk.ID != target.ID || hits[0].VectorRank != 1 || hits[0].BM25Rank == 0 {
		t.Errorf("top hit %+v (ranks %d/%d)", hits[0].Chunk.ID, hits[0].VectorRank, hits[0].BM25Rank)
	}
	for i := 1; i < len(hits); i++ {
		if hits[i].Score > hits[i-1].Score {
			t.Error("hits not sorted by fused score")
		}
	}
	want := 1/(60.0+1) + 1/(60.0+float64(hits[0].BM25Rank))
	if math.Abs(hits[0].Score-want) > 1e-12 {
		t.Errorf("fused score %v, want %v", hits[0].Score, want)
	}
	if _, err := w.e.Search(Query{K: 5, Mode: ModeVector, Scope: Scope{Admin: true}}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("vector mode without a vector: %v", err)
	}
	if _, err := w.e.Search(Query{K: 5, Mode: "fuzzy", Text: "x", Scope: Scope{Admin: true}}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("unknown mode: %v", err)
	}
}

// TestWeightsChangeRanking: the vector list's best and the BM25 list's
// best trade places as the weights move, in both fusion methods, and a
// weight of 0 leaves the other list's order alone.
func TestWeightsChangeRanking(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	w := newWorld(t, r, 3, 30, 4)
	vecBest := w.chunks[17]             // the query's vector is its own
	text := canary(9) + " " + canary(9) // only document 9's chunks hold it
	scope := Scope{Admin: true}
	only := func(mode string) []Hit {
		hits, err := w.e.Search(Query{K: 10, Mode: mode, Text: text, Vector: vecBest.Vector, Scope: scope})
		if err != nil {
			t.Fatal(err)
		}
		return hits
	}
	vecList, bmList := only(ModeVector), only(ModeBM25)
	for _, method := range []string{FusionConvex, FusionRRF} {
		for _, tc := range []struct {
			w    Weights
			want []Hit
		}{{Weights{Vector: 1}, vecList}, {Weights{BM25: 1}, bmList}} {
			hits, err := w.e.Search(Query{K: 4, Mode: ModeHybrid, Text: text, Vector: vecBest.Vector, Scope: scope,
				Fusion: Fusion{Method: method, Weights: tc.w}})
			if err != nil {
				t.Fatal(err)
			}
			for i, h := range hits {
				if h.Chunk.ID != tc.want[i].Chunk.ID {
					t.Errorf("%s %+v: hit %d is %x, want %x (the other list must not move it)", method, tc.w, i, h.Chunk.ID[:4], tc.want[i].Chunk.ID[:4])
				}
			}
		}
	}
	if vecList[0].Chunk.DocumentID == bmList[0].Chunk.DocumentID {
		t.Fatal("the lists agree: the test proves nothing")
	}
	if _, err := w.e.Search(Query{K: 4, Mode: ModeHybrid, Text: text, Vector: vecBest.Vector, Scope: scope,
		Fusion: Fusion{Weights: Weights{Vector: -1, BM25: 1}}}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("negative weight: %v, want ErrBadQuery", err)
	}
}

func TestApplyIdempotentAndDeletes(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	w := newWorld(t, r, 3, 10, 3)
	n := w.e.Len()
	// Replaying an applied batch changes nothing.
	w.e.Apply(Ops{Upserts: w.chunks[:5], Position: Position{LSN: 1}})
	w.e.Apply(Ops{Upserts: w.chunks[:5]})
	if w.e.Len() != n || w.e.vec.Tombstones() != 0 {
		t.Errorf("len %d (want %d), tombstones %d", w.e.Len(), n, w.e.vec.Tombstones())
	}
	w.e.Apply(Ops{DeleteDocs: []ID{w.docs[0].ID}, Deletes: []ID{w.chunks[5].ID, idn('z', 9)}, Position: Position{LSN: 5}})
	if w.e.Len() != n-4 || w.e.Position().LSN != 5 {
		t.Errorf("after deletes: len %d, position %d", w.e.Len(), w.e.Position().LSN)
	}
	hits, _ := w.e.Search(Query{K: 100, Mode: ModeBM25, Text: canary(0), Scope: Scope{Admin: true}})
	if len(hits) != 0 {
		t.Errorf("deleted document's chunks found: %d", len(hits))
	}
	bad := w.chunks[6]
	bad.Vector = bad.Vector[:3]
	bad.Version = 2
	if err := w.e.Apply(Ops{Upserts: []Chunk{bad}}); !errors.Is(err, ErrDimension) {
		t.Errorf("short vector: %v", err)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	w := newWorld(t, r, 6, 40, 5)
	w.e.Apply(Ops{Deletes: []ID{w.chunks[0].ID}, Position: Position{LSN: 9}})
	var buf bytes.Buffer
	if err := w.e.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	e2, err := ReadSnapshot(cfg(), bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if e2.Len() != w.e.Len() || e2.Position().LSN != 9 {
		t.Fatalf("restored len %d lsn %d", e2.Len(), e2.Position().LSN)
	}
	for i := range 50 {
		u := w.users[r.IntN(len(w.users))]
		q := Query{K: 10, Mode: []string{ModeHybrid, ModeVector, ModeBM25}[i%3], Text: canary(r.IntN(40)), Vector: w.chunks[r.IntN(len(w.chunks))].Vector,
			Scope: Scope{User: u, Teachers: w.teacher[u]}}
		a, _ := w.e.Search(q)
		b, _ := e2.Search(q)
		if len(a) != len(b) {
			t.Fatalf("query %d: %d vs %d hits", i, len(a), len(b))
		}
		// Both indexes are restored as they were: every list is identical,
		// scores included.
		for j := range a {
			if a[j].Chunk.ID != b[j].Chunk.ID || a[j].Score != b[j].Score || a[j].BM25Rank != b[j].BM25Rank || a[j].VectorRank != b[j].VectorRank {
				t.Fatalf("query %d (%s): hit %d differs after restore: %+v vs %+v", i, q.Mode, j, a[j], b[j])
			}
		}
	}
	// Damage anywhere is detected; other versions are refused.
	for name, damage := range map[string]func([]byte) []byte{
		"flipped byte": func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b },
		"truncated":    func(b []byte) []byte { return b[:len(b)-100] },
		"no trailer":   func(b []byte) []byte { return b[:len(b)-4] },
		"version 1":    func(b []byte) []byte { b[8] = 1; return b },
		"not ours":     func(b []byte) []byte { copy(b, "PK\x03\x04"); return b },
	} {
		bad := damage(append([]byte(nil), buf.Bytes()...))
		if _, err := ReadSnapshot(cfg(), bytes.NewReader(bad)); !errors.Is(err, ErrSnapshot) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Live swaps whole engines.
	live := NewLive(w.e)
	if err := live.Restore(cfg(), bytes.NewReader(buf.Bytes())); err != nil || live.Engine() == w.e {
		t.Errorf("restore: %v", err)
	}
}

// Tombstones past a quarter of the live vectors are compacted away, and
// searches still find what is live.
func TestCompaction(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	w := newWorld(t, r, 2, 400, 10) // 4000 chunks
	var dels []ID
	for i := 0; i < 1500; i++ {
		dels = append(dels, w.chunks[i].ID)
	}
	if err := w.e.Apply(Ops{Deletes: dels, Position: Position{LSN: 3}}); err != nil {
		t.Fatal(err)
	}
	// Writes after the deletes; compaction keeps them (compactor_test.go
	// has writes made while the compacted graph is built).
	late := w.chunks[2000]
	late.Version = 2
	if err := w.e.Apply(Ops{Upserts: []Chunk{late}, Deletes: []ID{w.chunks[3999].ID}, Position: Position{LSN: 4}}); err != nil {
		t.Fatal(err)
	}
	compactNow(t, w.e)
	if tomb := w.e.graph().Tombstones(); tomb > 2 || w.e.graph().Len() != 2499 { // the two late writes may leave their own
		t.Fatalf("after compaction: %d tombstones, %d live", tomb, w.e.graph().Len())
	}
	target := w.chunks[3000]
	hits, _ := w.e.Search(Query{K: 1, Mode: ModeVector, Vector: target.Vector, Scope: Scope{Admin: true}})
	if len(hits) != 1 || hits[0].Chunk.ID != target.ID {
		t.Errorf("hits %+v", hits)
	}
}

// Every score a caller sees depends only on documents the caller may see:
// for random scopes, adding, changing and deleting private documents of
// owners outside the scope changes no score and no order inside it, in
// every mode. (The vector list is exact here, ExactBelow covering the
// scope; over larger scopes the graph's approximate search can reach
// different nodes: SECURITY.md names that limit.)
func TestScoresIgnoreDocumentsOutsideScope(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	w := newWorld(t, r, 12, 80, 6)
	c := cfg()
	c.ExactBelow = 1 << 20
	w.e.cfg = c
	lsn := LSN(1)
	for trial := range 20 {
		u := w.users[r.IntN(len(w.users))]
		s := Scope{User: u, Teachers: w.teacher[u]}
		inside := map[ID]bool{u: true}
		for _, t := range s.Teachers {
			inside[t] = true
		}
		var outsiders []ID
		for _, o := range w.users {
			if !inside[o] {
				outsiders = append(outsiders, o)
			}
		}
		queries := make([]Query, 12)
		for i := range queries {
			queries[i] = Query{K: 10, Mode: []string{ModeHybrid, ModeVector, ModeBM25}[i%3], Scope: s,
				Text: canary(r.IntN(80)) + " " + words[r.IntN(len(words))] + " " + words[r.IntN(len(words))], Vector: w.chunks[r.IntN(len(w.chunks))].Vector}
		}
		before := answersOf(t, w.e, queries)
		lsn++
		w.e.Apply(outsideChanges(r, w, outsiders, trial, lsn))
		if after := answersOf(t, w.e, queries); after != before {
			t.Fatalf("trial %d: documents outside the scope changed its answers:\nbefore %s\nafter  %s", trial, before, after)
		}
	}
}

// answersOf renders the answers to queries: ids, scores and ranks.
func answersOf(t *testing.T, e *Engine, queries []Query) string {
	t.Helper()
	var b strings.Builder
	for _, q := range queries {
		hits, err := e.Search(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hits {
			fmt.Fprintf(&b, "%x %v %d %d|", h.Chunk.ID[:4], h.Score, h.VectorRank, h.BM25Rank)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// outsideChanges makes private documents of outsiders, rewrites and
// deletes others of theirs: words and vectors that would move any ranking
// that counted them.
func outsideChanges(r *rand.Rand, w *world, outsiders []ID, trial int, lsn LSN) Ops {
	ops := Ops{Position: Position{LSN: lsn}}
	for d := range 30 {
		owner := outsiders[r.IntN(len(outsiders))]
		doc := Document{ID: idn('o', trial*100+d), OwnerID: owner}
		ops.Documents = append(ops.Documents, doc)
		for c := range 1 + r.IntN(8) {
			v := make([]float32, dim)
			for j := range v {
				v[j] = float32(r.NormFloat64())
			}
			ops.Upserts = append(ops.Upserts, Chunk{ID: idn('p', (trial*100+d)*10+c), DocumentID: doc.ID, OwnerID: owner,
				Title: "Doc", Text: strings.Repeat(words[r.IntN(len(words))]+" ", 1+r.IntN(5)) + canary(r.IntN(80)), Version: 1, Vector: v})
		}
	}
	for _, d := range w.docs {
		if !d.IsPublic && slices.Contains(outsiders, d.OwnerID) && r.IntN(4) == 0 {
			ops.DeleteDocs = append(ops.DeleteDocs, d.ID)
		}
	}
	return ops
}

// WaitApplied wakes when the applier reaches the position, and when a
// restore swaps in an engine that holds it; it gives up with its context.
func TestWaitApplied(t *testing.T) {
	e, err := New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	live := NewLive(e)
	ctx := context.Background()
	got := make(chan *Engine, 1)
	go func() {
		w, err := live.WaitApplied(ctx, 5)
		if err != nil {
			t.Error(err)
		}
		got <- w
	}()
	for lsn := LSN(1); lsn <= 4; lsn++ {
		e.Apply(Ops{Position: Position{LSN: lsn}})
	}
	select {
	case <-got:
		t.Fatal("woke before the position was applied")
	case <-time.After(50 * time.Millisecond):
	}
	e.Apply(Ops{Position: Position{LSN: 5}})
	if w := <-got; w != e {
		t.Fatal("woke with another engine")
	}
	// A restore: the waiter on the old engine moves to the new one.
	go func() {
		w, _ := live.WaitApplied(ctx, 9)
		got <- w
	}()
	fresh, _ := New(cfg())
	fresh.Apply(Ops{Position: Position{LSN: 9}})
	time.Sleep(20 * time.Millisecond)
	live.Swap(fresh)
	if w := <-got; w != fresh {
		t.Fatal("a swap did not wake the waiter with the new engine")
	}
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := live.WaitApplied(short, 100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting past the deadline: %v", err)
	}
}

// A chunk's language reaches the BM25 index: a German chunk is found by an
// inflected German query, scoped as any chunk, and after a snapshot round
// trip.
func TestChunkLanguageReachesBM25(t *testing.T) {
	e, err := New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	owner, other := idn('u', 1), idn('u', 2)
	vec := func(x float32) []float32 { v := make([]float32, dim); v[0], v[1] = 1, x; return v }
	doc := Document{ID: idn('d', 1), OwnerID: owner, Title: "Übungen"}
	ops := Ops{Documents: []Document{doc}, Position: Position{LSN: 1}, Upserts: []Chunk{
		{ID: idn('c', 1), DocumentID: doc.ID, OwnerID: owner, Text: "Die Tonleiter in C-Dur langsam üben.", Version: 1, Vector: vec(0), Language: "de"},
		{ID: idn('c', 2), DocumentID: doc.ID, OwnerID: owner, Text: "Die Tonleiter in C-Dur langsam üben.", Version: 1, Vector: vec(1)},
	}}
	if err := e.Apply(ops); err != nil {
		t.Fatal(err)
	}
	search := func(e *Engine, who ID) []ID {
		hits, err := e.Search(Query{Text: "Tonleitern", K: 10, Mode: ModeBM25, Scope: Scope{User: who}})
		if err != nil {
			t.Fatal(err)
		}
		var out []ID
		for _, h := range hits {
			out = append(out, h.Chunk.ID)
		}
		return out
	}
	// The same text without a language is English: its "tonleiter" is
	// not the German stem of the query.
	if got := search(e, owner); !slices.Equal(got, []ID{idn('c', 1)}) {
		t.Fatalf("owner's hits %x, want the German chunk alone", got)
	}
	if got := search(e, other); len(got) != 0 {
		t.Fatalf("another user sees %x", got)
	}
	var buf bytes.Buffer
	if err := e.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	e2, err := ReadSnapshot(cfg(), bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got := search(e2, owner); !slices.Equal(got, []ID{idn('c', 1)}) {
		t.Fatalf("after restore %x", got)
	}
}

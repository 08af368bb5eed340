package index

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// annWorld is the oracle of the annotation property test: projects with
// owners and grantees, and annotation chunks, kept beside the engine.
type annWorld struct {
	t        *testing.T
	r        *rand.Rand
	e        *Engine
	users    []ID
	owner    map[ID]ID          // project → owner
	grantees map[ID]map[ID]bool // project → users
	notes    map[ID]Chunk       // live annotation chunks
	lsn      LSN
	next     int
}

func annCanary(i int) string { return fmt.Sprintf("annot%05d", i) }

func newAnnWorld(t *testing.T, seed uint64, nUsers, nProjects int) *annWorld {
	e, err := New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	w := &annWorld{t: t, r: rand.New(rand.NewPCG(seed, seed)), e: e, owner: map[ID]ID{}, grantees: map[ID]map[ID]bool{}, notes: map[ID]Chunk{}}
	for i := range nUsers {
		w.users = append(w.users, idn('u', i))
	}
	var ops Ops
	for p := range nProjects {
		id := idn('p', p)
		w.owner[id] = w.users[w.r.IntN(nUsers)]
		w.grantees[id] = map[ID]bool{}
		ops.Projects = append(ops.Projects, Project{ID: id, OwnerID: w.owner[id], Title: "Nocturne"})
	}
	w.apply(ops)
	return w
}

func (w *annWorld) apply(ops Ops) {
	w.t.Helper()
	w.lsn++
	ops.Position = Position{LSN: w.lsn}
	if err := w.e.Apply(ops); err != nil {
		w.t.Fatal(err)
	}
}

func (w *annWorld) randomProject() ID {
	ids := make([]ID, 0, len(w.owner))
	for id := range w.owner {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	return ids[w.r.IntN(len(ids))]
}

func (w *annWorld) vector() []float32 {
	v := make([]float32, dim)
	for j := range v {
		v[j] = float32(w.r.NormFloat64())
	}
	return v
}

// step makes one random change: a grant, a revoke, a new note, an edit
// (new text, same canary), a delete, or a project deleted and made anew.
func (w *annWorld) step() {
	p := w.randomProject()
	u := w.users[w.r.IntN(len(w.users))]
	switch n := w.r.IntN(10); {
	case n < 3:
		w.grantees[p][u] = true
		w.apply(Ops{Grants: []Grant{{ProjectID: p, UserID: u}}})
	case n < 5:
		w.revokeSome(p)
	case n < 8:
		w.next++
		c := Chunk{ID: idn('a', w.next), Kind: KindAnnotation, ProjectID: p, AuthorID: u, PageStart: 1 + w.r.IntN(9),
			Version: 1, Text: annCanary(w.next) + " " + words[w.r.IntN(len(words))], Vector: w.vector()}
		w.notes[c.ID] = c
		w.apply(Ops{Upserts: []Chunk{c}})
	case n < 9:
		w.editOrDelete()
	default:
		w.deleteProject(p)
	}
}

func (w *annWorld) revokeSome(p ID) {
	for u := range w.grantees[p] {
		delete(w.grantees[p], u)
		w.apply(Ops{Revokes: []Grant{{ProjectID: p, UserID: u}}})
		return
	}
}

func (w *annWorld) editOrDelete() {
	for id, c := range w.notes {
		if w.r.IntN(2) == 0 {
			delete(w.notes, id)
			w.apply(Ops{Deletes: []ID{id}})
			return
		}
		c.Version++
		c.Text = c.Text[:len(annCanary(0))] + " " + words[w.r.IntN(len(words))]
		c.Vector = w.vector()
		w.notes[id] = c
		w.apply(Ops{Upserts: []Chunk{c}})
		return
	}
}

// deleteProject deletes a project (its notes and grants go with it, as
// PostgreSQL's cascade sends them) and makes it anew with another owner.
func (w *annWorld) deleteProject(p ID) {
	var ops Ops
	for id, c := range w.notes {
		if c.ProjectID == p {
			delete(w.notes, id)
			ops.Deletes = append(ops.Deletes, id)
		}
	}
	for u := range w.grantees[p] {
		ops.Revokes = append(ops.Revokes, Grant{ProjectID: p, UserID: u})
	}
	ops.DeleteProjects = []ID{p}
	w.apply(ops)
	w.grantees[p] = map[ID]bool{}
	w.owner[p] = w.users[w.r.IntN(len(w.users))]
	w.apply(Ops{Projects: []Project{{ID: p, OwnerID: w.owner[p], Title: "Nocturne"}}})
}

// sees is the oracle: the project's owner, its grantees and admins.
func (w *annWorld) sees(s Scope, c *Chunk) bool {
	return s.Admin || w.owner[c.ProjectID] == s.User || w.grantees[c.ProjectID][s.User]
}

// check runs one random search and counts leaks (a hit the oracle denies)
// and misses (a visible note, searched by its canary, not found).
func (w *annWorld) check(i int) (leaks, misses int) {
	u := w.users[w.r.IntN(len(w.users))]
	s := Scope{User: u, Admin: i%40 == 0}
	var target Chunk
	for _, c := range w.notes {
		target = c
		break
	}
	q := Query{K: 10, Mode: []string{ModeHybrid, ModeVector, ModeBM25}[i%3], Scope: s, Text: annCanary(0), Vector: w.vector()}
	if target.ID != (ID{}) {
		q.Text, q.Vector = target.Text[:len(annCanary(0))], target.Vector
	}
	if i%4 == 1 {
		q.Kinds = []Kind{KindAnnotation}
	}
	if i%5 == 2 {
		q.ProjectID = target.ProjectID
	}
	hits, err := w.e.Search(q)
	if err != nil {
		w.t.Fatal(err)
	}
	found := false
	for _, h := range hits {
		if h.Chunk.Kind != KindAnnotation || !w.sees(s, h.Chunk) || (q.ProjectID != (ID{}) && h.Chunk.ProjectID != q.ProjectID) {
			leaks++
		}
		found = found || h.Chunk.ID == target.ID
	}
	if target.ID != (ID{}) && w.sees(s, &target) && !found {
		misses++
	}
	return leaks, misses
}

// Random grants, revocations, note edits and deletes and project deletes
// against an oracle: no search ever returns a note its caller may not
// see, and every note the caller may see is found by its words and its
// vector, through a snapshot round trip too.
func TestAnnotationVisibilityProperty(t *testing.T) {
	w := newAnnWorld(t, 7, 15, 12)
	leaks, misses, searches := 0, 0, 0
	for i := range 3000 {
		w.step()
		if i == 1500 {
			var buf bytes.Buffer
			if err := w.e.WriteSnapshot(&buf); err != nil {
				t.Fatal(err)
			}
			e, err := ReadSnapshot(cfg(), &buf)
			if err != nil {
				t.Fatal(err)
			}
			w.e = e
		}
		l, m := w.check(i)
		leaks, misses, searches = leaks+l, misses+m, searches+1
	}
	t.Logf("%d searches over %d notes: %d leaks, %d misses", searches, len(w.notes), leaks, misses)
	if leaks != 0 || misses != 0 {
		t.Fatalf("%d leaks and %d misses in %d searches", leaks, misses, searches)
	}
}

// A student sees the notes of the projects shared with her and of no
// other, and the BM25 statistics of her scope ignore the others' notes.
func TestAnnotationScopeAndFilters(t *testing.T) {
	e, err := New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	teacher, student, other := idn('u', 1), idn('u', 2), idn('u', 3)
	p1, p2 := idn('p', 1), idn('p', 2)
	v := make([]float32, dim)
	v[0] = 1
	ops := Ops{Position: Position{LSN: 1},
		Documents: []Document{{ID: idn('d', 1), OwnerID: teacher, IsPublic: true, Title: "Method"}},
		Projects:  []Project{{ID: p1, OwnerID: teacher, Title: "Nocturne"}, {ID: p2, OwnerID: other, Title: "Etude"}},
		Grants:    []Grant{{ProjectID: p1, UserID: student}},
		Upserts: []Chunk{
			{ID: idn('c', 1), DocumentID: idn('d', 1), OwnerID: teacher, Text: "pedal in the nocturne", PageStart: 1, PageEnd: 2, Version: 1, Vector: v},
			{ID: idn('a', 1), Kind: KindAnnotation, ProjectID: p1, AuthorID: teacher, Text: "half pedal here", PageStart: 3, Version: 1, Vector: v},
			{ID: idn('a', 2), Kind: KindAnnotation, ProjectID: p2, AuthorID: other, Text: "no pedal at all", PageStart: 1, Version: 1, Vector: v},
		}}
	if err := e.Apply(ops); err != nil {
		t.Fatal(err)
	}
	ids := func(q Query) []ID {
		hits, err := e.Search(q)
		if err != nil {
			t.Fatal(err)
		}
		var out []ID
		for _, h := range hits {
			out = append(out, h.Chunk.ID)
		}
		slices.SortFunc(out, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
		return out
	}
	for _, mode := range []string{ModeHybrid, ModeVector, ModeBM25} {
		q := Query{K: 10, Mode: mode, Text: "pedal", Vector: v, Scope: Scope{User: student}}
		if got := ids(q); !slices.Equal(got, []ID{idn('a', 1), idn('c', 1)}) {
			t.Errorf("%s: student sees %x", mode, got)
		}
		q.Kinds = []Kind{KindAnnotation}
		if got := ids(q); !slices.Equal(got, []ID{idn('a', 1)}) {
			t.Errorf("%s: annotations only: %x", mode, got)
		}
		q.Kinds = []Kind{KindKnowledge}
		if got := ids(q); !slices.Equal(got, []ID{idn('c', 1)}) {
			t.Errorf("%s: knowledge only: %x", mode, got)
		}
		q.Kinds, q.ProjectID = nil, p2
		if got := ids(q); !slices.Equal(got, []ID{idn('c', 1)}) {
			t.Errorf("%s: a project the student may not see: %x", mode, got)
		}
		q.Scope = Scope{Admin: true}
		if got := ids(q); !slices.Equal(got, []ID{idn('a', 2), idn('c', 1)}) {
			t.Errorf("%s: admin in project 2: %x", mode, got)
		}
	}
	hits, _ := e.Search(Query{K: 1, Mode: ModeBM25, Text: "pedal", Scope: Scope{User: student}, Kinds: []Kind{KindAnnotation}})
	if len(hits) != 1 || hits[0].Chunk.Title != "Nocturne" || hits[0].Chunk.PageEnd != 3 || hits[0].Chunk.AuthorID != teacher {
		t.Fatalf("hit %+v", hits)
	}
	// The revoke reaches the next search.
	e.Apply(Ops{Position: Position{LSN: 2}, Revokes: []Grant{{ProjectID: p1, UserID: student}}})
	if got := ids(Query{K: 10, Mode: ModeBM25, Text: "pedal", Scope: Scope{User: student}}); !slices.Equal(got, []ID{idn('c', 1)}) {
		t.Errorf("after the revoke the student sees %x", got)
	}
}

// A version 2 snapshot (written before annotations, testdata) still
// loads: its chunks are knowledge chunks, and the engine takes
// annotations after it.
func TestVersion2SnapshotStillLoads(t *testing.T) {
	f, err := os.Open("testdata/snapshot_v2.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e, err := ReadSnapshot(cfg(), f)
	if err != nil {
		t.Fatal(err)
	}
	hits, err := e.Search(Query{K: 5, Mode: ModeBM25, Text: "pedal", Scope: Scope{User: idn('u', 9)}})
	if err != nil || len(hits) != 1 || hits[0].Chunk.Kind != KindKnowledge || hits[0].Chunk.Title != "Method" || e.Position().LSN != 7 {
		t.Fatalf("v2 snapshot: %+v, %v, at %v", hits, err, e.Position())
	}
	v := make([]float32, dim)
	v[1] = 1
	if err := e.Apply(Ops{Position: Position{LSN: 8}, Projects: []Project{{ID: idn('p', 1), OwnerID: idn('u', 9)}},
		Upserts: []Chunk{{ID: idn('a', 1), Kind: KindAnnotation, ProjectID: idn('p', 1), Text: "pedal", PageStart: 2, Version: 1, Vector: v}}}); err != nil {
		t.Fatal(err)
	}
	if hits, _ := e.Search(Query{K: 5, Mode: ModeBM25, Text: "pedal", Scope: Scope{User: idn('u', 9)}}); len(hits) != 2 {
		t.Fatalf("after a note: %d hits", len(hits))
	}
}

// Package index is the in-memory search engine every node answers searches
// from: an HNSW graph (index/vector) and a BM25 index (index/text) over
// the chunks, fused by a convex combination of normalised scores or by
// Reciprocal Rank Fusion, with the caller's
// visibility scope applied inside the engine. It has no HTTP and no SQL and
// imports nothing else of ours; replication feeds it operations, the API
// asks it questions. See DESIGN.md.
package index

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sostenuto/sostenuto/index/text"
	"github.com/sostenuto/sostenuto/index/vector"
)

// ID is a UUID.
type ID [16]byte

// Kind says what a chunk is a passage of: a knowledge document (the zero
// value) or an annotation on a project's page.
type Kind uint8

// The kinds of chunks.
const (
	KindKnowledge  Kind = 0
	KindAnnotation Kind = 1
)

// Chunk is a searchable passage of a knowledge document, or the text of
// an annotation (Kind KindAnnotation: ID is the annotation's, ProjectID and
// AuthorID are set, DocumentID and OwnerID are zero, PageStart = PageEnd =
// the annotation's page, Title the project's).
type Chunk struct {
	ID         ID
	Kind       Kind
	DocumentID ID
	OwnerID    ID
	ProjectID  ID
	AuthorID   ID
	Title      string // the document's (the project's)
	Text       string
	PageStart  int
	PageEnd    int
	Version    int64
	Vector     []float32
	// Language is the document's (ISO 639-1; "" is English), the one its
	// text is analysed in for BM25. Like Vector, it is what an upsert
	// carries: the BM25 index holds it (in its term keys), the engine's
	// chunk map does not.
	Language string
	// Neighbours are candidate neighbours a leader computed for the new
	// vector (replication/DESIGN.md, "Candidates"): the graph links the
	// vector among them instead of searching for its own. Only a hint for
	// the graph: nothing keeps it.
	Neighbours []ID
}

// Document is the visibility of a document: its owner and whether it is
// public. Private documents are visible to their owner, admins and the
// owner's students.
type Document struct {
	ID       ID
	OwnerID  ID
	IsPublic bool
	Title    string
}

// Scope is who is asking: the engine returns only chunks of documents the
// caller may see.
type Scope struct {
	User ID
	// Admin sees everything.
	Admin bool
	// Teachers lists the teachers whose private documents the caller sees
	// (the caller is their student).
	Teachers []ID
}

// Modes of search.
const (
	ModeHybrid = "hybrid"
	ModeVector = "vector"
	ModeBM25   = "bm25"
)

// Query is a search.
type Query struct {
	Text   string
	Vector []float32 // the embedding of Text; needed for hybrid and vector
	K      int
	Mode   string
	Scope  Scope
	// Fusion is how hybrid fuses its lists (zero: convex, min-max,
	// balanced weights).
	Fusion Fusion
	// Ef is the HNSW search breadth (the graph's default when zero).
	Ef int
	// Kinds limits the hits to these kinds (nil: every kind).
	Kinds []Kind
	// ProjectID, when not zero, limits annotation hits to one project
	// (knowledge hits are not limited by it).
	ProjectID ID
	// Timings, when set, receives how long each part of the search took.
	Timings *Timings
	// Model, when set, is the model that embedded Vector: a search with
	// another than the engine's active model is refused (ErrModel); an
	// engine whose models are not named yet accepts any.
	Model string
	// Served, when set, receives the model and the position the search
	// was answered at, read under the same lock as the search.
	Served *Served
}

// Served is the state a search was answered from: the active embedding
// model and the applied position.
type Served struct {
	Model    string
	Position Position
}

// Timings splits a search's time: the vector list, the BM25 list, fusion,
// each with when it started (a hybrid search's two lists run at once).
type Timings struct {
	Vector, Text, Fuse                time.Duration
	VectorStart, TextStart, FuseStart time.Time
}

// Hit is a result. Ranks are 1-based; 0 means the list did not hold it.
type Hit struct {
	Chunk      *Chunk
	Score      float64
	VectorRank int
	BM25Rank   int
}

// Config shapes the engine.
type Config struct {
	Vector vector.Config
	// ExactBelow: when the caller may see at most this many chunks, they
	// are scanned exactly instead of searched in the graph.
	ExactBelow int
}

// DefaultConfig suits 768-dimensional embeddings.
func DefaultConfig() Config {
	return Config{Vector: vector.DefaultConfig(768), ExactBelow: 2000}
}

// Engine holds the chunks and their indexes. Writes (Apply) are
// serialized by wmu; searches run concurrently with each other and with
// writes. mu guards the chunk and document maps: a search holds it shared
// for its whole length (scope checks inside the indexes read the maps), a
// write holds it exclusively only while it changes the maps, and updates
// the graph and the BM25 index (each with its own lock) outside it.
type Engine struct {
	cfg    Config
	vec    *vector.Index
	text   *text.Index
	mu     sync.RWMutex // chunks, docs, owners, projects, principals
	chunks map[ID]*Chunk
	docs   map[ID]*docState
	owners map[ID]map[ID]bool // owner → documents
	public int                // chunks of public documents
	// projects are the visibility units of annotation chunks; principals
	// maps each user to the projects they own or hold a grant on (the
	// inverted map a scope is computed from, projects.go).
	projects   map[ID]*projState
	principals map[ID]map[ID]bool
	// scopes holds, per user, the position of the last change to their
	// teachers (scopes.go).
	scopes map[ID]LSN
	// scopesAll is the position of the last change to every user's
	// teachers (EveryScope).
	scopesAll LSN
	// groups numbers each owner's private documents for the BM25 index's
	// scoped statistics; public documents are group 0, and each project
	// has its own (projState.group). nextGroup is the last number given.
	groups    map[ID]text.Group
	nextGroup text.Group
	wmu       sync.Mutex // one writer at a time
	pos       Position
	// dataPos is the position of the last batch that changed anything
	// (keepalives move pos, not dataPos): caches key on it.
	dataPos Position
	// dataVersion counts the batches that changed anything (repairs carry
	// no position).
	dataVersion uint64
	// compacting, when set, logs the graph writes made while a Compactor
	// builds a compacted graph (guarded by wmu).
	compacting *[]graphOp
	// moved is closed when the position next moves or the engine closes
	// (guarded by mu): WaitApplied's waiters sleep on it.
	moved  chan struct{}
	closed bool
	// compactWanted is signalled, never blocking, when the graph's
	// tombstones pass the compaction threshold (compactor.go).
	compactWanted     chan struct{}
	compactWantedOnce sync.Once
	// model names the embedding models held (models.go); build is the
	// graph of the model being built beside the active one (nil: none).
	// Both are guarded by mu, changed under wmu.
	model ModelState
	build *vector.Index
}

// graphOp is a write to replay onto a graph built in the background.
type graphOp struct {
	id    vector.ID
	vec   []float32   // nil: delete
	cands []vector.ID // candidate neighbours shipped with the vector, if any
}

type docState struct {
	Document
	chunks map[ID]bool
}

// Position is how far the engine has applied the changefeed.
type Position struct {
	LSN LSN
}

// New returns an empty engine.
func New(cfg Config) (*Engine, error) {
	v, err := vector.New(cfg.Vector)
	if err != nil {
		return nil, err
	}
	t, err := text.New()
	if err != nil {
		return nil, err
	}
	return &Engine{cfg: cfg, vec: v, text: t, chunks: map[ID]*Chunk{}, docs: map[ID]*docState{},
		owners: map[ID]map[ID]bool{}, groups: map[ID]text.Group{}, projects: map[ID]*projState{},
		principals: map[ID]map[ID]bool{}, scopes: map[ID]LSN{}, moved: make(chan struct{})}, nil
}

// Close releases the engine (nothing is held outside the Go heap) and
// wakes whoever waits on its position (a restore replaced it).
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		close(e.moved)
	}
	return nil
}

// watch returns the applied position and a channel closed when it next
// moves or the engine closes.
func (e *Engine) watch() (Position, <-chan struct{}) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.pos, e.moved
}

// Len is the number of chunks.
func (e *Engine) Len() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.chunks)
}

// DataVersion names the engine's content: it changes whenever a batch
// changes anything (a document, a chunk), and not on keepalives. Caches of
// search results key on it.
func (e *Engine) DataVersion() string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return fmt.Sprintf("%X.%d", e.dataPos.LSN, e.dataVersion)
}

// Position returns the applied position.
func (e *Engine) Position() Position {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.pos
}

// Ops is a batch of operations applied together, in order: document
// visibility, projects and grants first, then chunk upserts, then chunk
// deletes, document deletes, revoked grants and project deletes.
type Ops struct {
	Documents  []Document
	Upserts    []Chunk
	Deletes    []ID // chunk ids (of either kind)
	DeleteDocs []ID // documents whose chunks all go
	// Projects are projects' owners and titles; Grants add a user to a
	// project's principals, Revokes take one away; DeleteProjects go with
	// their annotation chunks and principals.
	Projects       []Project
	Grants         []Grant
	Revokes        []Grant
	DeleteProjects []ID
	// ScopeChanges are users whose teachers changed (a relationship made
	// or removed): the engine notes the position (scopes.go).
	ScopeChanges []ID
	Position     Position
	// Model, when set, is the new state of the embedding models, applied
	// before anything else of the batch (a batch carrying one starts a
	// run of its own in ApplyBatch).
	Model *ModelState
	// Embeddings are vectors by model (and deletes: nil vectors), applied
	// after the chunks.
	Embeddings []Embedding
}

// ErrDimension marks a chunk vector of the wrong length.
var ErrDimension = vector.ErrDimension

// Apply applies a batch idempotently: upserting a chunk twice or deleting
// a missing one changes nothing more. A batch at or before the applied
// position is skipped. The maps change first (under mu), then the graph
// and the BM25 index, and the position moves last. ApplyBatch (batch.go)
// applies a run of batches under one writer lock.
func (e *Engine) Apply(ops Ops) error {
	return e.ApplyBatch([]Ops{ops})[0]
}

// checkDims refuses a batch holding a vector of the wrong length.
func (e *Engine) checkDims(upserts []Chunk) error {
	g := e.vec // wmu is held: only the writer replaces it
	if !e.columnToActive() {
		if g = nil; e.columnToBuild() {
			g = e.build
		}
	}
	for _, c := range upserts {
		if g != nil && c.Vector != nil && len(c.Vector) != g.Config().Dim {
			return fmt.Errorf("index: chunk %x: %w", c.ID, ErrDimension)
		}
	}
	return nil
}

// applyMaps applies a batch to the chunk and document maps, in order:
// documents, upserts, deletes, and adds the index writes to make to w; mu
// is held.
func (e *Engine) applyMaps(ops Ops, w *indexWrites) {
	for _, d := range ops.Documents {
		e.setDocument(d, w)
	}
	e.applyPrincipals(ops)
	// The chunks of deleted documents and projects are listed before the
	// upserts: a chunk upserted in the same batch stays.
	deletes := e.chunksToDelete(ops)
	for i := range ops.Upserts {
		e.upsertChunk(ops.Upserts[i], w)
	}
	for _, id := range deletes {
		e.deleteChunk(id, w)
	}
	e.applyEmbeddings(ops.Embeddings, w)
	for _, d := range ops.DeleteDocs {
		if st, ok := e.docs[d]; ok {
			delete(e.docs, d)
			delete(e.owners[st.OwnerID], d)
		}
	}
	e.removePrincipals(ops)
	e.noteScopes(ops)
}

// chunksToDelete lists the batch's chunk deletes and the chunks of its
// deleted documents; mu is held.
func (e *Engine) chunksToDelete(ops Ops) []ID {
	var deletes []ID
	deletes = append(deletes, ops.Deletes...)
	for _, d := range ops.DeleteDocs {
		if st, ok := e.docs[d]; ok {
			for c := range st.chunks {
				deletes = append(deletes, c)
			}
		}
	}
	for _, p := range ops.DeleteProjects {
		if st, ok := e.projects[p]; ok {
			for c := range st.chunks {
				deletes = append(deletes, c)
			}
		}
	}
	return deletes
}

// upsertChunk puts c in the maps and records its index writes; mu is
// held. A chunk already at its version is skipped.
func (e *Engine) upsertChunk(c Chunk, w *indexWrites) {
	old, had := e.chunks[c.ID]
	if had && old.Version == c.Version && c.Version != 0 {
		return // already applied
	}
	vec := c.Vector
	toActive := e.columnToActive()
	if toActive && vec == nil {
		// An update that left the embedding alone (PostgreSQL does
		// not resend an unchanged TOASTed value): keep the stored one.
		// Without one there is nothing to keep; anti-entropy repairs.
		v, ok := e.heldVector(c.ID, w)
		if !ok {
			return
		}
		vec = v
	}
	cc := c
	cc.Vector = nil  // the graph holds the vector; the map does not
	cc.Language = "" // the BM25 index holds it
	cc.Neighbours = nil
	if had && old.Kind != c.Kind {
		e.unlinkChunk(old) // an id reused across kinds: start afresh
		had = false
	}
	if c.Kind == KindAnnotation {
		g := e.linkAnnotation(&cc, old, had)
		e.writeChunk(w, c, vec, toActive, textDoc(cc.Title, c, g))
		return
	}
	st := e.doc(c.DocumentID, c.OwnerID)
	if !had && st.IsPublic {
		e.public++
	}
	if cc.Title == "" {
		cc.Title = st.Title
	}
	e.chunks[c.ID] = &cc
	st.chunks[c.ID] = true
	e.writeChunk(w, c, vec, toActive, textDoc(c.Title, c, e.group(st)))
}

// writeChunk records an upserted chunk's index writes: its text, and its
// vector into the graph of the model chunk vectors carry (the active one,
// or the one being built; none when the column holds another model's).
func (e *Engine) writeChunk(w *indexWrites, c Chunk, vec []float32, toActive bool, doc text.Doc) {
	id := c.ID
	switch {
	case toActive:
		w.upsert(id, vec, doc)
		w.hint(id, vec, c)
		return
	case vec != nil && e.columnToBuild():
		w.build = append(w.build, graphOp{id: vector.ID(id), vec: vec})
	}
	w.texts[text.ID(id)] = doc
}

// textDoc is what the BM25 index holds of chunk c: the title and its text,
// in its group and language.
func textDoc(title string, c Chunk, g text.Group) text.Doc {
	return text.Doc{Text: title + "\n" + c.Text, Group: g, Language: c.Language}
}

// deleteChunk removes a chunk from the maps and records its index
// deletes; mu is held. A missing chunk changes nothing.
func (e *Engine) deleteChunk(id ID, w *indexWrites) {
	c, ok := e.chunks[id]
	if !ok {
		return
	}
	e.unlinkChunk(c)
	w.remove(id)
}

// unlinkChunk takes c out of the chunk map and of its document's or
// project's set; mu is held.
func (e *Engine) unlinkChunk(c *Chunk) {
	delete(e.chunks, c.ID)
	if c.Kind == KindAnnotation {
		if st, ok := e.projects[c.ProjectID]; ok {
			delete(st.chunks, c.ID)
		}
		return
	}
	if st, ok := e.docs[c.DocumentID]; ok {
		delete(st.chunks, c.ID)
		if st.IsPublic {
			e.public--
		}
	}
}

// logGraphOp records a graph write for the compaction running, if any
// (wmu is held).
func (e *Engine) logGraphOp(op graphOp) {
	if e.compacting != nil {
		*e.compacting = append(*e.compacting, op)
	}
}

// graph returns the current HNSW graph.
func (e *Engine) graph() *vector.Index {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.vec
}

// doc returns a document's state, creating it (private) if unknown; the
// write lock is held.
func (e *Engine) doc(id, owner ID) *docState {
	st, ok := e.docs[id]
	if !ok {
		st = &docState{Document: Document{ID: id, OwnerID: owner}, chunks: map[ID]bool{}}
		e.docs[id] = st
		if e.owners[owner] == nil {
			e.owners[owner] = map[ID]bool{}
		}
		e.owners[owner][id] = true
	}
	return st
}

// setDocument sets a document's visibility and title; mu is held. w, when
// set, holds index writes not made yet, whose groups follow the document.
func (e *Engine) setDocument(d Document, w *indexWrites) {
	st := e.doc(d.ID, d.OwnerID)
	if st.IsPublic != d.IsPublic {
		if d.IsPublic {
			e.public += len(st.chunks)
		} else {
			e.public -= len(st.chunks)
		}
		st.IsPublic = d.IsPublic
		// The BM25 statistics move with the document, under the same lock
		// as its visibility: no search sees one without the other.
		ids := make([]text.ID, 0, len(st.chunks))
		for c := range st.chunks {
			ids = append(ids, text.ID(c))
		}
		e.text.Regroup(ids, e.group(st))
		w.regroup(ids, e.group(st))
	}
	if d.Title != "" && d.Title != st.Title {
		st.Title = d.Title
		for c := range st.chunks { // chunks show their document's title
			if ch, ok := e.chunks[c]; ok {
				nc := *ch
				nc.Title = d.Title
				e.chunks[c] = &nc
			}
		}
	}
}

// group is the BM25 statistics group of a document: 0 when public, its
// owner's otherwise. The write lock is held.
func (e *Engine) group(st *docState) text.Group {
	if st.IsPublic {
		return 0
	}
	g, ok := e.groups[st.OwnerID]
	if !ok {
		e.nextGroup++
		g = e.nextGroup
		e.groups[st.OwnerID] = g
	}
	return g
}

// countPublic counts the chunks of public documents (what e.public keeps).
func (e *Engine) countPublic() int {
	n := 0
	for _, st := range e.docs {
		if st.IsPublic {
			n += len(st.chunks)
		}
	}
	return n
}

// ErrBadQuery marks a query the engine cannot answer.
var ErrBadQuery = errors.New("index: bad query")

// Search answers q with at most q.K hits the scope may see. A hybrid
// search runs its two lists at once, the BM25 list on a goroutine of its
// own, both under the one read lock the call holds (the scope checks
// inside both indexes read the chunk and document maps without locking
// again); fusion waits for both.
func (e *Engine) Search(q Query) ([]Hit, error) {
	q, err := checkQuery(q)
	if err != nil {
		return nil, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if q.Served != nil {
		*q.Served = Served{Model: e.model.Active, Position: e.pos}
	}
	vecHits, textHits, err := e.searchLists(q)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	hits := e.fuse(q, vecHits, textHits)
	if q.Timings != nil {
		q.Timings.FuseStart, q.Timings.Fuse = start, time.Since(start)
	}
	return hits, nil
}

// searchLists takes the lists q's mode asks for, each max(K, 50) deep in
// a hybrid search (K otherwise); in a hybrid one the BM25 list is taken
// on another goroutine while this one takes the vector list. The read
// lock is held.
func (e *Engine) searchLists(q Query) (vecHits []vector.Result, textHits []text.Hit, err error) {
	depth := q.K
	if q.Mode == ModeHybrid {
		depth = max(q.K, 50) // how deep each list goes before fusion
	}
	if q.Mode == ModeBM25 {
		textHits, err = e.timedText(q, depth)
		return nil, textHits, err
	}
	if err := e.checkVectorQuery(q); err != nil {
		return nil, nil, err
	}
	if q.Mode == ModeVector {
		vecHits, err = e.timedVector(q, depth)
		return vecHits, nil, err
	}
	var textErr error
	var textPanic any
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { textPanic = recover() }()
		textHits, textErr = e.timedText(q, depth)
	}()
	vecHits, err = e.timedVector(q, depth)
	<-done // the BM25 list reads the maps under this call's read lock: wait for it before returning
	if textPanic != nil {
		panic(textPanic) // on the caller's goroutine, as before, where the server's recoverer sees it
	}
	if err == nil {
		err = textErr
	}
	return vecHits, textHits, err
}

// checkVectorQuery refuses a vector or hybrid query without a vector, or
// one embedded by another model than the active one. The read lock is
// held.
func (e *Engine) checkVectorQuery(q Query) error {
	if q.Vector == nil {
		return fmt.Errorf("%w: %s search needs a vector", ErrBadQuery, q.Mode)
	}
	if q.Model != "" && e.model.Active != "" && q.Model != e.model.Active {
		return fmt.Errorf("%w: the query was embedded by %s, the index searches %s", ErrModel, q.Model, e.model.Active)
	}
	return nil
}

// timedVector is searchVector, timed into q.Timings. The read lock is
// held.
func (e *Engine) timedVector(q Query, depth int) ([]vector.Result, error) {
	start := time.Now()
	hits, err := e.searchVector(q, depth)
	if q.Timings != nil {
		q.Timings.VectorStart, q.Timings.Vector = start, time.Since(start)
	}
	return hits, err
}

// timedText is searchText, timed into q.Timings. The read lock is held.
func (e *Engine) timedText(q Query, depth int) ([]text.Hit, error) {
	start := time.Now()
	hits, err := e.searchText(q, depth)
	if q.Timings != nil {
		q.Timings.TextStart, q.Timings.Text = start, time.Since(start)
	}
	return hits, err
}

// checkQuery refuses a query the engine cannot answer and sets its
// default mode.
func checkQuery(q Query) (Query, error) {
	if q.K <= 0 {
		return q, fmt.Errorf("%w: k must be positive", ErrBadQuery)
	}
	if q.Mode == "" {
		q.Mode = ModeHybrid
	}
	switch q.Mode {
	case ModeHybrid, ModeVector, ModeBM25:
	default:
		return q, fmt.Errorf("%w: mode %q", ErrBadQuery, q.Mode)
	}
	if q.Mode == ModeHybrid {
		return q, q.Fusion.Validate()
	}
	return q, nil
}

// searchVector: the read lock is held.
func (e *Engine) searchVector(q Query, n int) ([]vector.Result, error) {
	ids, small := e.allowedChunks(q, e.cfg.ExactBelow)
	vec := e.vec
	if small {
		return vec.Exact(q.Vector, ids, n)
	}
	filter := func(id vector.ID) bool {
		c, ok := e.chunks[ID(id)]
		return ok && e.admits(&q, c)
	}
	if q.Scope.Admin && !q.filtered() {
		// Every chunk the maps hold: the graph may hold chunks of a batch
		// being applied, not yet in the maps (ApplyBatch's pre-index).
		filter = func(id vector.ID) bool { _, ok := e.chunks[ID(id)]; return ok }
	}
	return vec.Search(q.Vector, n, q.Ef, filter)
}

// searchText takes the top n BM25 hits the scope may see, scored with the
// statistics of what the scope may see; the scope (its groups) is checked
// inside the index's top-n selection, so no widening is needed. The read
// lock is held.
func (e *Engine) searchText(q Query, n int) ([]text.Hit, error) {
	// The groups are the scope: public documents and the private ones of
	// the caller and their teachers, moved between groups under the same
	// lock as their visibility. fuse re-checks every hit with allowed.
	// Keep: only chunks the maps hold (the BM25 index may hold chunks of a
	// batch being applied, not yet in the maps: ApplyBatch's pre-index).
	keep := func(id text.ID) bool { _, ok := e.chunks[ID(id)]; return ok }
	return e.text.Search(q.Text, n, text.Scope{Groups: e.scopeGroups(q), Keep: keep})
}

// fuse merges the lists by q.Fusion (in a single-list mode, keeps that
// list's order and scores: cosine similarity or BM25) and drops what the
// scope may not see (a chunk deleted or hidden meanwhile). The read lock
// is held.
func (e *Engine) fuse(q Query, vecHits []vector.Result, textHits []text.Hit) []Hit {
	vl := make([]Scored, len(vecHits))
	for i, r := range vecHits {
		vl[i] = Scored{ID: ID(r.ID), Score: float64(r.Score)}
	}
	tl := make([]Scored, len(textHits))
	for i, r := range textHits {
		tl[i] = Scored{ID: ID(r.ID), Score: r.Score}
	}
	fused := FuseMode(q.Mode, q.Fusion, vl, tl)
	out := make([]Hit, 0, q.K)
	for _, f := range fused {
		c, ok := e.chunks[f.ID]
		if !ok || !e.admits(&q, c) {
			continue
		}
		out = append(out, Hit{Chunk: c, Score: f.Score, VectorRank: f.Ranks[0], BM25Rank: f.Ranks[1]})
		if len(out) == q.K {
			break
		}
	}
	return out
}

// FuseMode fuses a search's lists as its mode says: in ModeHybrid by f;
// in a single-list mode, that list in its own order with its own scores
// (cosine similarity, BM25).
func FuseMode(mode string, f Fusion, vec, bm25 []Scored) []Fused {
	switch mode {
	case ModeVector:
		return single(vec, 0)
	case ModeBM25:
		return single(bm25, 1)
	}
	return f.Fuse(vec, bm25)
}

// single is one list as fused hits in its own order and scores, ranked
// in slot li of two.
func single(list []Scored, li int) []Fused {
	out := make([]Fused, len(list))
	for i, s := range list {
		out[i] = Fused{ID: s.ID, Score: s.Score, Ranks: make([]int, 2)}
		out[i].Ranks[li] = i + 1
	}
	return out
}

// ChunkVersions lists every chunk with its version (anti-entropy and
// cluster checks compare it with PostgreSQL's).
func (e *Engine) ChunkVersions() map[ID]int64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make(map[ID]int64, len(e.chunks))
	for id, c := range e.chunks {
		out[id] = c.Version
	}
	return out
}

// Len is how many operations the batch holds (its position aside).
func (o Ops) Len() int {
	return len(o.Documents) + len(o.Upserts) + len(o.Deletes) + len(o.DeleteDocs) +
		len(o.Projects) + len(o.Grants) + len(o.Revokes) + len(o.DeleteProjects) + len(o.Embeddings) + len(o.ScopeChanges)
}

// Package text is the BM25 side of the engine: Bleve v2's analysis, in
// each document's language (English: Unicode word segmentation,
// possessives, lower case, stop words, Porter stemming; German, French,
// Spanish, Italian, Dutch and Portuguese likewise with their own stop words
// and stemmers; language.go), feeding an in-memory inverted index of our own, scored with
// Okapi BM25 (k1 1.2, b 0.75, the idf Bleve and Lucene use).
//
// Why our own postings and not a Bleve index: measured at 100k chunks of
// CISI text, a Bleve v2.6 scorch index answers a 3-word query in 4.2 ms and
// a paragraph in 72 ms, because its disjunction scores every posting through
// a heap of iterators with per-hit allocations; restoring it from a snapshot
// means re-analysing every text (≈ 20 s). The index here scores term at a
// time into a flat accumulator (a few nanoseconds a posting), applies the
// caller's access filter only to documents that could enter the top n, and
// writes and reads its postings as flat arrays, so a snapshot restores
// without analysis. bench/RESULTS.md keeps the Bleve index as a row.
//
// Collection statistics are scoped: every document belongs to a Group (the
// engine uses one for public documents and one per owner's private ones),
// each group keeps its own document count, token count and document
// frequencies, and a search sums them over the groups its caller may see.
// So a score never depends on a document the caller cannot see: adding,
// changing or deleting a document outside the caller's groups changes no
// score and no order the caller gets.
//
// Locking: one RWMutex. Searches share it; a batch analyses its texts
// outside the lock and holds it exclusively only to append postings.
package text

import (
	"bytes"
	"container/heap"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/blevesearch/bleve/v2/analysis"
)

// ID identifies a document of the index (a chunk's UUID).
type ID [16]byte

// Hit is a scored match.
type Hit struct {
	ID    ID
	Score float64
}

// BM25 parameters.
const (
	K1 = 1.2
	B  = 0.75
)

// Group is a set of documents whose collection statistics are kept
// together; a search names the groups it may see (see Scope).
type Group uint32

// Doc is a document to index: its text, its group and its language (ISO
// 639-1; "" or one without an analyzer here is English).
type Doc struct {
	Text     string
	Group    Group
	Language string
}

// Scope limits a search to what a caller may see. Groups lists the groups
// of every document the caller may see (nil: every group, the whole
// index): only their documents are returned, and statistics are summed
// over them. Keep, when set, must also admit a document (a further
// filter, checked only for documents that would enter the top n).
type Scope struct {
	Groups []Group
	Keep   func(ID) bool
}

// groupStats are one group's collection statistics over live documents.
type groupStats struct {
	live   int
	length uint64            // tokens
	df     map[uint32]uint32 // term id → documents holding it
}

type posting struct {
	doc uint32 // document number, ascending within a list
	tf  uint32
}

// Index is an in-memory BM25 index. The zero value is not usable; call New.
type Index struct {
	ans map[string]analysis.Analyzer // by language

	mu       sync.RWMutex
	langs    []string // languages of the term keys held, English first
	termIDs  map[string]uint32
	terms    []string
	postings [][]posting // by term id
	df       []uint32    // live documents per term
	ids      []ID        // by document number
	lens     []uint32    // tokens per document
	dead     []bool      // by document number
	docTerms [][]uint32  // each document's distinct terms, to keep df on delete
	byID     map[ID]uint32
	live     int
	liveLen  uint64  // tokens over live documents
	group    []Group // by document number
	groups   map[Group]*groupStats
	accs     sync.Pool
}

// New returns an empty index.
func New() (*Index, error) {
	ans, err := analyzers()
	if err != nil {
		return nil, err
	}
	return &Index{ans: ans, termIDs: map[string]uint32{}, byID: map[ID]uint32{}, groups: map[Group]*groupStats{}}, nil
}

// analyzed is a text reduced to its term keys (key) and their
// frequencies.
type analyzed struct {
	terms []string
	tfs   []uint32
	n     uint32 // tokens
}

// analyze analyses s in lang (a supported one).
func (x *Index) analyze(s, lang string) analyzed {
	toks := x.ans[lang].Analyze([]byte(s))
	counts := make(map[string]uint32, len(toks))
	for _, t := range toks {
		counts[key(lang, string(t.Term))]++
	}
	a := analyzed{n: uint32(len(toks)), terms: make([]string, 0, len(counts)), tfs: make([]uint32, 0, len(counts))}
	for t := range counts {
		a.terms = append(a.terms, t)
	}
	slices.Sort(a.terms) // the same order everywhere: term ids match across replicas
	for _, t := range a.terms {
		a.tfs = append(a.tfs, counts[t])
	}
	return a
}

// analyzeAll analyses texts in parallel when there are many.
func (x *Index) analyzeAll(texts, langs []string) []analyzed {
	out := make([]analyzed, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts)/256+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(texts); i += workers {
				out[i] = x.analyze(texts[i], langs[i])
			}
		}()
	}
	wg.Wait()
	return out
}

// Batch applies upserts (a document replaces its earlier version, group
// included) and deletes. Documents are numbered in id order within the
// batch, so every replica applying the same batches builds the same index.
func (x *Index) Batch(upserts map[ID]Doc, deletes []ID) error {
	ids := make([]ID, 0, len(upserts))
	for id := range upserts {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	texts, langs := make([]string, len(ids)), make([]string, len(ids))
	for i, id := range ids {
		texts[i], langs[i] = upserts[id].Text, normLang(upserts[id].Language)
	}
	docs := x.analyzeAll(texts, langs)

	x.mu.Lock()
	defer x.mu.Unlock()
	for _, id := range deletes {
		x.remove(id)
	}
	for i, id := range ids {
		x.remove(id)
		x.add(id, docs[i], upserts[id].Group)
	}
	if dead := len(x.ids) - x.live; dead >= 1000 && dead > x.live/4 {
		x.compact()
	}
	return nil
}

func (x *Index) add(id ID, a analyzed, g Group) {
	doc := uint32(len(x.ids))
	x.ids = append(x.ids, id)
	x.lens = append(x.lens, a.n)
	x.dead = append(x.dead, false)
	x.group = append(x.group, g)
	tids := make([]uint32, len(a.terms))
	for j, t := range a.terms {
		tid, ok := x.termIDs[t]
		if !ok {
			tid = uint32(len(x.terms))
			x.termIDs[t] = tid
			x.terms = append(x.terms, t)
			x.postings = append(x.postings, nil)
			x.df = append(x.df, 0)
			x.noteLang(t)
		}
		x.postings[tid] = append(x.postings[tid], posting{doc: doc, tf: a.tfs[j]})
		x.df[tid]++
		tids[j] = tid
	}
	x.docTerms = append(x.docTerms, tids)
	x.byID[id] = doc
	x.live++
	x.liveLen += uint64(a.n)
	x.count(doc, +1)
}

// count adds (sign +1) or removes (-1) a live document's contribution to
// its group's statistics. The write lock is held.
func (x *Index) count(doc uint32, sign int) {
	g := x.group[doc]
	gs := x.groups[g]
	if gs == nil {
		gs = &groupStats{df: map[uint32]uint32{}}
		x.groups[g] = gs
	}
	if sign > 0 {
		gs.live++
		gs.length += uint64(x.lens[doc])
		for _, tid := range x.docTerms[doc] {
			gs.df[tid]++
		}
		return
	}
	gs.live--
	gs.length -= uint64(x.lens[doc])
	for _, tid := range x.docTerms[doc] {
		if gs.df[tid]--; gs.df[tid] == 0 {
			delete(gs.df, tid)
		}
	}
	if gs.live == 0 {
		delete(x.groups, g)
	}
}

// Regroup moves documents to group g (a document that became public, say);
// ids the index does not hold are skipped.
func (x *Index) Regroup(ids []ID, g Group) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, id := range ids {
		doc, ok := x.byID[id]
		if !ok || x.group[doc] == g {
			continue
		}
		x.count(doc, -1)
		x.group[doc] = g
		x.count(doc, +1)
	}
}

// SetGroups assigns every live document the group of(id) gives, and
// recounts the statistics (after ReadFrom, whose stream carries no groups).
func (x *Index) SetGroups(of func(ID) Group) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for doc, id := range x.ids {
		if !x.dead[doc] {
			x.group[doc] = of(id)
		}
	}
	x.recount()
}

// recount rebuilds every group's statistics from the live documents. The
// write lock is held.
func (x *Index) recount() {
	x.groups = map[Group]*groupStats{}
	for doc := range x.ids {
		if !x.dead[doc] {
			x.count(uint32(doc), +1)
		}
	}
}

func (x *Index) remove(id ID) {
	doc, ok := x.byID[id]
	if !ok {
		return
	}
	delete(x.byID, id)
	x.count(doc, -1)
	x.dead[doc] = true
	for _, tid := range x.docTerms[doc] {
		x.df[tid]--
	}
	x.docTerms[doc] = nil
	x.live--
	x.liveLen -= uint64(x.lens[doc])
}

// compact renumbers the live documents and drops dead postings and terms
// no live document has. The write lock is held.
func (x *Index) compact() {
	remap := make([]uint32, len(x.ids))
	var ids []ID
	var lens []uint32
	var groups []Group
	var docTerms [][]uint32
	for doc := range x.ids {
		if x.dead[doc] {
			continue
		}
		remap[doc] = uint32(len(ids))
		ids = append(ids, x.ids[doc])
		lens = append(lens, x.lens[doc])
		groups = append(groups, x.group[doc])
		docTerms = append(docTerms, nil)
	}
	termIDs := map[string]uint32{}
	var terms []string
	var postings [][]posting
	var df []uint32
	for tid, list := range x.postings {
		if x.df[tid] == 0 {
			continue
		}
		nt := uint32(len(terms))
		kept := make([]posting, 0, x.df[tid])
		for _, p := range list {
			if !x.dead[p.doc] {
				d := remap[p.doc]
				kept = append(kept, posting{doc: d, tf: p.tf})
				docTerms[d] = append(docTerms[d], nt)
			}
		}
		termIDs[x.terms[tid]] = nt
		terms = append(terms, x.terms[tid])
		postings = append(postings, kept)
		df = append(df, x.df[tid])
	}
	byID := make(map[ID]uint32, len(ids))
	for doc, id := range ids {
		byID[id] = uint32(doc)
	}
	x.termIDs, x.terms, x.postings, x.df = termIDs, terms, postings, df
	x.ids, x.lens, x.dead, x.docTerms, x.byID = ids, lens, make([]bool, len(ids)), docTerms, byID
	x.group = groups
	x.recount() // term ids changed
	x.relang()
}

// accumulator is one search's scratch space: a score per document number
// and the numbers touched.
type accumulator struct {
	score   []float32
	touched []uint32
	in      []bool // by group: in the search's scope (nil: every group)
}

// maxMaskGroup bounds the group ids a scope mask covers; a scope naming a
// larger id is filtered in top alone.
const maxMaskGroup = 1 << 20

// mask marks groups in acc.in (nil groups: no mask). The caller clears it.
func (acc *accumulator) mask(groups []Group) {
	acc.in = acc.in[:0]
	if groups == nil || len(groups) == 0 {
		return
	}
	top := slices.Max(groups)
	if top >= maxMaskGroup {
		return
	}
	if cap(acc.in) <= int(top) {
		acc.in = make([]bool, top+1)
	}
	acc.in = acc.in[:top+1]
	for _, g := range groups {
		acc.in[g] = true
	}
}

// Search returns the top n live documents for a free-text query (terms
// OR-ed, BM25-scored, a term repeated in the query weighing more) within
// scope; ties go to the smaller id. Document frequencies, the document
// count and the average length are those of scope's groups.
func (x *Index) Search(query string, n int, scope Scope) ([]Hit, error) {
	if n <= 0 {
		return nil, fmt.Errorf("text: search for %d hits", n)
	}
	q := x.analyzeQuery(query)
	x.mu.RLock()
	defer x.mu.RUnlock()
	st := x.stats(scope.Groups)
	if st.live == 0 || len(q.terms) == 0 {
		return []Hit{}, nil
	}
	acc, _ := x.accs.Get().(*accumulator)
	if acc == nil || len(acc.score) < len(x.ids) {
		acc = &accumulator{score: make([]float32, len(x.ids)+len(x.ids)/4+64)}
	}
	acc.touched = acc.touched[:0]
	acc.mask(scope.Groups)
	x.accumulate(acc, q, st)
	h := x.top(acc, n, scope)
	clear(acc.in)
	x.accs.Put(acc)
	out := make([]Hit, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		s := heap.Pop(&h).(scored)
		out[i] = Hit{ID: s.id, Score: float64(s.score)}
	}
	return out, nil
}

// scopeStats are the collection statistics a search scores with.
type scopeStats struct {
	live   int
	length uint64
	groups []*groupStats // nil: the whole index (x.df)
}

// stats sums the statistics of groups (nil: the whole index). The read
// lock is held.
func (x *Index) stats(groups []Group) scopeStats {
	if groups == nil {
		return scopeStats{live: x.live, length: x.liveLen}
	}
	st := scopeStats{groups: make([]*groupStats, 0, len(groups))}
	for i, g := range groups {
		gs := x.groups[g]
		if gs == nil || slices.Contains(groups[:i], g) {
			continue
		}
		st.live += gs.live
		st.length += gs.length
		st.groups = append(st.groups, gs)
	}
	return st
}

// df is the number of documents in the scope holding term tid.
func (st scopeStats) df(x *Index, tid uint32) uint32 {
	if st.groups == nil {
		return x.df[tid]
	}
	var n uint32
	for _, gs := range st.groups {
		n += gs.df[tid]
	}
	return n
}

// accumulate scores every live document of the scope (acc.in, when set)
// holding a query term, term at a time, into acc. The read lock is held.
func (x *Index) accumulate(acc *accumulator, q analyzed, st scopeStats) {
	N := float64(st.live)
	avgdl := float64(st.length) / N
	if avgdl == 0 {
		avgdl = 1
	}
	cnorm := float32(K1 * (1 - B))
	clen := float32(K1 * B / avgdl)
	score, lens, dead, in, group := acc.score, x.lens, x.dead, acc.in, x.group
	for j, t := range q.terms {
		tid, ok := x.termIDs[t]
		if !ok {
			continue
		}
		d := st.df(x, tid)
		if d == 0 {
			continue // no document of the scope holds it
		}
		df := float64(d)
		w := float32(math.Log(1+(N-df+0.5)/(df+0.5)) * (K1 + 1) * float64(q.tfs[j]))
		for _, p := range x.postings[tid] {
			if dead[p.doc] {
				continue
			}
			if len(in) > 0 { // a scope: skip what it may not see
				if g := group[p.doc]; int(g) >= len(in) || !in[g] {
					continue
				}
			}
			tf := float32(p.tf)
			s := w * tf / (tf + cnorm + clen*float32(lens[p.doc]))
			if score[p.doc] == 0 {
				acc.touched = append(acc.touched, p.doc)
			}
			score[p.doc] += s
		}
	}
}

// top selects the best n touched documents of scope (its groups first,
// unless accumulate's mask kept it to them already; then its Keep, only
// for documents that would enter the selection) and clears the
// accumulator. The read lock is held.
func (x *Index) top(acc *accumulator, n int, scope Scope) hitHeap {
	h := hitHeap{}
	score, groups, keep, in := acc.score, scope.Groups, scope.Keep, acc.in
	for _, doc := range acc.touched {
		s := score[doc]
		score[doc] = 0
		// With a mask, accumulate touched only documents of the scope.
		if len(in) == 0 && !inScope(groups, in, x.group[doc]) {
			continue
		}
		// Against a full selection, the score decides alone unless it
		// ties (most documents): the id, a likely cache miss, is read
		// only then. !(s > worst) also drops a NaN, as better does.
		if len(h) == n && !(s > h[0].score) && (s != h[0].score || !better(s, x.ids[doc], h[0].score, h[0].id)) {
			continue
		}
		if keep != nil && !keep(x.ids[doc]) {
			continue
		}
		if len(h) < n {
			heap.Push(&h, scored{s, x.ids[doc]})
		} else {
			h[0] = scored{s, x.ids[doc]}
			heap.Fix(&h, 0)
		}
	}
	return h
}

// inScope reports whether group g is among groups (nil: every group),
// through the search's mask when it has one.
func inScope(groups []Group, in []bool, g Group) bool {
	if groups == nil {
		return true
	}
	if len(in) > 0 {
		return int(g) < len(in) && in[g]
	}
	return slices.Contains(groups, g)
}

type scored struct {
	score float32
	id    ID
}

// better orders hits: higher score first, then the smaller id.
func better(s float32, id ID, than float32, thanID ID) bool {
	if s != than {
		return s > than
	}
	return bytes.Compare(id[:], thanID[:]) < 0
}

// hitHeap is a min-heap: the worst kept hit on top.
type hitHeap []scored

func (h hitHeap) Len() int           { return len(h) }
func (h hitHeap) Less(i, j int) bool { return better(h[j].score, h[j].id, h[i].score, h[i].id) }
func (h hitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *hitHeap) Push(v any)        { *h = append(*h, v.(scored)) }
func (h *hitHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

// Count is the number of live documents.
func (x *Index) Count() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.live
}

// Terms is the number of distinct terms held (including those only dead
// documents still have, until compaction).
func (x *Index) Terms() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.terms)
}

// Has reports whether id is a live document.
func (x *Index) Has(id ID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.byID[id]
	return ok
}

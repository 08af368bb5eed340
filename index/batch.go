package index

import (
	"slices"

	"github.com/sostenuto/sostenuto/index/text"
	"github.com/sostenuto/sostenuto/index/vector"
)

// ApplyBatch applies a run of batches in order, under one acquisition of
// the writer lock, and answers one error per batch (nil when applied or
// skipped). It ends as applying them one by one with Apply would: the
// maps change batch by batch; the index writes of the whole run are
// gathered (the last write of each chunk wins) and made together — the
// BM25 index analyses them in one Batch, the graph takes its upserts in
// one call (insertAll) — and the position moves once, past the last.
// A batch refused (a vector of the wrong length) changes nothing; the
// others apply.
func (e *Engine) ApplyBatch(batch []Ops) []error {
	errs := make([]error, len(batch))
	e.wmu.Lock()
	defer e.wmu.Unlock()
	// A batch changing the embedding models starts a run of its own: the
	// model state changes before its operations, and every later batch's
	// vectors go to the graphs that state names.
	for start := 0; start < len(batch); {
		end := start + 1
		for end < len(batch) && batch[end].Model == nil {
			end++
		}
		e.applyModelRun(batch[start:end], errs[start:end])
		start = end
	}
	return errs
}

// applyModelRun applies a run whose first batch alone may change the
// models; wmu is held.
func (e *Engine) applyModelRun(batch []Ops, errs []error) {
	if m := batch[0].Model; m != nil && (batch[0].Position.LSN == 0 || batch[0].Position.LSN > e.pos.LSN) {
		if err := e.setModel(*m); err != nil {
			for i := range errs {
				errs[i] = err
			}
			return
		}
	}
	vec := e.graph()
	pre, err := e.preIndex(vec, batch)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return
	}
	w := newIndexWrites()
	adv, err := e.applyRunAndIndexes(vec, batch, errs, w, pre)
	if err == nil {
		err = e.applyBuild(w)
	}
	if err != nil {
		for i := range errs {
			if adv.applied[i] {
				errs[i] = err
			}
		}
		return
	}
	e.advance(adv)
	e.maybeCompact(vec)
}

// applyRunAndIndexes changes the maps and makes the run's index writes
// (those pre left to make). A run that removes or replaces chunks (a
// document reprocessed, refreshed or deleted) changes the maps and both
// indexes under mu together, so a search sees the old chunks or the new
// ones, never a mix or none; its new chunks were indexed before, unseen
// (preIndex), so searches wait only for the cheap part. A run that only
// adds lets searches go on meanwhile: until the indexes hold its chunks
// they are not found. wmu is held.
func (e *Engine) applyRunAndIndexes(vec *vector.Index, batch []Ops, errs []error, w *indexWrites, pre map[vector.ID][]float32) (advancement, error) {
	if !e.replaces(batch) {
		adv := e.applyRun(batch, errs, w)
		w.dropPreIndexed(pre)
		return adv, e.applyIndexes(vec, w)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	adv := e.applyRunLocked(batch, errs, w)
	w.dropPreIndexed(pre)
	return adv, e.applyIndexes(vec, w)
}

// checkOps refuses a batch holding a vector of the wrong length for the
// graph it goes to; wmu is held.
func (e *Engine) checkOps(ops Ops) error {
	if err := e.checkDims(ops.Upserts); err != nil {
		return err
	}
	return e.checkEmbeddings(ops.Embeddings)
}

// replaces says whether a run removes a chunk or replaces one held. Only
// the writer (wmu held) changes the maps, so it reads them unlocked.
func (e *Engine) replaces(batch []Ops) bool {
	for _, ops := range batch {
		if len(ops.Deletes) > 0 || len(ops.DeleteDocs) > 0 || len(ops.DeleteProjects) > 0 || len(ops.Revokes) > 0 {
			return true
		}
		for _, c := range ops.Upserts {
			if _, ok := e.chunks[c.ID]; ok {
				return true
			}
		}
	}
	return false
}

// preIndex puts into both indexes, before the maps change, the run's
// upserts of knowledge chunks the maps do not hold whose document is known
// and keeps its visibility in the run (new chunks of a known document, as
// a refresh writes), and answers them with their vectors. Searches admit
// only chunks the maps hold, so these stay unseen until the maps take
// them. wmu is held: the maps are read unlocked.
func (e *Engine) preIndex(vec *vector.Index, batch []Ops) (map[vector.ID][]float32, error) {
	regrouped := map[ID]bool{}
	for _, ops := range batch {
		for _, d := range ops.Documents {
			if st, ok := e.docs[d.ID]; !ok || st.IsPublic != d.IsPublic || st.OwnerID != d.OwnerID {
				regrouped[d.ID] = true
			}
		}
		for _, d := range ops.DeleteDocs {
			regrouped[d] = true
		}
	}
	w := newIndexWrites()
	pos := e.pos.LSN
	if !e.columnToActive() {
		return nil, nil // chunk upserts carry no vector of the graph searched
	}
	for _, ops := range batch {
		if ops.Position.LSN != 0 && ops.Position.LSN <= pos || e.checkOps(ops) != nil {
			continue // skipped or refused by applyRun
		}
		pos = max(pos, ops.Position.LSN)
		for _, c := range ops.Upserts {
			st, ok := e.docs[c.DocumentID]
			if _, held := e.chunks[c.ID]; held || !ok || c.Kind != KindKnowledge || c.Vector == nil || regrouped[c.DocumentID] {
				continue
			}
			g, ok := e.groups[st.OwnerID]
			if st.IsPublic {
				g, ok = 0, true
			}
			if ok {
				w.upsert(c.ID, c.Vector, textDoc(c.Title, c, g))
				w.hint(c.ID, c.Vector, c)
			}
		}
	}
	pre := make(map[vector.ID][]float32, len(w.graph))
	for _, op := range w.graph {
		pre[op.id] = op.vec
	}
	return pre, e.applyIndexes(vec, w)
}

// dropPreIndexed removes from w the writes preIndex made already: an
// upsert of the same vector (a later write of the chunk in the run stays).
func (w *indexWrites) dropPreIndexed(pre map[vector.ID][]float32) {
	if len(pre) == 0 {
		return
	}
	kept := w.graph[:0]
	for _, op := range w.graph {
		if v, ok := pre[op.id]; ok && op.vec != nil && slices.Equal(v, op.vec) {
			delete(w.texts, text.ID(op.id))
			continue
		}
		kept = append(kept, op)
	}
	w.graph = kept
	clear(w.at)
	for i, op := range w.graph {
		w.at[op.id] = i
	}
}

// advancement is where a run of batches leaves the position.
type advancement struct {
	pos, dataPos Position
	changed      uint64 // batches that changed anything
	applied      []bool
}

// applyRun applies each batch of the run to the maps (under mu), skipping
// those at or before the position and refusing those with a vector of the
// wrong length; wmu is held.
func (e *Engine) applyRun(batch []Ops, errs []error, w *indexWrites) advancement {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.applyRunLocked(batch, errs, w)
}

// applyRunLocked is applyRun with mu held.
func (e *Engine) applyRunLocked(batch []Ops, errs []error, w *indexWrites) advancement {
	adv := advancement{pos: e.pos, dataPos: e.dataPos, applied: make([]bool, len(batch))}
	for i, ops := range batch {
		if ops.Position.LSN != 0 && ops.Position.LSN <= adv.pos.LSN {
			continue
		}
		if errs[i] = e.checkOps(ops); errs[i] != nil {
			continue
		}
		e.applyMaps(ops, w)
		adv.applied[i] = true
		if ops.Position.LSN > adv.pos.LSN {
			adv.pos = ops.Position
		}
		if ops.Len() > 0 || ops.Model != nil { // a switch changes every answer
			adv.dataPos = adv.pos
			adv.changed++
		}
	}
	return adv
}

// advance moves the position past a run and wakes its waiters; it runs
// last, so whoever waits on the position sees the whole run in every
// index.
func (e *Engine) advance(adv advancement) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if adv.pos.LSN > e.pos.LSN {
		e.pos = adv.pos
		if !e.closed {
			close(e.moved) // wake the waiters
			e.moved = make(chan struct{})
		}
	}
	if adv.changed > 0 {
		e.dataPos = adv.dataPos
		e.dataVersion += adv.changed
	}
}

// applyIndexes makes a run's writes to the graph (logging them for a
// running compaction) and to the BM25 index. Each chunk has one write, so
// deletes and upserts commute: deletes go first, then every upsert in one
// call.
func (e *Engine) applyIndexes(vec *vector.Index, w *indexWrites) error {
	upserts := make([]graphOp, 0, len(w.graph))
	for _, op := range w.graph {
		if op.vec == nil {
			vec.Delete(op.id)
			e.logGraphOp(op)
		} else {
			upserts = append(upserts, op)
		}
	}
	if err := insertAll(vec, upserts); err != nil {
		return err
	}
	for _, op := range upserts {
		e.logGraphOp(op)
	}
	if len(w.texts) > 0 || len(w.deletes) > 0 {
		return e.text.Batch(w.texts, w.deletes)
	}
	return nil
}

// insertAll adds upserts to the graph, each replacing the vector its id
// held. It is the one place the engine inserts into a graph: a graph that
// inserts a batch on several cores is called from here.
//
// Upserts carrying candidate neighbours (a leader's, shipped in the log)
// are linked among them instead of searching the graph (vector's
// AddBatchCandidates).
func insertAll(vec *vector.Index, upserts []graphOp) error {
	ids, vecs := make([]vector.ID, len(upserts)), make([][]float32, len(upserts))
	var cands [][]vector.ID
	for i, op := range upserts {
		ids[i], vecs[i] = op.id, op.vec
		if op.cands != nil {
			if cands == nil {
				cands = make([][]vector.ID, len(upserts))
			}
			cands[i] = op.cands
		}
	}
	return vec.AddBatchCandidates(ids, vecs, cands, 0) // linked on every core
}

// indexWrites is what a run of batches does to the graph and the BM25
// index, gathered while the maps change and made after: one write per
// chunk, the last (an upsert, or a delete: vec nil and the id in deletes).
type indexWrites struct {
	graph   []graphOp         // in the order chunks were first written
	at      map[vector.ID]int // id → its write in graph
	texts   map[text.ID]text.Doc
	deletes []text.ID // chunks gone from both indexes
	build   []graphOp // writes to the graph being built, in order
}

func newIndexWrites() *indexWrites {
	return &indexWrites{at: map[vector.ID]int{}, texts: map[text.ID]text.Doc{}}
}

// set makes op the chunk's write.
func (w *indexWrites) set(op graphOp) {
	if i, ok := w.at[op.id]; ok {
		w.graph[i] = op
		return
	}
	w.at[op.id] = len(w.graph)
	w.graph = append(w.graph, op)
}

// upsert records a chunk's new vector and text.
func (w *indexWrites) upsert(id ID, vec []float32, doc text.Doc) {
	w.set(graphOp{id: vector.ID(id), vec: vec})
	w.texts[text.ID(id)] = doc
}

// hint gives the upsert of id just recorded the candidate neighbours c
// carries, when vec is c's own vector (not one kept from before).
func (w *indexWrites) hint(id ID, vec []float32, c Chunk) {
	if len(c.Neighbours) == 0 || c.Vector == nil || len(vec) == 0 || &vec[0] != &c.Vector[0] {
		return
	}
	cands := make([]vector.ID, len(c.Neighbours))
	for i, n := range c.Neighbours {
		cands[i] = vector.ID(n)
	}
	w.graph[w.at[vector.ID(id)]].cands = cands
}

// remove records a chunk's delete; an upsert of it earlier in the run is
// dropped (the BM25 index deletes before it upserts). The graph being
// built, if any, takes it in order with its other writes.
func (w *indexWrites) remove(id ID) {
	w.set(graphOp{id: vector.ID(id)})
	w.build = append(w.build, graphOp{id: vector.ID(id)})
	delete(w.texts, text.ID(id))
	w.deletes = append(w.deletes, text.ID(id))
}

// regroup moves the pending texts of ids to group g (their document
// changed visibility after they were written in this run).
func (w *indexWrites) regroup(ids []text.ID, g text.Group) {
	if w == nil {
		return
	}
	for _, id := range ids {
		if d, ok := w.texts[id]; ok {
			d.Group = g
			w.texts[id] = d
		}
	}
}

// heldVector is the vector a chunk holds as far as the run has gone: its
// write in w if any, else the graph's. mu is held.
func (e *Engine) heldVector(id ID, w *indexWrites) ([]float32, bool) {
	if i, ok := w.at[vector.ID(id)]; ok {
		v := w.graph[i].vec
		return v, v != nil
	}
	return e.vec.Vector(vector.ID(id))
}

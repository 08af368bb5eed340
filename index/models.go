package index

import (
	"errors"
	"fmt"

	"github.com/sostenuto/sostenuto/index/vector"
)

// ModelState names the embedding models whose vectors the engine holds:
// the active one (its graph answers searches) and, while a re-embedding
// runs, the one being built beside it (its graph fills as its vectors
// arrive and is never searched). The zero value is the engine before
// models were named: chunk vectors feed the one graph.
type ModelState struct {
	Active      string
	ActiveDim   int
	Building    string // "" when nothing is being built
	BuildingDim int
	// Column is the model whose vectors chunk upserts carry
	// (Chunk.Vector: PostgreSQL's chunks.embedding column); every other
	// model's vectors arrive as Embeddings. "" when the column holds none.
	Column string
}

// Embedding is one chunk's vector by one model; a nil Vector deletes it.
type Embedding struct {
	Chunk  ID
	Model  string
	Vector []float32
}

// ErrModel marks a query embedded with a model the engine does not search
// with.
var ErrModel = errors.New("index: not the active embedding model")

// Model returns the models the engine holds.
func (e *Engine) Model() ModelState {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.model
}

// BuildLen is how many vectors the graph being built holds (0 when none).
func (e *Engine) BuildLen() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.build == nil {
		return 0
	}
	return e.build.Len()
}

// columnToActive reports whether chunk upserts' vectors belong to the
// active graph (always, before models were named); mu or wmu is held.
func (e *Engine) columnToActive() bool { return e.model.Column == e.model.Active }

// columnToBuild reports whether chunk upserts' vectors belong to the graph
// being built.
func (e *Engine) columnToBuild() bool {
	return e.build != nil && e.model.Column != "" && e.model.Column == e.model.Building
}

// setModel applies a new model state (wmu is held): the graph being built
// becomes the active one when its model does (the switch: one batch, so
// one log position on every node), a new build starts with an empty graph,
// a build no longer named is dropped.
func (e *Engine) setModel(s ModelState) error {
	old := e.model
	vec, build := e.vec, e.build
	var err error
	switch {
	case s.Active == old.Active || old.Active == "":
		// Unchanged, or named for the first time: the graph holds its
		// vectors already.
	case s.Active == old.Building && build != nil:
		vec, build = build, nil // the switch
	default:
		vec, err = e.emptyGraph(s.ActiveDim)
	}
	if err == nil && s.ActiveDim > 0 && vec.Config().Dim != s.ActiveDim && vec.Len() == 0 {
		vec, err = e.emptyGraph(s.ActiveDim)
	}
	if err == nil && s.Building != old.Building {
		build = nil
		if s.Building != "" {
			build, err = e.emptyGraph(s.BuildingDim)
		}
	}
	if err != nil {
		return fmt.Errorf("index: model %q: %w", s.Active, err)
	}
	e.mu.Lock()
	e.model, e.vec, e.build = s, vec, build
	e.mu.Unlock()
	return nil
}

// emptyGraph is an empty graph of dim dimensions shaped as the engine's.
func (e *Engine) emptyGraph(dim int) (*vector.Index, error) {
	cfg := e.cfg.Vector
	if dim > 0 {
		cfg.Dim = dim
	}
	return vector.New(cfg)
}

// graphOf returns the graph holding model's vectors (nil: none held); mu
// or wmu is held.
func (e *Engine) graphOf(model string) *vector.Index {
	switch {
	case model == "":
		return nil
	case model == e.model.Active:
		return e.vec
	case model == e.model.Building:
		return e.build
	}
	return nil
}

// checkEmbeddings refuses a batch holding a vector of the wrong length
// for its model's graph; vectors of models not held are ignored.
func (e *Engine) checkEmbeddings(es []Embedding) error {
	for _, x := range es {
		g := e.graphOf(x.Model)
		if g != nil && x.Vector != nil && len(x.Vector) != g.Config().Dim {
			return fmt.Errorf("index: chunk %x model %s: %w", x.Chunk, x.Model, ErrDimension)
		}
	}
	return nil
}

// applyEmbeddings records the graph writes of a batch's embeddings (mu
// held): the active model's go with the chunk writes, the building
// model's to the build list; a vector of a chunk the engine does not hold,
// or of a model it holds no graph for, is ignored.
func (e *Engine) applyEmbeddings(es []Embedding, w *indexWrites) {
	for _, x := range es {
		op := graphOp{id: vector.ID(x.Chunk), vec: x.Vector}
		if _, ok := e.chunks[x.Chunk]; !ok && x.Vector != nil {
			continue
		}
		switch {
		case x.Model == e.model.Active && x.Model != "":
			w.set(op)
		case x.Model == e.model.Building && e.build != nil:
			w.build = append(w.build, op)
		}
	}
}

// applyBuild makes a run's writes to the graph being built, in order
// (wmu is held: only the writer replaces the graph).
func (e *Engine) applyBuild(w *indexWrites) error {
	b := e.build
	if b == nil {
		return nil
	}
	for _, op := range w.build {
		if op.vec == nil {
			b.Delete(op.id)
		} else if err := b.Add(op.id, op.vec); err != nil {
			return err
		}
	}
	return nil
}

// ModelVectors lists the vectors the engine holds for model (its active
// or building one), by chunk: cluster checks compare them with
// PostgreSQL's.
func (e *Engine) ModelVectors(model string) map[ID][]float32 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	g := e.graphOf(model)
	if g == nil {
		return nil
	}
	out := map[ID][]float32{}
	for _, it := range g.LiveItems() {
		out[ID(it.ID)] = it.Vec
	}
	return out
}

// ModelChunks lists the chunks holding a vector of model (its active or
// building one) in the engine's graphs; nil when it holds no graph for it.
func (e *Engine) ModelChunks(model string) []ID {
	e.mu.RLock()
	defer e.mu.RUnlock()
	g := e.graphOf(model)
	if g == nil {
		return nil
	}
	ids := g.LiveIDs()
	out := make([]ID, len(ids))
	for i, id := range ids {
		out[i] = ID(id)
	}
	return out
}

// Candidates computes, in the graph chunk upserts' vectors go to, the
// candidate neighbours of vectors[from:] (chunks ids[from:]): the graph's
// nearest live vectors and the nearest of the others of vectors, which it
// does not hold yet (vector.Index.Candidates). A leader ships them in the
// log so that every replica links the chunks among them instead of
// searching (replication/DESIGN.md, "Candidates"). Nil when chunk vectors
// go to no searched graph or one has the wrong length.
func (e *Engine) Candidates(ids []ID, vectors [][]float32, from int) [][]ID {
	e.mu.RLock()
	vec, ok := e.vec, e.columnToActive()
	e.mu.RUnlock()
	if !ok || vec == nil || len(ids) != len(vectors) || from < 0 || from >= len(ids) {
		return nil
	}
	vids := make([]vector.ID, len(ids))
	for i, id := range ids {
		vids[i] = vector.ID(id)
	}
	got := vec.Candidates(vids, vectors, from)
	if got == nil {
		return nil
	}
	out := make([][]ID, len(got))
	for i, cs := range got {
		out[i] = make([]ID, len(cs))
		for j, c := range cs {
			out[i][j] = ID(c)
		}
	}
	return out
}

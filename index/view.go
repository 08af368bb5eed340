package index

import (
	"io"
	"maps"
	"slices"

	"github.com/sostenuto/sostenuto/index/text"
	"github.com/sostenuto/sostenuto/index/vector"
)

// ReadView is the engine at one moment, for writing a snapshot while
// batches, compactions and searches go on. Taking it holds the writer
// lock only while it is captured: the graph and the BM25 index share what
// only grows by appending and copy what changes in place (vector.Frozen,
// text.Frozen); the chunk map is cloned (chunks are replaced, never
// written into) and the documents copied. Nothing the engine does after
// the capture reaches what the view holds.
type ReadView struct {
	pos  Position
	docs []Document
	// projects are the projects with their grantees, copied.
	projects []viewProject
	chunks   map[ID]*Chunk
	vec      *vector.Index
	text     *text.Index
	// model and build are the embedding models and the graph being built
	// (nil: none), frozen as vec is.
	model ModelState
	build *vector.Index
}

// ReadView captures the engine as it is now, waiting for a batch or a
// compaction swap in progress to end first.
func (e *Engine) ReadView() *ReadView {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	// wmu excludes every writer of the maps, the indexes and the position.
	v := &ReadView{pos: e.pos, chunks: maps.Clone(e.chunks), vec: e.vec.Frozen(), text: e.text.Frozen(),
		docs: make([]Document, 0, len(e.docs)), model: e.model}
	if e.build != nil {
		v.build = e.build.Frozen()
	}
	for _, st := range e.docs {
		v.docs = append(v.docs, st.Document)
	}
	v.projects = make([]viewProject, 0, len(e.projects))
	for _, st := range e.projects {
		v.projects = append(v.projects, viewProject{Project: st.Project, grantees: slices.Collect(maps.Keys(st.grantees))})
	}
	return v
}

// viewProject is a project as a view holds it: its owner, title and
// grantees.
type viewProject struct {
	Project
	grantees []ID
}

// Position is the applied position the view holds.
func (v *ReadView) Position() Position { return v.pos }

// WriteSnapshot writes the engine as the view holds it (see
// Engine.WriteSnapshot for the format). It holds no lock of the engine.
func (v *ReadView) WriteSnapshot(w io.Writer) error { return v.writeSnapshot(w) }

// Release drops what the view holds; it never blocks anything, and a
// second call does nothing.
func (v *ReadView) Release() {
	v.chunks, v.docs, v.projects, v.vec, v.text, v.build = nil, nil, nil, nil, nil, nil
}

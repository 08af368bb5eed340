package index

import (
	"io"
	"sync"
)

// ReadView holds an engine still: from Engine.ReadView until Release its
// writer lock is held, so no batch is applied and no compacted graph is
// swapped in meanwhile (searches go on). A Raft snapshot writes through
// one, so the snapshot is the engine at one moment.
type ReadView struct {
	e    *Engine
	once sync.Once
}

// ReadView takes the engine's writer lock (waiting for a batch or a
// compaction swap in progress) and returns the view; Release it.
func (e *Engine) ReadView() *ReadView {
	e.wmu.Lock()
	return &ReadView{e: e}
}

// WriteSnapshot writes the engine as the view holds it (see
// Engine.WriteSnapshot for the format).
func (v *ReadView) WriteSnapshot(w io.Writer) error { return v.e.writeSnapshot(w) }

// Release lets writes go on; a second call does nothing.
func (v *ReadView) Release() { v.once.Do(v.e.wmu.Unlock) }

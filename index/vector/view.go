package vector

import (
	"maps"
	"slices"
)

// Frozen returns a read-only copy of the graph as it is now, for writing a
// snapshot while Add and Delete go on against x. It is cheap: the storage
// that only ever grows by appending (vectors, ids, levels) is shared up to
// its current length, with the capacity cut there so nothing appended
// later can reach it; what writes change in place (level-0 links and
// their counts, upper-level link lists, tombstones) is copied — 8M+2
// bytes a node, its id's map entry and the upper levels. The copy answers WriteTo, Len,
// Tombstones, Has and Vector; it must not be written to.
func (x *Index) Frozen() *Index {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n, d := len(x.ids), x.cfg.Dim
	f := &Index{cfg: x.cfg, m0: x.m0, ml: x.ml, deadN: x.deadN, entry: x.entry, maxLevel: x.maxLevel,
		vecs: x.vecs[: n*d : n*d], ids: x.ids[:n:n], levels: x.levels[:n:n],
		l0: slices.Clone(x.l0[:n*x.m0]), l0n: slices.Clone(x.l0n[:n]), dead: slices.Clone(x.dead[:n]),
		upper: make([][][]int32, n), byID: maps.Clone(x.byID),
		rot: x.rot, cw: x.cw, codes: x.codes[: n*x.cw : n*x.cw]} // codes, like vecs, only grow
	for i, up := range x.upper {
		if len(up) > 0 {
			f.upper[i] = make([][]int32, len(up))
			for l, links := range up {
				f.upper[i][l] = slices.Clone(links)
			}
		}
	}
	return f
}

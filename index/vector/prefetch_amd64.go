package vector

import "unsafe"

// prefetch asks the CPU to load lines cache lines from p on (PREFETCHT0):
// unlike a load it does not wait for them, so the misses of what a search
// reads next overlap its current work (prefetch_amd64.s).
//
//go:noescape
func prefetch(p unsafe.Pointer, lines int)

// prefetchRows is prefetch(base + n·stride, lines) for every n of nodes,
// in one call (a Go call to assembly is never inlined, and a search
// prefetches the rows of every node it estimates).
//
//go:noescape
func prefetchRows(base unsafe.Pointer, stride int, nodes []int32, lines int)

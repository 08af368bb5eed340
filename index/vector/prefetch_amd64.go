package vector

import "unsafe"

// prefetch asks the CPU to load lines cache lines from p on (PREFETCHT0):
// unlike a load it does not wait for them, so the misses of what a search
// reads next overlap its current work (prefetch_amd64.s).
//
//go:noescape
func prefetch(p unsafe.Pointer, lines int)

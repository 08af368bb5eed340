package vector

import "unsafe"

// The graph's slabs (vectors, codes, fine codes, level-0 links) are read
// at random by every search: at 100k × 768 they span ~400 MB, so nearly
// every node a search visits costs a TLB miss and a page walk (two
// dimensional under a hypervisor). Slabs of hugeMin bytes or more are
// therefore allocated into memory advised for transparent huge pages
// (2 MiB: one TLB entry where 4 KiB pages need 512), before anything is
// written to them, so the kernel backs them with huge pages as they are
// first touched (huge_linux.go; a no-op elsewhere, and where THP is off).

// hugeMin is the smallest slab advised for huge pages.
const hugeMin = 4 << 20

// makeSlab returns a slab of n zeroed elements (capacity c ≥ n).
func makeSlab[T any](n, c int) []T {
	s := make([]T, n, c)
	if bytes := c * int(unsafe.Sizeof(*new(T))); bytes >= hugeMin {
		adviseHuge(unsafe.Pointer(unsafe.SliceData(s)), bytes)
	}
	return s
}

// growSlab appends n zero elements to s, moving it to a fresh slab (see
// makeSlab) a quarter larger (doubling while small, as append does) when
// it is full.
func growSlab[T any](s []T, n int) []T {
	if len(s)+n > cap(s) {
		c := 2 * cap(s)
		if cap(s) >= 1<<16 {
			c = cap(s) + cap(s)/4
		}
		ns := makeSlab[T](len(s), max(len(s)+n, c, 1024))
		copy(ns, s)
		s = ns
	}
	s = s[:len(s)+n]
	clear(s[len(s)-n:])
	return s
}

// settle collapses, in the background, the written part of the graph's
// large slabs into huge pages (collapseHuge: MADV_COLLAPSE). Slabs whose
// memory the Go heap had used before were already backed by small pages
// when makeSlab advised them, and the kernel's khugepaged collapses such
// memory only slowly (16 MiB every 10 s by default); this does it after a
// load or a large batch. What is huge already costs the kernel a walk of
// the page tables (about 20 µs for 320 MiB). Searches go on meanwhile:
// the kernel swaps each 2 MiB in place. The goroutine keeps the slabs
// reachable while it works. x.mu must be held (read or write).
func (x *Index) settle() {
	var work [][]byte
	add := func(p unsafe.Pointer, bytes int) {
		if p != nil && bytes >= hugeMin {
			work = append(work, unsafe.Slice((*byte)(p), bytes))
		}
	}
	add(unsafe.Pointer(unsafe.SliceData(x.vecs)), 4*len(x.vecs))
	add(unsafe.Pointer(unsafe.SliceData(x.codes)), 8*len(x.codes))
	add(unsafe.Pointer(unsafe.SliceData(x.fine)), len(x.fine))
	add(unsafe.Pointer(unsafe.SliceData(x.l0)), 4*len(x.l0))
	if len(work) > 0 {
		x.settling.Go(func() {
			for _, b := range work {
				collapseHuge(b)
			}
		})
	}
}

// WaitSettled waits for the huge-page collapses that a load, a large
// batch or a build started in the background (settle). Searches need not
// wait; a benchmark does, so that it measures the settled index a serving
// node has, not the kernel copying its pages.
func (x *Index) WaitSettled() { x.settling.Wait() }

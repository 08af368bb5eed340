package vector

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHuge asks for transparent huge pages on the 2 MiB-aligned part
// of [p, p+bytes) (madvise MADV_HUGEPAGE). It is advice: a kernel with
// THP disabled, or out of huge pages, backs the slab with small pages.
func adviseHuge(p unsafe.Pointer, bytes int) {
	if b := hugeAligned(unsafe.Slice((*byte)(p), bytes)); b != nil {
		_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	}
}

// collapseHuge collapses the 2 MiB-aligned part of b into huge pages now
// (madvise MADV_COLLAPSE, Linux 6.1 and later; the region must hold only
// written memory, or the collapse would make its untouched pages
// resident). An older kernel refuses it and khugepaged does it later.
func collapseHuge(b []byte) {
	if b = hugeAligned(b); b != nil {
		_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
		_ = unix.Madvise(b, unix.MADV_COLLAPSE)
	}
}

// hugeAligned is the part of b between its first and last 2 MiB
// boundaries, or nil.
func hugeAligned(b []byte) []byte {
	const huge = 2 << 20
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := (p + huge - 1) &^ (huge - 1)
	end := (p + uintptr(len(b))) &^ (huge - 1)
	if end <= start {
		return nil
	}
	return b[start-p : end-p]
}

//go:build !linux

package vector

import "unsafe"

// adviseHuge is a no-op where there is no madvise(MADV_HUGEPAGE).
func adviseHuge(unsafe.Pointer, int) {}

// collapseHuge is a no-op where there is no madvise(MADV_COLLAPSE).
func collapseHuge([]byte) {}

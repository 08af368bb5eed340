//go:build !amd64

package vector

import "unsafe"

// prefetch is a no-op where there is no prefetch instruction kernel.
func prefetch(p unsafe.Pointer, lines int) {}

// prefetchRows is a no-op where there is no prefetch instruction kernel.
func prefetchRows(base unsafe.Pointer, stride int, nodes []int32, lines int) {}

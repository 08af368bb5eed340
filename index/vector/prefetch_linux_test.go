package vector

import (
	"syscall"
	"testing"
	"unsafe"
)

// prefetch may run past the end of a slab (lines rounds up, and the last
// node's code ends the slab): it must neither fault on memory that is not
// mapped nor change what it reads. The page after the first is unmapped,
// so a prefetch written as loads would kill the test with SIGSEGV.
func TestPrefetchPastTheEndDoesNotFault(t *testing.T) {
	page := syscall.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 2*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	defer syscall.Munmap(mem)
	// Unmap the second page directly: syscall.Munmap only takes whole mappings.
	if _, _, errno := syscall.Syscall(syscall.SYS_MUNMAP, uintptr(unsafe.Pointer(&mem[page])), uintptr(page), 0); errno != 0 {
		t.Fatalf("munmap: %v", errno)
	}
	first := mem[:page]
	for i := range first {
		first[i] = byte(i)
	}
	prefetch(unsafe.Pointer(&first[page-64]), 8)
	prefetch(unsafe.Pointer(&first[0]), 0)
	// Rows of 128 bytes: the last starts 128 bytes before the page's end,
	// and three lines from it run past it.
	prefetchRows(unsafe.Pointer(&first[0]), 128, []int32{0, int32(page/128 - 1), 3}, 3)
	prefetchRows(unsafe.Pointer(&first[0]), 128, nil, 3)
	prefetchRows(unsafe.Pointer(&first[0]), 128, []int32{1}, 0)
	for i := range first {
		if first[i] != byte(i) {
			t.Fatalf("byte %d changed to %d", i, first[i])
		}
	}
}

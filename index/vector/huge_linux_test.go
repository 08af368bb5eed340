package vector

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// After a bulk batch the vectors' slab is collapsed into huge pages in
// the background (where the kernel has transparent huge pages).
func TestBulkBatchSettlesIntoHugePages(t *testing.T) {
	if b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil || strings.Contains(string(b), "[never]") {
		t.Skip("no transparent huge pages here")
	}
	r := rand.New(rand.NewPCG(61, 62))
	n := settleBatch
	vecs := make([][]float32, n)
	for i := range vecs {
		vecs[i] = randVec(r, 768, nil, 0)
	}
	x, _ := New(DefaultConfig(768))
	if err := x.AddBatch(ids(0, n), vecs, 2); err != nil {
		t.Fatal(err)
	}
	addr, size := uintptr(unsafe.Pointer(unsafe.SliceData(x.vecs))), uintptr(4*len(x.vecs))
	deadline := time.Now().Add(20 * time.Second)
	for {
		kb, err := anonHugeIn(addr, size)
		if err != nil {
			t.Fatal(err)
		}
		if kb >= 4096 {
			t.Logf("vectors' mapping: %d KiB in huge pages", kb)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("vectors' mapping: %d KiB in huge pages after 20 s", kb)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// anonHugeIn sums AnonHugePages over the mappings overlapping
// [addr, addr+n) (/proc/self/smaps).
func anonHugeIn(addr, n uintptr) (int, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in, total := false, 0
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if _, err := fmt.Sscanf(line, "%x-%x ", &lo, &hi); err == nil && lo < hi {
			in = lo < addr+n && addr < hi
			continue
		}
		if rest, ok := strings.CutPrefix(line, "AnonHugePages:"); ok && in {
			var kb int
			fmt.Sscanf(rest, "%d", &kb)
			total += kb
		}
	}
	return total, sc.Err()
}

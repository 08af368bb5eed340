package vector

import (
	"bufio"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// searchBenchSet is the vector benchmark's shape (bench/vector_test.go:
// 500 centres, noise 0.8, 768 dimensions) at SOSTENUTO_BENCH_N (100,000)
// vectors, built once with AddBatch and kept as a snapshot in
// SOSTENUTO_VECTOR_SNAPSHOT (when set) between runs.
func searchBenchSet(b *testing.B) (*Index, [][]float32, [][]float32) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("SOSTENUTO_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	r := rand.New(rand.NewPCG(7, 8))
	data, queries := clusteredNoise(r, n, 300, 768, 500, 0.8)
	path := os.Getenv("SOSTENUTO_VECTOR_SNAPSHOT")
	if path != "" {
		if f, err := os.Open(path); err == nil {
			defer f.Close()
			x, err := ReadFrom(bufio.NewReader(f))
			if err != nil {
				b.Fatal(err)
			}
			x.WaitSettled()
			return x, data, queries
		}
	}
	x, _ := New(DefaultConfig(768))
	for i := 0; i < n; i += 5000 {
		if err := x.AddBatch(ids(i, min(i+5000, n)), data[i:min(i+5000, n)], 2); err != nil {
			b.Fatal(err)
		}
	}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(f)
		if _, err := x.WriteTo(w); err != nil {
			b.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	x.WaitSettled()
	return x, data, queries
}

// threadCPUTime is the calling thread's CPU time (the goroutine is locked
// to it by the caller).
func threadCPUTime() time.Duration {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0) // CLOCK_THREAD_CPUTIME_ID
	return time.Duration(ts.Nano())
}

// truthOf is the exact k nearest data indexes of each query.
func truthOf(data, queries [][]float32, k int) [][]int {
	out := make([][]int, len(queries))
	all := func(int) bool { return true }
	for i, q := range queries {
		out[i] = bruteForce(data, all, q, k)
	}
	return out
}

// BenchmarkSearchCodes runs the benchmark's queries on one thread at
// several ef and reports recall@10, CPU µs per query (the thread's, so
// other processes on the machine count less) and per-query counts of
// one-bit estimates, fine estimates and exact distances (deterministic).
func BenchmarkSearchCodes(b *testing.B) {
	x, data, queries := searchBenchSet(b)
	truth := truthOf(data, queries, 10)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, ef := range []int{10, 20, 40, 60} {
		b.Run("ef"+strconv.Itoa(ef), func(b *testing.B) {
			for b.Loop() {
				searchRun(b, x, queries, truth, ef)
			}
		})
	}
}

// searchRun searches every query once at ef and reports what
// BenchmarkSearchCodes reports.
func searchRun(b *testing.B, x *Index, queries [][]float32, truth [][]int, ef int) {
	vs := &visitSet{}
	cpu := make([]float64, len(queries))
	hit := 0
	for i, q := range queries {
		qn := normalized(q)
		x.mu.RLock()
		start := threadCPUTime()
		res := x.searchWith(vs, qn, 10, ef, nil, false)
		cpu[i] = float64(threadCPUTime()-start) / 1e3
		x.mu.RUnlock()
		for _, w := range truth[i] {
			if slices.ContainsFunc(res, func(r Result) bool { return r.ID == idOf(w) }) {
				hit++
			}
		}
	}
	nq := float64(len(queries))
	slices.Sort(cpu)
	b.ReportMetric(float64(hit)/(10*nq), "recall")
	b.ReportMetric(cpu[len(cpu)/2], "cpu-p50-µs")
	b.ReportMetric(cpu[len(cpu)*95/100], "cpu-p95-µs")
	b.ReportMetric(float64(vs.estimated)/nq, "est/q")
	b.ReportMetric(float64(vs.fined)/nq, "fine/q")
	b.ReportMetric(float64(vs.exact)/nq, "exact/q")
}

package vector

import (
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBuildBatches builds SOSTENUTO_BENCH_N (20,000) vectors of 768
// dimensions with AddBatch in batches of 500 on 2 workers, as a node's
// bulk apply inserts them, for random Gaussian vectors (the cluster
// benchmark's) and clustered ones (the vector benchmark's generator: 500
// centres, noise 0.8), pruning with every pair measured (the reference,
// "all") and without the pairs known (prune.go, "known"). It reports CPU time per vector (the
// machine is shared: compare CPU, not wall time) and recall@10 at ef 10
// and 40 of 100 queries.
func BenchmarkBuildBatches(b *testing.B) {
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("SOSTENUTO_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	r := rand.New(rand.NewPCG(5, 6))
	random := make([][]float32, n+100)
	for i := range random {
		random[i] = randVec(r, 768, nil, 0)
	}
	cl, clq := clusteredNoise(r, n, 100, 768, 500, 0.8)
	sets := []struct {
		name          string
		data, queries [][]float32
	}{{"random", random[:n], random[n:]}, {"clustered", cl, clq}}
	for _, s := range sets {
		for _, v := range []string{"all", "known", "all", "known"} {
			b.Run(s.name+"/"+v, func(b *testing.B) {
				for b.Loop() {
					x, _ := New(DefaultConfig(768))
					x.forgetChosen = v == "all"
					start := cpuTime()
					for i := 0; i < n; i += 500 {
						if err := x.AddBatch(ids(i, min(i+500, n)), s.data[i:min(i+500, n)], 2); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(n), "cpu-µs/vector")
					for _, ef := range []int{10, 40} {
						b.ReportMetric(recallOf(s.data, s.queries, 10, func(q []float32) []Result { res, _ := x.Search(q, 10, ef, nil); return res }),
							"recall@10-ef"+strconv.Itoa(ef))
					}
				}
			})
		}
	}
}

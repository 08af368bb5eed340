package bench

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/hnsw"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"
	"github.com/viterin/vek/vek32"
	"golang.org/x/sys/unix"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/index/vector"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// The vector benchmark: one data set, every system side by side.
// SOSTENUTO_BENCH_N sets the size (100000 by default),
// SOSTENUTO_BENCH_DIM the dimension (768 by default).

var benchDim = envInt("SOSTENUTO_BENCH_DIM", 768)

type dataset struct {
	data, queries [][]float32
	truth         [][]int32 // exact top-100 per query
}

func benchN() int { return envInt("SOSTENUTO_BENCH_N", 100000) }

// makeDataset draws unit vectors around 500 Gaussian cluster centres
// (noise of norm about 0.8 around each) and computes exact ground truth.
func makeDataset(n, q int) *dataset {
	ds := makeVectors(n, q)
	ds.truth = make([][]int32, q)
	var wg sync.WaitGroup
	for w := range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for qi := w; qi < q; qi += runtime.NumCPU() {
				ds.truth[qi] = exactTop(ds.data, ds.queries[qi], 100)
			}
		}()
	}
	wg.Wait()
	return ds
}

// makeVectors draws the data and queries without ground truth.
func makeVectors(n, q int) *dataset {
	r := rand.New(rand.NewPCG(42, 7))
	centres := make([][]float32, 500)
	unit := func(v []float32) []float32 {
		var s float64
		for _, x := range v {
			s += float64(x) * float64(x)
		}
		inv := float32(1 / math.Sqrt(s))
		for i := range v {
			v[i] *= inv
		}
		return v
	}
	for i := range centres {
		v := make([]float32, benchDim)
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		centres[i] = unit(v)
	}
	noise := 0.8 / math.Sqrt(float64(benchDim))
	gen := func(m int) [][]float32 {
		out := make([][]float32, m)
		for i := range out {
			c := centres[r.IntN(len(centres))]
			v := make([]float32, benchDim)
			for j := range v {
				v[j] = c[j] + float32(noise*r.NormFloat64())
			}
			out[i] = unit(v)
		}
		return out
	}
	return &dataset{data: gen(n), queries: gen(q)}
}

func dotf(a, b []float32) float32 { return vek32.Dot(a, b) }

func exactTop(data [][]float32, q []float32, k int) []int32 {
	type sc struct {
		i int32
		s float32
	}
	best := make([]sc, 0, k+1)
	for i, v := range data {
		s := dotf(q, v)
		if len(best) < k || s > best[len(best)-1].s {
			best = append(best, sc{int32(i), s})
			sort.Slice(best, func(a, b int) bool { return best[a].s > best[b].s })
			if len(best) > k {
				best = best[:k]
			}
		}
	}
	out := make([]int32, len(best))
	for i, b := range best {
		out[i] = b.i
	}
	return out
}

func recallAt(truth []int32, got []int32, k int) float64 {
	want := map[int32]bool{}
	for _, t := range truth[:k] {
		want[t] = true
	}
	hit := 0
	for _, g := range got {
		if want[g] {
			hit++
		}
	}
	return float64(hit) / float64(k)
}

// row is one line of the results table.
type row struct {
	System  string  `json:"system"`
	BuildS  float64 `json:"build_s"`
	Ef      int     `json:"ef"`
	P50     float64 `json:"p50_us"`
	P95     float64 `json:"p95_us"`
	P99     float64 `json:"p99_us"`
	CPU50   float64 `json:"cpu_p50_us"` // thread CPU time; 0 when not measured (pgvector)
	CPU95   float64 `json:"cpu_p95_us"`
	CPU99   float64 `json:"cpu_p99_us"`
	Recall  float64 `json:"recall"`
	Comment string  `json:"-"`
}

// latencies runs every query once (after 50 for warm-up) on a thread of
// its own and returns a row with wall-clock and thread CPU time
// percentiles (CLOCK_THREAD_CPUTIME_ID: the CPU the search used, leaving
// out the time it waited descheduled — the machine is shared) and
// recall@k.
func latencies(ds *dataset, k int, search func(q []float32) []int32) row {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, q := range ds.queries[:min(50, len(ds.queries))] { // warm-up
		search(q)
	}
	lat := make([]float64, len(ds.queries))
	cpu := make([]float64, len(ds.queries))
	var r float64
	for i, q := range ds.queries {
		start, c0 := time.Now(), threadCPU()
		got := search(q)
		cpu[i] = float64(threadCPU()-c0) / 1e3
		lat[i] = float64(time.Since(start).Nanoseconds()) / 1e3
		r += recallAt(ds.truth[i], got, k)
	}
	out := row{Recall: r / float64(len(ds.queries))}
	out.P50, out.P95, out.P99 = percentiles(lat)
	out.CPU50, out.CPU95, out.CPU99 = percentiles(cpu)
	return out
}

// percentiles returns the 50th, 95th and 99th percentiles of xs (sorted
// in place).
func percentiles(xs []float64) (p50, p95, p99 float64) {
	sort.Float64s(xs)
	pct := func(p float64) float64 { return xs[min(len(xs)-1, int(p*float64(len(xs))))] }
	return pct(0.5), pct(0.95), pct(0.99)
}

// threadCPU is the calling thread's CPU time, in nanoseconds.
func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

var efs = []int{10, 20, 30, 40, 60, 80, 120, 160, 240}

func vid(i int) vector.ID {
	var id vector.ID
	binary.BigEndian.PutUint32(id[:4], uint32(i))
	return id
}

// BenchmarkVectorSearch runs ours (quantized and float traversal),
// coder/hnsw, hnswlib (faiss with SOSTENUTO_BENCH_FAISS=1) and pgvector on
// one data set, single-threaded, k = 10; prints the table and the ratios
// against hnswlib at equal recall, and writes the recall-versus-throughput
// plot to plots/vector-<n>-<dim>.svg.
func BenchmarkVectorSearch(b *testing.B) {
	for b.Loop() {
		n := benchN()
		ds := makeDataset(n, 500)
		var rows []row
		// SOSTENUTO_BENCH_SYSTEMS picks systems (ours,coder,python,pgvector);
		// all by default.
		want := func(name string) bool {
			list := os.Getenv("SOSTENUTO_BENCH_SYSTEMS")
			return list == "" || slices.Contains(strings.Split(list, ","), name)
		}
		if want("ours") {
			rows = append(rows, benchOurs(b, ds)...)
		}
		if want("coder") {
			rows = append(rows, benchCoder(b, ds)...)
		}
		if want("python") {
			rows = append(rows, benchPython(b, ds)...)
		}
		if want("pgvector") {
			rows = append(rows, benchPgvector(b, ds)...)
		}
		fmt.Printf("\n%d × %d, 500 queries, k 10, one thread\n%s\nwall clock:\n%s\nthread CPU time:\n%s\n", n, benchDim, table(rows),
			ratioTable(rows, "hnswlib", wallTimes), ratioTable(rows, "hnswlib", cpuTimes))
		writePlot(b, rows, n, wallTimes, "")
		writePlot(b, rows, n, cpuTimes, "-cpu")
	}
}

// times picks a row's p50, p95 and p99 in one clock.
type times func(r row) [3]float64

func wallTimes(r row) [3]float64 { return [3]float64{r.P50, r.P95, r.P99} }
func cpuTimes(r row) [3]float64  { return [3]float64{r.CPU50, r.CPU95, r.CPU99} }

// writePlot draws rows (one line per system, QPS = 1/p50 in clock t) into
// plots/vector-<n>-<dim><suffix>.svg.
func writePlot(b *testing.B, rows []row, n int, t times, suffix string) {
	var series []PlotSeries
	for _, r := range rows {
		if r.Ef == 0 || t(r)[0] <= 0 {
			continue // exact scans (one point far below the rest), unmeasured clocks
		}
		if len(series) == 0 || series[len(series)-1].Name != r.System {
			series = append(series, PlotSeries{Name: r.System})
		}
		se := &series[len(series)-1]
		se.Points = append(se.Points, PlotPoint{Recall: r.Recall, QPS: 1e6 / t(r)[0], Label: fmt.Sprintf("ef %d", r.Ef)})
	}
	name := fmt.Sprintf("plots/vector-%dk-%d%s.svg", n/1000, benchDim, suffix)
	if err := os.MkdirAll("plots", 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	clock := "wall clock"
	if suffix != "" {
		clock = "thread CPU time"
	}
	title := fmt.Sprintf("Recall@10 vs queries/s (1/p50, %s), %d × %d, one thread", clock, n, benchDim)
	if err := WriteRecallPlot(f, title, series); err != nil {
		b.Fatal(err)
	}
	logf(b, "plot written to bench/%s", name)
}

// ratioTable gives, for each recall target, each system's cheapest row
// reaching it (the smallest p95 in clock t among its rows at or above the
// target) and its latencies against the reference system's at the same
// target.
func ratioTable(rows []row, ref string, t times) string {
	var s strings.Builder
	s.WriteString("| recall ≥ | system | ef | recall | p50 | p95 | p99 | p50 / p95 / p99 vs " + ref + " |\n|---|---|---|---|---|---|---|---|\n")
	systems := []string{}
	for _, r := range rows {
		if !slices.Contains(systems, r.System) && t(r)[0] > 0 {
			systems = append(systems, r.System)
		}
	}
	for _, target := range []float64{0.95, 0.99, 0.995, 0.999} {
		refRow, refOK := cheapest(rows, ref, target, t)
		for _, sys := range systems {
			r, ok := cheapest(rows, sys, target, t)
			if !ok || r.Ef == 0 {
				continue
			}
			ratio := "—"
			if refOK && sys != ref {
				a, b := t(refRow), t(r)
				ratio = fmt.Sprintf("%.2f× / %.2f× / %.2f× faster", a[0]/b[0], a[1]/b[1], a[2]/b[2])
			}
			v := t(r)
			fmt.Fprintf(&s, "| %.3f | %s | %d | %.4f | %.0f µs | %.0f µs | %.0f µs | %s |\n", target, sys, r.Ef, r.Recall, v[0], v[1], v[2], ratio)
		}
	}
	return s.String()
}

// cheapest is system's row with the smallest p95 in clock t among those
// reaching recall target.
func cheapest(rows []row, system string, target float64, t times) (row, bool) {
	var best row
	found := false
	for _, r := range rows {
		if r.System == system && r.Recall >= target && t(r)[0] > 0 && (!found || t(r)[1] < t(best)[1]) {
			best, found = r, true
		}
	}
	return best, found
}

func table(rows []row) string {
	var s strings.Builder
	s.WriteString("| system | build | ef | p50 | p95 | p99 | CPU p50 | CPU p95 | CPU p99 | recall@10 |\n|---|---|---|---|---|---|---|---|---|---|\n")
	us := func(v float64) string {
		if v <= 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f µs", v)
	}
	for _, r := range rows {
		build := ""
		if r.BuildS > 0 {
			build = fmt.Sprintf("%.1f s", r.BuildS)
		}
		ef := fmt.Sprint(r.Ef)
		if r.Ef == 0 {
			ef = "—"
		}
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.4f |\n", r.System, build, ef,
			us(r.P50), us(r.P95), us(r.P99), us(r.CPU50), us(r.CPU95), us(r.CPU99), r.Recall)
	}
	return s.String()
}

// benchOurs builds the graph with AddBatch on each worker count of
// SOSTENUTO_BENCH_WORKERS (default "1,2"), reports build times and memory,
// and measures the last graph built with the quantized traversal (Search)
// and the float one (SearchFloat).
func benchOurs(b *testing.B, ds *dataset) []row {
	ids := make([]vector.ID, len(ds.data))
	for i := range ids {
		ids[i] = vid(i)
	}
	var x *vector.Index
	var build float64
	for _, w := range strings.Split(cmp.Or(os.Getenv("SOSTENUTO_BENCH_WORKERS"), "1,2"), ",") {
		workers, _ := strconv.Atoi(w)
		x = nil
		runtime.GC()
		before := heapInUse()
		x, _ = vector.New(vector.Config{Dim: benchDim, M: 16, EfConstruction: 64, EfSearch: 40})
		start := time.Now()
		if err := x.AddBatch(ids, ds.data, workers); err != nil {
			b.Fatal(err)
		}
		build = time.Since(start).Seconds()
		x.WaitSettled() // measure the settled index a serving node has (huge pages collapsed)
		perVec := float64(heapInUse()-before) / float64(len(ds.data))
		logf(b, "ours: build with %d worker(s) %.1f s; %.0f bytes per vector in the graph (raw vector %d bytes; %.2f× raw), of which %d bytes of code",
			workers, build, perVec, benchDim*4, perVec/float64(benchDim*4), x.CodeBytes())
	}
	logf(b, "ours: kernels: %s", vector.Kernels())
	var rows []row
	for _, sys := range []struct {
		name   string
		search func(q []float32, k, ef int, f vector.Filter) ([]vector.Result, error)
	}{{"Sostenuto HNSW, quantized traversal", x.Search}, {"Sostenuto HNSW, float traversal", x.SearchFloat}} {
		for _, ef := range efs {
			r := latencies(ds, 10, func(q []float32) []int32 {
				res, _ := sys.search(q, 10, ef, nil)
				out := make([]int32, len(res))
				for i, r := range res {
					out[i] = int32(binary.BigEndian.Uint32(r.ID[:4]))
				}
				return out
			})
			r.System, r.BuildS, r.Ef = sys.name, build, ef
			rows = append(rows, r)
			build = 0
		}
	}
	return rows
}

func benchCoder(b *testing.B, ds *dataset) (rows []row) {
	defer func() {
		if p := recover(); p != nil {
			logf(b, "coder/hnsw panicked: %v", p)
		}
	}()
	g := hnsw.NewGraph[int32]()
	g.M, g.EfSearch, g.Distance = 16, 64, hnsw.CosineDistance // EfSearch is also its construction breadth
	g.Rng = mrand.New(mrand.NewSource(1))
	start := time.Now()
	for i, v := range ds.data {
		g.Add(hnsw.MakeNode(int32(i), v))
	}
	build := time.Since(start).Seconds()
	for _, ef := range efs {
		g.EfSearch = ef
		r := latencies(ds, 10, func(q []float32) []int32 {
			res := g.Search(q, 10)
			out := make([]int32, len(res))
			for i, r := range res {
				out[i] = r.Key
			}
			return out
		})
		r.System, r.BuildS, r.Ef = "github.com/coder/hnsw v0.6.1", build, ef
		rows = append(rows, r)
		build = 0
	}
	return rows
}

// benchPython runs bench/peers/ann.py (hnswlib, faiss) on the same data.
func benchPython(b *testing.B, ds *dataset) []row {
	dir := b.TempDir()
	writeF32 := func(name string, vs [][]float32) {
		f, _ := os.Create(filepath.Join(dir, name))
		w := bufio.NewWriter(f)
		for _, v := range vs {
			binary.Write(w, binary.LittleEndian, v)
		}
		w.Flush()
		f.Close()
	}
	writeF32("data.f32", ds.data)
	writeF32("queries.f32", ds.queries)
	f, _ := os.Create(filepath.Join(dir, "truth.i32"))
	for _, t := range ds.truth {
		binary.Write(f, binary.LittleEndian, t)
	}
	f.Close()
	peers := "hnswlib"
	if os.Getenv("SOSTENUTO_BENCH_FAISS") != "" {
		peers = "hnswlib,faiss"
	}
	args := []string{"peers/ann.py", dir, fmt.Sprint(benchDim), "10", peers}
	for _, ef := range efs {
		args = append(args, fmt.Sprint(ef))
	}
	out, err := exec.Command("/usr/bin/python3", args...).Output()
	if err != nil {
		logf(b, "python peers unavailable (apt-get install python3-hnswlib python3-faiss): %v", err)
		return nil
	}
	var rows []row
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r row
		if json.Unmarshal([]byte(line), &r) == nil {
			rows = append(rows, r)
		}
	}
	for i := range rows {
		if i > 0 && rows[i].System == rows[i-1].System {
			rows[i].BuildS = 0
		}
	}
	return rows
}

// benchPgvector loads the data into PostgreSQL and measures pgvector's HNSW
// (m 16, ef_construction 64, built single-threaded) and an exact scan.
func benchPgvector(b *testing.B, ds *dataset) []row {
	ctx := context.Background()
	db := pgtest.NewEmptyDB(b, "")
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := pgxvec.RegisterTypes(ctx, conn); err != nil {
		b.Fatal(err)
	}
	for _, sql := range []string{
		fmt.Sprintf("CREATE TABLE bench_vec (id int PRIMARY KEY, embedding vector(%d))", benchDim),
		"ALTER TABLE bench_vec ALTER COLUMN embedding SET STORAGE PLAIN",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	rowsSrc := make([][]any, len(ds.data))
	for i, v := range ds.data {
		rowsSrc[i] = []any{int32(i), pgvector.NewVector(v)}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"bench_vec"}, []string{"id", "embedding"}, pgx.CopyFromRows(rowsSrc)); err != nil {
		b.Fatal(err)
	}
	for _, sql := range []string{"SET maintenance_work_mem = '1GB'", "SET max_parallel_maintenance_workers = 0", "ANALYZE bench_vec"} {
		conn.Exec(ctx, sql)
	}
	start := time.Now()
	if _, err := conn.Exec(ctx, "CREATE INDEX ON bench_vec USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"); err != nil {
		b.Fatal(err)
	}
	build := time.Since(start).Seconds()
	var rows []row
	query := func(sql string) func(q []float32) []int32 {
		return func(q []float32) []int32 {
			r, err := conn.Query(ctx, sql, pgvector.NewVector(q))
			if err != nil {
				b.Fatal(err)
			}
			ids, err := pgx.CollectRows(r, pgx.RowTo[int32])
			if err != nil {
				b.Fatal(err)
			}
			return ids
		}
	}
	for _, ef := range []int{20, 40, 60, 100, 200, 400} {
		conn.Exec(ctx, fmt.Sprintf("SET hnsw.ef_search = %d", ef))
		r := latencies(ds, 10, query("SELECT id FROM bench_vec ORDER BY embedding <=> $1 LIMIT 10"))
		r.System, r.BuildS, r.Ef = "pgvector 0.8.0 HNSW (pgx, prepared)", build, ef
		r.CPU50, r.CPU95, r.CPU99 = 0, 0, 0 // the search runs in the server
		rows = append(rows, r)
		build = 0
	}
	// Exact: a different statement text, with index scans off, on 50 queries.
	conn.Exec(ctx, "SET enable_indexscan = off")
	small := &dataset{data: ds.data, queries: ds.queries[:50], truth: ds.truth[:50]}
	r := latencies(small, 10, query("SELECT id FROM bench_vec ORDER BY embedding <=> $1 LIMIT 10 /* exact */"))
	r.System, r.CPU50, r.CPU95, r.CPU99 = "pgvector exact scan (50 queries)", 0, 0, 0
	rows = append(rows, r)
	return rows
}

// BenchmarkEngine measures the whole engine at benchN chunks: BM25 and
// hybrid latency, snapshot and restore.
func BenchmarkEngine(b *testing.B) {
	for b.Loop() {
		n := benchN()
		ds := makeVectors(n, 200)
		// Realistic text: passages drawn from the CISI abstracts (a real
		// vocabulary and term distribution), queries from CISI's queries.
		r := rand.New(rand.NewPCG(3, 3))
		dir, err := CISIDir()
		if err != nil {
			b.Fatal(err)
		}
		cisi, _ := LoadCISI(dir)
		cq, _ := LoadCISIQueries(dir)
		sentences := CISISentences(cisi)
		text := func() string {
			var s strings.Builder
			for range 4 {
				s.WriteString(sentences[r.IntN(len(sentences))])
				s.WriteString(". ")
			}
			return s.String()
		}
		cfg := index.DefaultConfig()
		e, _ := index.New(cfg)
		owners := make([]index.ID, 50)
		for i := range owners {
			owners[i] = index.ID(vid(1_000_000 + i))
		}
		var ops index.Ops
		for d := 0; d < n/10; d++ {
			ops.Documents = append(ops.Documents, index.Document{ID: index.ID(vid(2_000_000 + d)), OwnerID: owners[d%50], IsPublic: d%3 == 0, Title: "Doc"})
		}
		texts := make([]string, n)
		for i, v := range ds.data {
			texts[i] = text()
			ops.Upserts = append(ops.Upserts, index.Chunk{ID: index.ID(vid(i)), DocumentID: index.ID(vid(2_000_000 + i/10)), OwnerID: owners[(i/10)%50], Text: texts[i], PageStart: 1, PageEnd: 1, Version: 1, Vector: v})
		}
		ops.Position = index.Position{LSN: 1}
		heapBefore := heapInUse()
		start := time.Now()
		if err := e.Apply(ops); err != nil {
			b.Fatal(err)
		}
		logf(b, "engine build (graph + BM25) of %d chunks: %v", n, time.Since(start).Round(time.Millisecond))
		ops = index.Ops{}
		heapAfter := heapInUse()
		var textBytes countingWriter
		if err := e.WriteTextIndex(&textBytes); err != nil {
			b.Fatal(err)
		}
		textLen := 0
		for _, t := range texts {
			textLen += len(t)
		}
		raw := float64(n * cfg.Vector.Dim * 4)
		logf(b, "engine memory: %.0f MiB on the heap (texts held %.0f MiB, raw vectors %.0f MiB, BM25 postings as written %.0f MiB); heap / (raw vectors + BM25 index + texts) = %.2f",
			float64(heapAfter-heapBefore)/(1<<20), float64(textLen)/(1<<20), raw/(1<<20), float64(textBytes)/(1<<20),
			float64(heapAfter-heapBefore)/(raw+float64(textBytes)+float64(textLen)))
		measure := func(name string, q func(i int) index.Query) {
			runtime.GC()
			for i := range 20 { // warm up
				e.Search(q(i))
			}
			lat := make([]float64, 0, len(ds.queries))
			for i := range ds.queries {
				start := time.Now()
				if _, err := e.Search(q(i)); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, float64(time.Since(start).Microseconds()))
			}
			sort.Float64s(lat)
			logf(b, "%s: p50 %.0f µs, p95 %.0f µs, p99 %.0f µs", name, lat[len(lat)/2], lat[len(lat)*95/100], lat[len(lat)*99/100])
		}
		admin := index.Scope{Admin: true}
		student := index.Scope{User: owners[7], Teachers: []index.ID{owners[8]}}
		// Short questions: three content words of each CISI query.
		short := func(i int) string { return ContentWords(cq[i%len(cq)].Text, 3) }
		measure("BM25, 3 terms, admin scope", func(i int) index.Query {
			return index.Query{K: 10, Mode: index.ModeBM25, Text: short(i), Scope: admin}
		})
		measure("BM25, 3 terms, a student's scope", func(i int) index.Query {
			return index.Query{K: 10, Mode: index.ModeBM25, Text: short(i), Scope: student}
		})
		measure("hybrid, 3 terms, admin scope", func(i int) index.Query {
			return index.Query{K: 10, Mode: index.ModeHybrid, Text: short(i), Vector: ds.queries[i], Scope: admin}
		})
		measure("hybrid, 3 terms, a student's scope", func(i int) index.Query {
			return index.Query{K: 10, Mode: index.ModeHybrid, Text: short(i), Vector: ds.queries[i], Scope: student}
		})
		query := func(i int) string { return cq[i%len(cq)].Text }
		shorts, paragraphs := make([]string, len(ds.queries)), make([]string, len(ds.queries))
		for i := range ds.queries {
			shorts[i], paragraphs[i] = short(i), query(i)
		}
		measure("BM25 (a whole CISI query), admin scope", func(i int) index.Query {
			return index.Query{K: 10, Mode: index.ModeBM25, Text: query(i), Scope: admin}
		})
		measure("BM25 (a whole CISI query), a student's scope", func(i int) index.Query {
			return index.Query{K: 10, Mode: index.ModeBM25, Text: query(i), Scope: student}
		})
		measure("vector ef 40, k 10, admin scope", func(i int) index.Query {
			return index.Query{K: 10, Mode: index.ModeVector, Vector: ds.queries[i], Scope: admin, Ef: 40}
		})
		measure("vector ef 40, a student's scope", func(i int) index.Query {
			return index.Query{K: 10, Mode: index.ModeVector, Vector: ds.queries[i], Scope: student, Ef: 40}
		})
		measure("vector (default ef), admin scope", func(i int) index.Query {
			return index.Query{K: 10, Mode: index.ModeVector, Vector: ds.queries[i], Scope: admin}
		})
		measure("hybrid (vector + BM25 + RRF), admin scope", func(i int) index.Query {
			return index.Query{K: 10, Mode: index.ModeHybrid, Text: query(i), Vector: ds.queries[i], Scope: admin}
		})
		measure("hybrid, a student's scope (public + own + teacher's)", func(i int) index.Query {
			return index.Query{K: 10, Mode: index.ModeHybrid, Text: query(i), Vector: ds.queries[i], Scope: student}
		})
		path := filepath.Join(b.TempDir(), "snap")
		if keep := os.Getenv("SOSTENUTO_BENCH_SNAPSHOT"); keep != "" {
			path = keep // kept for BenchmarkRestore
		}
		f, _ := os.Create(path)
		start = time.Now()
		if err := e.WriteSnapshot(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
		fi, _ := os.Stat(path)
		logf(b, "snapshot: %v, %d MiB", time.Since(start).Round(time.Millisecond), fi.Size()>>20)
		f, _ = os.Open(path)
		start = time.Now()
		e2, err := index.ReadSnapshot(cfg, bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
		logf(b, "restore (graph and BM25 postings read whole): %v, %d chunks", time.Since(start).Round(time.Millisecond), e2.Len())
		// The Bleve peer last: its garbage would weigh on the rows after it.
		if build, p50, p95, p99, err := bleveRow(texts, shorts, 10); err == nil {
			logf(b, "peer: Bleve v2 scorch in memory, build %v; BM25, 3 terms: p50 %.0f µs, p95 %.0f µs, p99 %.0f µs", build.Round(time.Millisecond), p50, p95, p99)
			_, p50, p95, p99, _ = bleveRow(texts, paragraphs, 10)
			logf(b, "peer: Bleve v2 scorch in memory; BM25, a whole CISI query: p50 %.0f µs, p95 %.0f µs, p99 %.0f µs", p50, p95, p99)
		} else {
			b.Fatal(err)
		}

	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// BenchmarkRestore reads the snapshot BenchmarkEngine kept at
// $SOSTENUTO_BENCH_SNAPSHOT (for profiling the restore on its own).
func BenchmarkRestore(b *testing.B) {
	path := os.Getenv("SOSTENUTO_BENCH_SNAPSHOT")
	if path == "" {
		b.Skip("SOSTENUTO_BENCH_SNAPSHOT names no snapshot")
	}
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		e, err := index.ReadSnapshot(index.DefaultConfig(), bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
		logf(b, "restore: %v, %d chunks", time.Since(start).Round(time.Millisecond), e.Len())
	}
}

// logf prints a result line on stdout (the benchmark log truncates).
func logf(_ *testing.B, format string, args ...any) { fmt.Printf(format+"\n", args...) }

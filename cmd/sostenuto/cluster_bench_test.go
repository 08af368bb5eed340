package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// TestClusterBench measures replication on three processes at 100k chunks:
// commit-to-searchable lag on every node under steady ingest, apply
// throughput, snapshot install on a joining node and a follower's restart.
// It runs only with SOSTENUTO_BENCH_CLUSTER=1 (make bench-cluster); it
// prints figures and asserts only correctness. The nodes ship candidate
// neighbours (SOSTENUTO_SHIP_CANDIDATES) unless
// SOSTENUTO_BENCH_SHIP_CANDIDATES=false.
func TestClusterBench(t *testing.T) {
	if os.Getenv("SOSTENUTO_BENCH_CLUSTER") == "" {
		t.Skip("set SOSTENUTO_BENCH_CLUSTER=1 (make bench-cluster)")
	}
	chunks := 100_000
	if v, err := strconv.Atoi(os.Getenv("SOSTENUTO_BENCH_CHUNKS")); err == nil && v > 0 {
		chunks = v
	}
	const perTx = 500
	db := pgtest.NewEmptyDB(t, "")
	c := newTestCluster(t, db.URL)
	c.converge, c.poll = 30*time.Minute, time.Second
	if dir := os.Getenv("SOSTENUTO_BENCH_LOG_DIR"); dir != "" {
		t.Cleanup(func() { saveLogs(t, c, dir) })
	}
	opts := append(snapshotOpts(), "SOSTENUTO_LOG_LEVEL="+cmp.Or(os.Getenv("SOSTENUTO_BENCH_LOG_LEVEL"), "debug"),
		// Every node runs this release: the leader ships candidates
		// (SOSTENUTO_BENCH_SHIP_CANDIDATES=false measures without).
		"SOSTENUTO_SHIP_CANDIDATES="+cmp.Or(os.Getenv("SOSTENUTO_BENCH_SHIP_CANDIDATES"), "true"))
	n1 := c.add("n1", opts...)
	c.ready(n1)
	c.login(n1)
	c.add("n2", opts...)
	c.add("n3", opts...)
	c.waitFor("three voters", 60*time.Second, func() bool {
		s, err := c.status(n1)
		return err == nil && len(s.Nodes) == 3
	})
	teacher := makeUser(t, db.URL, "teacher@example.com", "teacher")

	conn, err := pgx.Connect(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// The test cluster commits asynchronously for speed (WAL flushed every
	// 200 ms, which would show as lag); the product's default is on.
	if _, err := conn.Exec(context.Background(), `SET synchronous_commit = on`); err != nil {
		t.Fatal(err)
	}
	insert := func(d, n int) {
		_, err := conn.Exec(context.Background(), `WITH d AS (INSERT INTO documents (id, owner_id, title, source_type, is_public)
				VALUES ($1, $2, 'Doc', 'text', true) RETURNING id)
			INSERT INTO chunks (document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding)
			SELECT d.id, $2, g, 'legato pedal chunk ' || g || ' of ' || $3, 5, 0, 10,
				(SELECT array_agg(random() - 0.5)::real[]::vector FROM generate_series(1, 768 + g * 0))
			FROM d, generate_series(0, $4 - 1) g`, uuid.New(), teacher, fmt.Sprint(d), n)
		if err != nil {
			t.Fatal(err)
		}
	}

	// Bulk: the knowledge base, as fast as PostgreSQL takes it: COPY in
	// transactions of 500 chunks with random 768-dim vectors. pgvector's own
	// HNSW index is dropped in this database: its maintenance (not
	// replication) would bound the load.
	if _, err := conn.Exec(context.Background(), `DROP INDEX IF EXISTS chunks_embedding_hnsw_idx`); err != nil {
		t.Fatal(err)
	}
	if err := pgxvec.RegisterTypes(context.Background(), conn); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	cpuBefore := map[string]float64{}
	for _, id := range []string{"n1", "n2", "n3"} {
		cpuBefore[id] = metrics(t, c.nodes[id].base)["process_cpu_seconds_total"]
	}
	start := time.Now()
	for d := 0; d < chunks/perTx; d++ {
		doc := uuid.New()
		tx, err := conn.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(context.Background(), `INSERT INTO documents (id, owner_id, title, source_type, is_public)
			VALUES ($1, $2, 'Doc', 'text', true)`, doc, teacher); err != nil {
			t.Fatal(err)
		}
		rows := make([][]any, perTx)
		for g := range rows {
			v := make([]float32, 768)
			for j := range v {
				v[j] = float32(rng.NormFloat64())
			}
			rows[g] = []any{doc, teacher, g, fmt.Sprintf("legato pedal chunk %d of %d", g, d), 5, 0, 10, pgvector.NewVector(v)}
		}
		_, err = tx.CopyFrom(context.Background(), pgx.Identifier{"chunks"},
			[]string{"document_id", "owner_id", "ordinal", "text", "token_count", "char_start", "char_end", "embedding"}, pgx.CopyFromRows(rows))
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ingested := time.Since(start)
	c.converged("after the bulk ingest")
	all := time.Since(start)
	fmt.Printf("bulk ingest: %d chunks in %d transactions: committed in %v (%.0f chunks/s, PostgreSQL-bound), on every node %v after the first commit (%.0f chunks/s end to end)\n",
		chunks, chunks/perTx, ingested.Round(time.Millisecond), float64(chunks)/ingested.Seconds(), all.Round(time.Millisecond), float64(chunks)/all.Seconds())
	before := map[string]map[string]float64{}
	for _, id := range []string{"n1", "n2", "n3"} {
		m := metrics(t, c.nodes[id].base)
		before[id] = m
		sum, count := m[`sostenuto_raft_apply_seconds_sum{kind="ops"}`], m[`sostenuto_raft_apply_seconds_count{kind="ops"}`]
		fmt.Printf("%s: apply: %.0f entries (transactions and heartbeats) in %.2f s of applying: %.0f chunks/s\n", id, count, sum, float64(chunks)/sum)
		cpu := m["process_cpu_seconds_total"] - cpuBefore[id]
		fmt.Printf("%s: CPU during the bulk phase: %.1f s, %.0f µs per chunk\n", id, cpu, 1e6*cpu/float64(chunks))
	}

	// Steady: 10 transactions of 10 chunks (SOSTENUTO_BENCH_STEADY_CHUNKS)
	// a second for 30 s; lag exactly from each node's per-transaction
	// "searchable" lines (debug, the default log level here), and as
	// before from its commit-to-searchable histogram (interpolated inside
	// a bucket: 512–1024 ms is one bucket).
	perSteady := 10
	if v, err := strconv.Atoi(os.Getenv("SOSTENUTO_BENCH_STEADY_CHUNKS")); err == nil && v > 0 {
		perSteady = v
	}
	tick := time.NewTicker(100 * time.Millisecond)
	steady, writes := time.Now(), make([]writerTx, 0, 300)
	for d := range 300 {
		<-tick.C
		w := writerTx{start: time.Now()}
		insert(chunks+d, perSteady)
		w.end = time.Now()
		writes = append(writes, w)
	}
	tick.Stop()
	c.converged("after the steady ingest")
	steadyReport(c, steady, writes)
	for _, id := range []string{"n1", "n2", "n3"} {
		m := metrics(t, c.nodes[id].base)
		diff := map[string]float64{}
		for k, v := range m {
			diff[k] = v - before[id][k]
		}
		h := "sostenuto_index_commit_to_apply_seconds"
		fmt.Printf("%s: steady ingest (%d chunks/s in %d-chunk transactions): commit-to-searchable p50 %.1f ms, p95 %.1f ms, p99 %.1f ms over %.0f transactions; %.0f snapshots written\n",
			id, 10*perSteady, perSteady, histQuantile(diff, h, 0.5)*1000, histQuantile(diff, h, 0.95)*1000, histQuantile(diff, h, 0.99)*1000, diff[h+"_count"], diff["sostenuto_raft_snapshots_total"])
		ls := "sostenuto_raft_log_store_seconds"
		fmt.Printf("%s: steady: raft log store p50 %.1f ms, p99 %.1f ms, max bucket %.0f ms over %.0f writes\n",
			id, histQuantile(diff, ls, 0.5)*1000, histQuantile(diff, ls, 0.99)*1000, histQuantile(diff, ls, 1)*1000, diff[ls+"_count"])
	}

	if dir := os.Getenv("SOSTENUTO_BENCH_LOG_DIR"); dir != "" {
		saveLogs(t, c, filepath.Join(dir, "steady")) // before a restart empties a node's log
	}

	// Snapshot install: a fourth node joins the loaded cluster.
	start = time.Now()
	n4 := c.add("n4", opts...)
	c.converged("n4 joined")
	fmt.Printf("join of n4 at %d chunks: converged in %v; %s\n", chunks, time.Since(start).Round(time.Millisecond), logLine(n4.logs.String(), "installed an index snapshot"))
	m := metrics(t, n4.base)
	fmt.Printf("n4: snapshot restore %.2f s\n", m["sostenuto_raft_restore_seconds"])
	for _, id := range []string{"n1", "n2", "n3"} {
		m := metrics(t, c.nodes[id].base)
		fmt.Printf("%s: last snapshot written %.0f MiB in %.2f s\n", id, m["sostenuto_raft_snapshot_bytes"]/(1<<20), m["sostenuto_raft_snapshot_seconds"])
	}

	// Restart: a follower comes back from its data directory.
	lead := c.leader()
	var f *cnode
	for _, id := range []string{"n1", "n2", "n3"} {
		if c.nodes[id] != lead {
			f = c.nodes[id]
			break
		}
	}
	c.kill(f)
	start = time.Now()
	c.start(f)
	c.ready(f)
	ready := time.Since(start)
	c.converged("after the restart")
	fmt.Printf("restart of %s at %d chunks: ready in %v, converged in %v; %s\n", f.id, chunks, ready.Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond), logLine(f.logs.String(), "installed an index snapshot"))
}

// snapshotOpts sets how often the nodes snapshot: every 256 log entries
// (checked every 2 s) unless SOSTENUTO_BENCH_SNAPSHOT_THRESHOLD says
// otherwise; "off" keeps the product's defaults (8,192 entries, checked
// every 120 s), so no snapshot lands in the steady phase.
func snapshotOpts() []string {
	switch v := cmp.Or(os.Getenv("SOSTENUTO_BENCH_SNAPSHOT_THRESHOLD"), "256"); v {
	case "off":
		return nil
	default:
		return []string{"SOSTENUTO_SNAPSHOT_THRESHOLD=" + v, "SOSTENUTO_SNAPSHOT_INTERVAL=2s"}
	}
}

// saveLogs writes every node's log to dir (SOSTENUTO_BENCH_LOG_DIR), to
// correlate slow entries with snapshots, slow log stores and GC.
func saveLogs(t *testing.T, c *testCluster, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Log(err)
		return
	}
	for id, n := range c.nodes {
		if err := os.WriteFile(filepath.Join(dir, id+".log"), []byte(n.logs.String()), 0o644); err != nil {
			t.Log(err)
		}
	}
}

func logLine(logs, what string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, what) {
			return l
		}
	}
	return "(no " + what + " line)"
}

// metrics reads a node's /metrics into name{labels} → value.
func metrics(t *testing.T, base string) map[string]float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// histQuantile estimates a quantile of a Prometheus histogram by linear
// interpolation inside its bucket.
func histQuantile(m map[string]float64, name string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	for k, v := range m {
		if !strings.HasPrefix(k, name+`_bucket{le="`) {
			continue
		}
		le := strings.TrimSuffix(strings.TrimPrefix(k, name+`_bucket{le="`), `"}`)
		f, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			f, err = math.Inf(1), nil
		}
		if err == nil {
			bs = append(bs, bucket{f, v})
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return math.NaN()
	}
	rank := q * bs[len(bs)-1].n
	prevLe, prevN := 0.0, 0.0
	for _, b := range bs {
		if b.n >= rank {
			if math.IsInf(b.le, 1) {
				return prevLe
			}
			return prevLe + (b.le-prevLe)*(rank-prevN)/max(b.n-prevN, 1)
		}
		prevLe, prevN = b.le, b.n
	}
	return prevLe
}

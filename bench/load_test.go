package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// BenchmarkChatLoad puts /api/chat/query of one node on its embedded
// defaults (local index, hash embedder, extractive answers) under an open
// load (constant arrival rate, vegeta) over a knowledge base of 100k chunks
// of CISI text: 50, 100 and 200 users each asking a question a second, for
// SOSTENUTO_BENCH_SECONDS (20) each, with the cache off and on. It prints
// latency percentiles, errors, the cache hit rate and where the time went
// (the answers' own timings). The index is built and snapshotted first
// (buildSnapshot); the measured nodes snapshot at the node's default
// threshold unless SOSTENUTO_BENCH_SNAPSHOT_THRESHOLD says otherwise
// (sessions 2-10 measured at 128).
//
//	SOSTENUTO_TEST_DATABASE_URL_FILE=$PWD/.data/test/database_url \
//	  go test ./bench -run '^$' -bench ChatLoad -benchtime 1x -timeout 60m
func BenchmarkChatLoad(b *testing.B) {
	for b.Loop() {
		chatLoad(b)
	}
}

func chatLoad(b *testing.B) {
	n := 100_000
	if v := os.Getenv("SOSTENUTO_BENCH_CHUNKS"); v != "" {
		fmt.Sscan(v, &n)
	}
	seconds := 20
	if v := os.Getenv("SOSTENUTO_BENCH_SECONDS"); v != "" {
		fmt.Sscan(v, &seconds)
	}
	dir, err := CISIDir()
	if err != nil {
		b.Fatal(err)
	}
	docs, _ := LoadCISI(dir)
	queries, _ := LoadCISIQueries(dir)
	sentences := CISISentences(docs)
	for i := range sentences {
		sentences[i] += "."
	}
	db := pgtest.NewEmptyDB(b, "")
	bin := build(b, "../cmd/sostenuto")
	dataDir := b.TempDir()
	migrate := exec.Command(bin, "migrate")
	migrate.Env = append(cleanEnv(), "SOSTENUTO_DATABASE_URL="+db.URL, "SOSTENUTO_DATA_DIR="+dataDir)
	if out, err := migrate.CombinedOutput(); err != nil {
		b.Fatalf("migrate: %v\n%s", err, out)
	}

	// The knowledge base: 20 teachers with n/100 documents of 100 chunks
	// each (a third public), 200 students each linked to two teachers.
	start := time.Now()
	perDoc := 100
	students := seedLibrary(b, db.URL, 20, 200, n/perDoc, perDoc, sentences).students
	logf(b, "knowledge base: %d chunks in %d documents loaded (and indexed by pgvector) in %v", n, n/perDoc, time.Since(start).Round(time.Second))

	questions := make([]string, len(queries))
	for i, q := range queries {
		questions[i] = "What is known about " + ContentWords(q.Text, 5) + "?"
	}

	buildSnapshot(b, bin, db.URL, dataDir)
	threshold := "SOSTENUTO_SNAPSHOT_THRESHOLD=" + cmp.Or(os.Getenv("SOSTENUTO_BENCH_SNAPSHOT_THRESHOLD"), "8192")
	logf(b, "measured nodes: %s", threshold)
	for _, cacheOn := range []bool{false, true} {
		entries := "0"
		if cacheOn {
			entries = "10000"
		}
		base, node, stop := startNodeProc(b, bin, db.URL, dataDir, "SOSTENUTO_CACHE_ENTRIES="+entries, threshold)
		waitHolds(b, base, n)
		tokens := make([]string, len(students))
		for i := range students {
			tokens[i] = login(b, base, fmt.Sprintf("student%d@example.com", i))
		}
		// Warm-up, not reported: a fresh node's first seconds (heap growth,
		// cold caches, a just-restored snapshot) are not its steady state.
		runLoad(b, base, tokens[:20], questions, 20, 5*time.Second, cacheOn, nil)
		for _, users := range []int{50, 100, 200} {
			runLoad(b, base, tokens[:users], questions, users, time.Duration(seconds)*time.Second, cacheOn, meter(b, db.URL, node))
		}
		stop()
	}
}

// meter reads how many transactions the database has committed and
// rolled back (pg_stat_database: every statement outside a transaction,
// and a pipelined batch, is one; a round trip each on the request path),
// after waiting out the statistics' flush (idle backends flush within 10 s),
// and the CPU time the node (pid) and the database's backends have used
// (cpu_test.go).
func meter(b *testing.B, url string, pid int) func() reading {
	return func() reading {
		time.Sleep(11 * time.Second)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		r := reading{node: cpuTicks(pid), backends: backendTicks(ctx, b, conn)}
		if err := conn.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&r.xacts); err != nil {
			b.Fatal(err)
		}
		return r
	}
}

// loadStats is what one load phase saw.
type loadStats struct {
	lat, hitLat, missLat            []float64
	embedMs, searchMs, llmMs, srvMs float64
	errs, hits, answers             int
	// sourced counts the answers that cite at least one passage: a phase
	// whose answers cite nothing measured an empty search.
	sourced int
}

// take records one response.
func (st *loadStats) take(res *vegeta.Result) {
	ms := float64(res.Latency.Microseconds()) / 1000
	st.lat = append(st.lat, ms)
	if res.Code != 200 {
		st.errs++
		return
	}
	var a struct {
		Cached  bool              `json:"cached"`
		Sources []json.RawMessage `json:"sources"`
		Timings struct {
			Embed  float64 `json:"embed_ms"`
			Search float64 `json:"search_ms"`
			LLM    float64 `json:"llm_ms"`
		} `json:"timings"`
	}
	if json.Unmarshal(res.Body, &a) != nil {
		return
	}
	st.answers++
	if len(a.Sources) > 0 {
		st.sourced++
	}
	if a.Cached {
		st.hits++
		st.hitLat = append(st.hitLat, ms)
	} else {
		st.missLat = append(st.missLat, ms)
	}
	st.embedMs += a.Timings.Embed
	st.searchMs += a.Timings.Search
	st.llmMs += a.Timings.LLM
	st.srvMs += ms
}

// runLoad sends users requests a second (each user one question a second)
// for d and, when xacts is set (it reads the database's transaction count),
// reports.
func runLoad(b *testing.B, base string, tokens, questions []string, users int, d time.Duration, cacheOn bool, xacts func() reading) {
	r := rand.New(rand.NewPCG(uint64(users), 1))
	targeter := func(t *vegeta.Target) error {
		i := r.IntN(len(tokens))
		// Each user keeps to a handful of questions (a class asks the same
		// things), so repeats happen.
		q := questions[(i*3+r.IntN(4))%len(questions)]
		body, _ := json.Marshal(map[string]any{"query": q})
		t.Method, t.URL, t.Body = "POST", base+"/api/chat/query", body
		t.Header = http.Header{"Authorization": {"Bearer " + tokens[i]}, "Content-Type": {"application/json"}}
		return nil
	}
	var before reading
	if xacts != nil {
		before = xacts()
	}
	attacker := vegeta.NewAttacker(vegeta.Timeout(30*time.Second), vegeta.KeepAlive(true), vegeta.MaxWorkers(uint64(4*users)))
	var st loadStats
	for res := range attacker.Attack(targeter, vegeta.Rate{Freq: users, Per: time.Second}, d, "chat") {
		st.take(res)
	}
	if xacts != nil {
		st.report(b, users, cacheOn, xacts().since(before))
	}
}

// report logs a phase's row: latency percentiles (of hits and misses apart
// when the cache is on), errors, hit rate, transactions per request and
// where the time went; then the CPU the node and the database's backends
// used per request.
func (st *loadStats) report(b *testing.B, users int, cacheOn bool, used reading) {
	pct := func(lat []float64) string {
		if len(lat) == 0 {
			return "—"
		}
		sort.Float64s(lat)
		q := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		return fmt.Sprintf("%.1f / %.1f / %.1f", q(0.5), q(0.95), q(0.99))
	}
	cache := "off"
	if cacheOn {
		cache = "on"
	}
	per := func(v float64) float64 { return v / float64(max(st.answers, 1)) }
	logf(b, "| %d | %s | %d | %s | %s | %s | %d | %.0f %% | %.2f | embed %.2f, search %.2f, answer %.2f, rest %.2f |",
		users, cache, len(st.lat), pct(st.lat), pct(st.hitLat), pct(st.missLat), st.errs, 100*float64(st.hits)/float64(max(st.answers, 1)),
		float64(used.xacts)/float64(max(len(st.lat), 1)), per(st.embedMs), per(st.searchMs), per(st.llmMs), per(st.srvMs-st.embedMs-st.searchMs-st.llmMs))
	logf(b, "  CPU per request (ms): node %.3f, PostgreSQL backends %.3f; answers citing a passage: %.0f %%", used.nodeMs()/float64(max(len(st.lat), 1)),
		used.backendsMs()/float64(max(len(st.lat), 1)), 100*float64(st.sourced)/float64(max(st.answers, 1)))
}

// buildSnapshot indexes the knowledge base on a node that snapshots every
// 128 entries and stops it once it has written a snapshot, so the measured
// nodes start from that snapshot at the node's default threshold (8192, or
// SOSTENUTO_BENCH_SNAPSHOT_THRESHOLD): a 100k snapshot streamed every
// minute or so (the keepalives the chats' writes cause are log entries)
// took about a fifth of the node's CPU under load, which a node on its
// defaults does not spend.
func buildSnapshot(b *testing.B, bin, dbURL, dataDir string) {
	start := time.Now()
	base, _, stop := startNodeProc(b, bin, dbURL, dataDir)
	defer stop()
	for scrape(b, base)["sostenuto_raft_snapshots_total"] < 1 {
		if time.Since(start) > 10*time.Minute {
			b.Fatal("no snapshot within 10 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}
	logf(b, "index built and snapshotted in %v", time.Since(start).Round(time.Second))
}

// scrape reads a node's /metrics into name{labels} → value.
func scrape(b *testing.B, base string) map[string]float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// waitHolds waits until the node's index holds n chunks (GET
// /api/cluster/status, as the seeded administrator): a node is ready
// within its lag bound, and a phase measured on a part of the library
// would search less than it claims.
func waitHolds(b *testing.B, base string, n int) {
	token := login(b, base, "admin0@example.com")
	start := time.Now()
	for {
		req, _ := http.NewRequest("GET", base+"/api/cluster/status", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var st struct {
			Chunks int `json:"chunks"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("cluster status: %d %v", resp.StatusCode, err)
		}
		if st.Chunks == n {
			logf(b, "the node's index holds all %d chunks (%v after ready)", n, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("the node's index holds %d chunks of %d after 10 minutes", st.Chunks, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func startNode(b *testing.B, bin, dbURL, dataDir string, env ...string) (string, func()) {
	base, _, stop := startNodeProc(b, bin, dbURL, dataDir, env...)
	return base, stop
}

// startNodeProc is startNode, also returning the node's process id.
func startNodeProc(b *testing.B, bin, dbURL, dataDir string, env ...string) (string, int, func()) {
	port := freePort()
	raft := fmt.Sprintf("127.0.0.1:%d", freePort())
	cmd := exec.Command(bin, "serve")
	// env comes last: a caller's setting overrides these (exec keeps the
	// last value of a key).
	cmd.Env = append(append(cleanEnv(), noRateLimits...), "SOSTENUTO_DATABASE_URL="+dbURL, fmt.Sprintf("SOSTENUTO_LISTEN=127.0.0.1:%d", port),
		"SOSTENUTO_DATA_DIR="+dataDir, "SOSTENUTO_RAFT_BIND="+raft, "SOSTENUTO_LOG_LEVEL=warn", "SOSTENUTO_RECALL_EVERY=0s",
		"SOSTENUTO_ANTI_ENTROPY_EVERY=0s", "SOSTENUTO_SNAPSHOT_THRESHOLD=128", "SOSTENUTO_SNAPSHOT_INTERVAL=1s")
	cmd.Env = append(cmd.Env, env...)
	cmd.Env = append(cmd.Env, raftTLS(b, bin, filepath.Join(dataDir, "certs"), "n1")...)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	started := time.Now()
	for {
		if resp, err := http.Get(base + "/api/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Since(started) > 10*time.Minute {
			stop()
			b.Fatalf("node not ready:\n%s", logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	logf(b, "node ready in %v", time.Since(started).Round(time.Second))
	return base, cmd.Process.Pid, stop
}

func login(b *testing.B, base, email string) string {
	body, _ := json.Marshal(map[string]string{"email": email, "password": "correct horse battery"})
	resp, err := http.Post(base+"/api/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if out.AccessToken == "" {
		b.Fatalf("login %s: %d", email, resp.StatusCode)
	}
	return out.AccessToken
}

// noRateLimits turns the node's rate limits off: the load comes from one
// address and a few users.
var noRateLimits = []string{"SOSTENUTO_RATE_LIMIT_IP=off", "SOSTENUTO_RATE_LIMIT_USER=off", "SOSTENUTO_RATE_LIMIT_AUTH=off", "SOSTENUTO_RATE_LIMIT_CHAT=off"}

// cleanEnv drops the benchmark's own SOSTENUTO_BENCH_* knobs (a node
// refuses settings it does not know).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOSTENUTO_BENCH_") {
			env = append(env, kv)
		}
	}
	return env
}

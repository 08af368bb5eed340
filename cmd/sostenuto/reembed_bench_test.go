package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/store"
)

// openAIServer is a local server speaking the OpenAI /v1/embeddings wire
// format: {"model","input":[...]} → {"data":[{"index","embedding"}]},
// its vectors the hash embedder's at dim dimensions.
func openAIServer(t *testing.T, dim int) (*httptest.Server, *int64) {
	var mu sync.Mutex
	var calls int64
	h := embed.Hash{Dims: dim}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if r.URL.Path != "/v1/embeddings" || json.NewDecoder(r.Body).Decode(&in) != nil || in.Model != "bench-e5" {
			http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		vs, err := h.Embed(r.Context(), in.Input)
		if err != nil {
			http.Error(w, `{"error":{"message":"empty input"}}`, http.StatusBadRequest)
			return
		}
		type item struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
			Object    string    `json:"object"`
		}
		out := struct {
			Object string `json:"object"`
			Data   []item `json:"data"`
			Model  string `json:"model"`
		}{Object: "list", Model: in.Model}
		for i, v := range vs {
			out.Data = append(out.Data, item{Index: i, Embedding: v, Object: "embedding"})
		}
		mu.Lock()
		calls++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

var benchWords = []string{"legato", "staccato", "pedal", "scale", "arpeggio", "chord", "tempo", "rubato", "phrase", "fingering", "thumb", "wrist",
	"metronome", "dynamics", "forte", "piano", "crescendo", "etude", "nocturne", "sonata", "octave", "trill", "voicing", "balance"}

// loadHashChunks COPYs n chunks with real words and the default hash
// embedder's 768-dimensional vectors, 500 a transaction.
func loadHashChunks(t *testing.T, url string, owner uuid.UUID, n int) {
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := pgxvec.RegisterTypes(context.Background(), conn); err != nil {
		t.Fatal(err)
	}
	const perTx = 500
	for d := 0; d < n/perTx; d++ {
		doc := uuid.New()
		tx, err := conn.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(context.Background(), `INSERT INTO documents (id, owner_id, title, source_type, is_public)
			VALUES ($1, $2, 'Method book', 'text', true)`, doc, owner); err != nil {
			t.Fatal(err)
		}
		rows := make([][]any, perTx)
		for g := range rows {
			k := d*perTx + g
			w := benchWords
			text := fmt.Sprintf("%s %s %s with the %s: exercise %d", w[k%24], w[(k/24)%24], w[(k/576)%24], w[(k/7)%24], k)
			v, _ := embed.Hash{}.Embed(context.Background(), []string{text})
			rows[g] = []any{doc, owner, g, text, 8, 0, 10, pgvector.NewVector(v[0])}
		}
		if _, err := tx.CopyFrom(context.Background(), pgx.Identifier{"chunks"},
			[]string{"document_id", "owner_id", "ordinal", "text", "token_count", "char_start", "char_end", "embedding"}, pgx.CopyFromRows(rows)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// answer is one request of the load: when it ended, how long it took,
// and what answered it.
type answer struct {
	end     time.Time
	took    time.Duration
	chat    bool
	failed  string
	node    string
	lsn     index.LSN
	model   string
	source  string
	hasHits bool
}

// load sends searches (and every tenth request a chat question) to the
// nodes in turn at rate requests a second until stop, recording every
// answer.
type load struct {
	c       *testCluster
	token   string
	rate    int
	mu      sync.Mutex
	answers []answer
}

func (l *load) run(stop <-chan struct{}) {
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(l.rate))
	defer tick.Stop()
	nodes := []*cnode{l.c.nodes["n1"], l.c.nodes["n2"], l.c.nodes["n3"]}
	w := benchWords
	for i := 0; ; i++ {
		select {
		case <-stop:
			wg.Wait()
			return
		case <-tick.C:
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			q := w[i%24] + " " + w[(i/24)%24] + " " + w[(i*7)%24] // 576 distinct: most miss the caches
			a := l.one(nodes[i%3], q, i%10 == 9)
			l.mu.Lock()
			l.answers = append(l.answers, a)
			l.mu.Unlock()
		}(i)
	}
}

// one sends one search or chat question.
func (l *load) one(n *cnode, q string, chat bool) answer {
	path, body := "/api/search", map[string]any{"query": q, "k": 10}
	if chat {
		path, body = "/api/chat/query", map[string]any{"query": "How do I practise " + q + "?", "k": 5}
	}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", n.base+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	a := answer{took: time.Since(start), chat: chat, node: n.id}
	if err != nil {
		a.end, a.failed = time.Now(), err.Error()
		return a
	}
	defer resp.Body.Close()
	var out struct {
		Results []json.RawMessage `json:"results"`
		Sources []json.RawMessage `json:"sources"`
		Index   struct {
			LSN    string `json:"lsn"`
			Source string `json:"source"`
			Model  string `json:"embedding_model"`
		} `json:"index"`
		Model string `json:"embedding_model"`
	}
	derr := json.NewDecoder(resp.Body).Decode(&out)
	a.took, a.end = time.Since(start), time.Now()
	if resp.StatusCode != 200 || derr != nil {
		a.failed = fmt.Sprintf("status %d %v", resp.StatusCode, derr)
		return a
	}
	a.model, a.source, a.hasHits = out.Index.Model, out.Index.Source, len(out.Results) > 0
	if chat {
		a.model, a.hasHits = out.Model, len(out.Sources) > 0
	}
	if out.Index.LSN != "" {
		a.lsn, _ = index.ParseLSN(out.Index.LSN)
	}
	return a
}

// pct is the q-quantile of ds.
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// heap reads each node's Go heap in use (MiB).
func (c *testCluster) heap(t *testing.T) map[string]float64 {
	out := map[string]float64{}
	for _, id := range []string{"n1", "n2", "n3"} {
		out[id] = metrics(t, c.nodes[id].base)["go_memstats_heap_inuse_bytes"] / (1 << 20)
	}
	return out
}

// TestReembedBench measures switching the embedding model on three nodes
// holding 20,000 chunks under search and chat load: from the hash
// embedder at 768 dimensions to 256, then to an OpenAI-compatible
// server's model (a local server speaking the wire format) at 384. It
// runs only with SOSTENUTO_BENCH_REEMBED=1; it prints figures and
// asserts zero failed requests and that no answer came from a model other
// than the one active at its log position.
func TestReembedBench(t *testing.T) {
	if os.Getenv("SOSTENUTO_BENCH_REEMBED") == "" {
		t.Skip("set SOSTENUTO_BENCH_REEMBED=1")
	}
	chunks := 20_000
	if v, err := strconv.Atoi(os.Getenv("SOSTENUTO_BENCH_CHUNKS")); err == nil && v > 0 {
		chunks = v
	}
	rate := os.Getenv("SOSTENUTO_BENCH_REEMBED_RATE") // chunks/s per build; "0": unbounded
	if rate == "" {
		rate = "0"
	}
	oai, calls := openAIServer(t, 384)
	db := pgtest.NewEmptyDB(t, "")
	c := newTestCluster(t, db.URL)
	c.converge, c.poll = 10*time.Minute, time.Second
	embedders := "hash256=hash:256,e5=openai:384:bench-e5@" + oai.URL
	opts := []string{"SOSTENUTO_EMBEDDERS=" + embedders, "SOSTENUTO_REEMBED_RATE=" + rate,
		"SOSTENUTO_REEMBED_BATCH=256", "SOSTENUTO_SNAPSHOT_THRESHOLD=1024", "SOSTENUTO_SNAPSHOT_INTERVAL=5s"}
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
	loadHashChunks(t, db.URL, teacher, chunks)
	c.converged("after loading")
	tok := registerUser(t, n1.base, "student@example.com")
	var student uuid.UUID
	conn, err := pgx.Connect(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn.QueryRow(context.Background(), `SELECT id FROM users WHERE email = 'student@example.com'`).Scan(&student)
	conn.Close(context.Background())
	fallbackLatency(t, db.URL, student, "sostenuto-hash-v1", embed.Hash{}, 768)
	for _, step := range []struct{ from, to string }{{"sostenuto-hash-v1", "hash256"}, {"hash256", "e5"}} {
		t.Run(step.to, func(t *testing.T) {
			defer c.use(t)()
			c.benchSwitch(t, tok, embedders, step.from, step.to, chunks)
		})
	}
	fmt.Printf("OpenAI-compatible server: %d /v1/embeddings calls\n", *calls)
	fallbackLatency(t, db.URL, student, "e5", embed.Hash{Dims: 384}, 384)
}

// switchTimes are the moments of one switch.
type switchTimes struct {
	start, switched, everywhere time.Time
}

// benchSwitch runs the load for 15 s, starts the build, waits until every
// node serves the new model, runs 15 s more, and reports.
func (c *testCluster) benchSwitch(t *testing.T, tok, embedders, from, to string, chunks int) {
	l := &load{c: c, token: tok, rate: 30}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { l.run(stop); close(done) }()
	heapBefore := c.heap(t)
	time.Sleep(15 * time.Second)
	var ts switchTimes
	ts.start = time.Now()
	c.reembedCLI(embedders, "start", to)
	peak := map[string]float64{}
	c.waitFor("the switch in PostgreSQL", 20*time.Minute, func() bool {
		for id, h := range c.heap(t) {
			peak[id] = max(peak[id], h)
		}
		return !building(t, c.url, to)
	})
	ts.switched = time.Now()
	c.waitFor("every node on "+to, time.Minute, func() bool {
		for _, id := range []string{"n1", "n2", "n3"} {
			if e, err := c.embeddingOf(c.nodes[id]); err != nil || e.Active != to {
				return false
			}
		}
		return true
	})
	ts.everywhere = time.Now()
	time.Sleep(15 * time.Second)
	heapAfter := c.heap(t)
	close(stop)
	<-done
	c.report(t, l.answers, ts, from, to, chunks)
	fmt.Printf("%s → %s heap in use (MiB): before %v, peak during the build %v, 15 s after the switch %v\n", from, to, heapBefore, peak, heapAfter)
}

// report prints the figures of one switch and checks every answer.
func (c *testCluster) report(t *testing.T, answers []answer, ts switchTimes, from, to string, chunks int) {
	phases := map[string][]time.Duration{}
	failed, chats := 0, 0
	var lastOld, firstNew index.LSN
	for _, a := range answers {
		if a.failed != "" {
			failed++
			t.Errorf("%s: failed: %s", a.node, a.failed)
			continue
		}
		if a.chat {
			chats++
		}
		if a.model != from && a.model != to {
			t.Errorf("%s answered with %q (neither %s nor %s)", a.node, a.model, from, to)
		}
		phase := "during"
		switch {
		case a.end.Before(ts.start):
			phase = "before"
		case a.end.After(ts.everywhere):
			phase = "after"
		}
		phases[phase] = append(phases[phase], a.took)
		if a.chat || a.lsn == 0 || a.source != "local" {
			continue // the position check holds for the index's answers
		}
		if a.model == from && a.lsn > lastOld {
			lastOld = a.lsn
		}
		if a.model == to && (firstNew == 0 || a.lsn < firstNew) {
			firstNew = a.lsn
		}
	}
	if firstNew != 0 && lastOld >= firstNew {
		t.Errorf("an answer of %s at %s, after one of %s at %s: not one switch position", from, lastOld, to, firstNew)
	}
	fmt.Printf("%s → %s: %d requests (%d chat), %d failed; old model answered up to %s, new from %s\n", from, to, len(answers), chats, failed, lastOld, firstNew)
	for _, p := range []string{"before", "during", "after"} {
		ds := phases[p]
		fmt.Printf("  %-6s %5d answers: p50 %v p95 %v p99 %v\n", p, len(ds), pct(ds, 0.5).Round(100*time.Microsecond),
			pct(ds, 0.95).Round(100*time.Microsecond), pct(ds, 0.99).Round(100*time.Microsecond))
	}
	build := ts.switched.Sub(ts.start)
	fmt.Printf("  build %v (%.0f chunks/s, %d chunks); PostgreSQL switch to every node serving %s: %v\n", build.Round(time.Millisecond),
		float64(chunks)/build.Seconds(), chunks, to, ts.everywhere.Sub(ts.switched).Round(time.Millisecond))
}

// fallbackLatency times PostgreSQL's vector search as the product runs it
// (store.SearchVector as user, Row Level Security on) for the active
// model: pgvector's HNSW over chunks.embedding for the column's model, the
// model's partial HNSW expression index over chunk_embeddings otherwise
// (made by the build before its switch).
func fallbackLatency(t *testing.T, url string, user uuid.UUID, model string, emb embed.Embedder, dim int) {
	ctx := context.Background()
	pool, err := store.OpenPool(ctx, url, store.AppRole)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st := store.New(pool)
	var ds []time.Duration
	for i := range 30 {
		v, err := emb.Embed(ctx, []string{benchWords[i%24] + " " + benchWords[(i*5)%24]})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := st.SearchVector(ctx, user, model, v[0], 50, 100, store.SearchFilter{Knowledge: true, Annotations: true}); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	fmt.Printf("PostgreSQL vector search (%s, %d dims, as a user): p50 %v p95 %v\n", model, dim, pct(ds, 0.5).Round(10*time.Microsecond), pct(ds, 0.95).Round(10*time.Microsecond))
}

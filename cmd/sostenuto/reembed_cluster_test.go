package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server"
)

// reembedEnv configures a node with the hash embedder at 256 dimensions
// beside the default, a bounded build rate, short job leases (a killed
// node's build job is taken over quickly) and frequent snapshots (a
// restarted node restores one carrying the building graph).
func reembedEnv(rate int) []string {
	return []string{"SOSTENUTO_EMBEDDERS=hash256=hash:256", fmt.Sprintf("SOSTENUTO_REEMBED_RATE=%d", rate),
		"SOSTENUTO_REEMBED_BATCH=64", "SOSTENUTO_JOB_LEASE=3s", "SOSTENUTO_SNAPSHOT_THRESHOLD=64", "SOSTENUTO_SNAPSHOT_INTERVAL=1s"}
}

// reembedCLI runs `sostenuto reembed ARGS...` against the cluster's
// database, with embedders configured, and returns its output.
func (c *testCluster) reembedCLI(embedders string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, append([]string{"reembed"}, args...)...)
	cmd.Env = append(childEnv(), "SOSTENUTO_DATABASE_URL="+c.url, "SOSTENUTO_DATA_DIR="+c.dataDir, "SOSTENUTO_EMBEDDERS="+embedders)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("reembed %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// building reports whether PostgreSQL says model is being built.
func building(t *testing.T, url, model string) bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var b *string
	if err := conn.QueryRow(context.Background(), `SELECT building_model FROM embedding_state`).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b != nil && *b == model
}

// pgModelDigest is PostgreSQL's count and digest of the chunks holding a
// vector of model, and whether every chunk holds one.
func pgModelDigest(t *testing.T, url, model string) (int, string, bool) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// The column's model keeps its vectors in chunks.embedding (and
	// annotation_chunks.embedding: teachers' notes).
	rows, _ := conn.Query(context.Background(), `SELECT chunk_id FROM chunk_embeddings WHERE model = $1
		UNION ALL SELECT chunk_id FROM annotation_embeddings WHERE model = $1
		UNION ALL SELECT id FROM chunks WHERE embedding IS NOT NULL AND (SELECT column_model FROM embedding_state) = $1
		UNION ALL SELECT annotation_id FROM annotation_chunks
			WHERE embedding IS NOT NULL AND (SELECT column_model FROM embedding_state) = $1`, model)
	ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index.ID, error) {
		var id uuid.UUID
		return index.ID(id), r.Scan(&id)
	})
	if err != nil {
		t.Fatal(err)
	}
	n, d := server.ModelDigest(ids)
	return n, d, n == pgCount(t, url, `SELECT (SELECT count(*) FROM chunks) + (SELECT count(*) FROM annotation_chunks)`)
}

// modelsConverged waits until every running node holds PostgreSQL's
// chunks and, for model (active), exactly PostgreSQL's vectors of it
// (the same chunks, the model's dimension), with no build left.
func (c *testCluster) modelsConverged(what, model string, dim int) {
	c.t.Helper()
	c.converged(what)
	var last string
	defer func() {
		if c.t.Failed() {
			c.t.Logf("last difference: %s", last)
		}
	}()
	c.waitFor(what+": every node's vectors equal to PostgreSQL's", 60*time.Second, func() bool {
		n, want, all := pgModelDigest(c.t, c.url, model)
		if !all {
			last = "PostgreSQL: some chunk has no vector of " + model
			return false
		}
		for _, node := range c.nodes {
			if node.cmd == nil {
				continue
			}
			s, err := c.embeddingOf(node)
			if err != nil || s.Active != model || s.ActiveDim != dim || s.Building != "" || s.ActiveDigest != want {
				last = fmt.Sprintf("%s: %+v (PostgreSQL %d vectors), %v", node.id, s, n, err)
				return false
			}
		}
		return true
	})
}

// clusterEmbedding is the embedding part of a node's cluster status.
type clusterEmbedding struct {
	Active          string `json:"active"`
	Building        string `json:"building"`
	ActiveDim       int    `json:"active_dim"`
	ActiveVectors   int    `json:"active_vectors"`
	ActiveDigest    string `json:"active_digest"`
	BuildingVectors int    `json:"building_vectors"`
}

// getJSON GETs path from n as the administrator.
func (c *testCluster) getJSON(n *cnode, path string, v any) error {
	req, _ := http.NewRequest("GET", n.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// searchModel searches through base and returns the embedding model that
// answered.
func searchModel(t *testing.T, base, token, query string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "k": 5})
	req, _ := http.NewRequest("POST", base+"/api/search", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Index struct {
			EmbeddingModel string `json:"embedding_model"`
		} `json:"index"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("search: status %d", resp.StatusCode)
	}
	return out.Index.EmbeddingModel
}

func (c *testCluster) embeddingOf(n *cnode) (clusterEmbedding, error) {
	var s struct {
		Embedding *clusterEmbedding `json:"embedding"`
	}
	if err := c.getJSON(n, "/api/cluster/status", &s); err != nil {
		return clusterEmbedding{}, err
	}
	if s.Embedding == nil {
		return clusterEmbedding{}, fmt.Errorf("no embedding in the status")
	}
	return *s.Embedding, nil
}

// A re-embedding from the built-in hash embedder (768 dimensions, the
// chunks.embedding column's) to the same at 256 dimensions
// (chunk_embeddings) on three nodes, while the leader is killed, a
// follower restarts, and documents are deleted, made private, rewritten
// and added. The build resumes, the model switches, and every node ends
// with PostgreSQL's chunks and exactly PostgreSQL's vectors of the new
// model; the old vectors are dropped in PostgreSQL.
func TestClusterReembed(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	db := pgtest.NewEmptyDB(t, "")
	c := newTestCluster(t, db.URL)
	n1 := c.add("n1", reembedEnv(300)...)
	c.ready(n1)
	c.login(n1)
	c.add("n2", reembedEnv(300)...)
	c.add("n3", reembedEnv(300)...)
	c.waitFor("three voters", 60*time.Second, func() bool {
		s, err := c.status(n1)
		return err == nil && len(s.Nodes) == 3
	})
	teacher := makeUser(t, db.URL, "teacher@example.com", "teacher")
	docs := ingestChunks(t, db.URL, teacher, 100, 30, true, "alpha")
	c.modelsConverged("before the build", "sostenuto-hash-v1", 768)

	out := c.reembedCLI("hash256=hash:256", "start", "hash256")
	if !strings.Contains(out, "building: hash256 (256 dimensions)") {
		t.Fatalf("reembed start said:\n%s", out)
	}
	time.Sleep(1500 * time.Millisecond)
	c.duringBuild(t, teacher, docs)
	c.waitFor("the switch", 3*time.Minute, func() bool { return !building(t, db.URL, "hash256") })
	if out := c.reembedCLI("hash256=hash:256", "status"); !strings.Contains(out, "active: hash256 (256 dimensions)") {
		t.Fatalf("reembed status said:\n%s", out)
	}
	c.modelsConverged("after the switch", "hash256", 256)
	c.waitFor("the old vectors dropped", 60*time.Second, func() bool {
		return pgCount(t, db.URL, `SELECT count(*) FROM chunks WHERE embedding IS NOT NULL`) == 0
	})
	// Every node answers with the new model.
	tok := registerUser(t, n1.base, "student@example.com")
	for _, n := range c.nodes {
		if got := searchModel(t, n.base, tok, "alpha doc3 chunk"); got != "hash256" {
			t.Errorf("%s answered with %q", n.id, got)
		}
	}
}

// duringBuild kills the leader, restarts a follower and changes documents
// and writes teachers' notes, each while the build runs.
func (c *testCluster) duringBuild(t *testing.T, teacher uuid.UUID, docs []uuid.UUID) {
	if !building(t, c.url, "hash256") {
		t.Fatal("the build ended before the leader was killed: slow it down")
	}
	old := c.leader()
	c.kill(old)
	if lead := c.leader(); lead == old {
		t.Fatal("the killed node still leads")
	}
	c.start(old)
	var f *cnode
	for _, n := range c.nodes {
		if n != c.leader() {
			f = n
			break
		}
	}
	c.kill(f)
	conn, err := pgx.Connect(context.Background(), c.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range []string{`DELETE FROM documents WHERE id = $1`, `UPDATE documents SET is_public = false, title = 'Private' WHERE id = $1`,
		`UPDATE chunks SET text = text || ' revised', version = version + 1 WHERE document_id = $1`} {
		for _, d := range docs[:3] {
			execRetryingDeadlocks(t, conn, q, d)
		}
		docs = docs[3:]
	}
	ingestChunks(t, c.url, teacher, 10, 30, true, "bravo")
	writeNotes(t, c.url, teacher, 20)
	c.start(f)
	c.ready(f)
	if !building(t, c.url, "hash256") {
		t.Error("the build ended before the follower came back: slow it down")
	}
}

func pgCount(t *testing.T, url, q string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// writeNotes writes n teachers' notes on a project of owner's, each with
// its chunk and a vector of the column's model, as a note's write does.
func writeNotes(t *testing.T, url string, owner uuid.UUID, n int) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), `WITH p AS (INSERT INTO projects (owner_id, title, filename, object_key, status, page_count, file_size_bytes)
			VALUES ($1, 'Nocturne', 'nocturne.pdf', 'projects/' || gen_random_uuid(), 'ready', 4, 1000) RETURNING id),
		a AS (INSERT INTO annotations (project_id, author_id, page, type, content)
			SELECT p.id, $1, 1 + g % 4, 'note', jsonb_build_object('text', 'pedal note ' || g, 'x', 0.1, 'y', 0.1)
			FROM p, generate_series(1, $2) g RETURNING id, project_id, author_id, page, content)
		INSERT INTO annotation_chunks (annotation_id, project_id, author_id, page, text, embedding, version)
		SELECT a.id, a.project_id, a.author_id, a.page, a.content->>'text',
			('[' || array_to_string(array_fill((a.page + 1)::real, ARRAY[768]), ',') || ']')::vector, 1 FROM a`, owner, n)
	if err != nil {
		t.Fatalf("notes: %v", err)
	}
}

// execRetryingDeadlocks runs q as a client of PostgreSQL must: again when
// PostgreSQL chose it as a deadlock's victim (40P01; here against the
// build's batch writing the same documents' rows in another order).
func execRetryingDeadlocks(t *testing.T, conn *pgx.Conn, q string, args ...any) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		_, err := conn.Exec(context.Background(), q, args...)
		var pe *pgconn.PgError
		if err == nil {
			return
		}
		if !errors.As(err, &pe) || pe.Code != "40P01" || attempt == 4 {
			t.Fatal(err)
		}
	}
}

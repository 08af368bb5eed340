package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server"
)

// Multi-node scenarios, each node a real `sostenuto serve` process on
// loopback (real Raft TCP transports) against a real PostgreSQL.

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type cnode struct {
	id, base, raft, raftDir string
	env                     []string
	cmd                     *exec.Cmd
	logs                    *lockedBuffer
}

type testCluster struct {
	t       *testing.T
	bin     string
	url     string // owning role (or superuser)
	dataDir string // shared: JWT key, blobs
	certs   string // the Raft CA and node certificates
	nodes   map[string]*cnode
	token   string // an administrator's
	// converge bounds how long converged waits (60 s if zero); poll is
	// how often it looks (100 ms if zero).
	converge, poll time.Duration
}

const testSecret = "cluster-secret-for-tests-0123456789"

func newTestCluster(t *testing.T, url string) *testCluster {
	c := &testCluster{t: t, bin: buildBinary(t), url: url, dataDir: t.TempDir(), certs: t.TempDir(), nodes: map[string]*cnode{}}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.cmd != nil {
				n.cmd.Process.Signal(syscall.SIGCONT)
				n.cmd.Process.Kill()
				n.cmd.Wait()
			}
		}
		if t.Failed() {
			for id, n := range c.nodes {
				var warn []string
				for _, l := range strings.Split(n.logs.String(), "\n") {
					if strings.Contains(l, `"WARN"`) || strings.Contains(l, `"ERROR"`) || strings.Contains(l, `"@level":"error"`) {
						warn = append(warn, l)
					}
				}
				t.Logf("--- warnings of %s:\n%s", id, tail(strings.Join(warn, "\n"), 4000))
			}
		}
	})
	return c
}

// childEnv is this process's environment without the benchmark's own
// knobs (a node refuses SOSTENUTO_* settings it does not know).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOSTENUTO_BENCH_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// use points the cluster's helpers at a subtest; the returned func
// points them back.
func (c *testCluster) use(t *testing.T) func() {
	parent := c.t
	c.t = t
	return func() { c.t = parent }
}

// add configures a node (joining the first one unless it is the first).
func (c *testCluster) add(id string, extra ...string) *cnode {
	n := &cnode{id: id, base: fmt.Sprintf("http://127.0.0.1:%d", freePort(c.t)), raft: fmt.Sprintf("127.0.0.1:%d", freePort(c.t)),
		raftDir: filepath.Join(c.t.TempDir(), "raft")}
	n.env = append([]string{"SOSTENUTO_DATABASE_URL=" + c.url, "SOSTENUTO_LISTEN=" + strings.TrimPrefix(n.base, "http://"),
		"SOSTENUTO_RAFT_BIND=" + n.raft, "SOSTENUTO_RAFT_DIR=" + n.raftDir, "SOSTENUTO_NODE_ID=" + id,
		"SOSTENUTO_DATA_DIR=" + c.dataDir, "SOSTENUTO_CLUSTER_SECRET=" + testSecret, "SOSTENUTO_LOG_LEVEL=info",
		"SOSTENUTO_RECALL_EVERY=0s", "SOSTENUTO_ANTI_ENTROPY_EVERY=0s", "SOSTENUTO_LAG_BOUND=2s"}, append(noRateLimits, extra...)...)
	n.env = append(n.env, raftTLS(c.t, c.bin, c.certs, id)...)
	if len(c.nodes) > 0 {
		for _, first := range c.nodes {
			n.env = append(n.env, "SOSTENUTO_JOIN="+first.base)
			break
		}
	}
	c.nodes[id] = n
	c.start(n)
	return n
}

func (c *testCluster) start(n *cnode) {
	n.logs = &lockedBuffer{}
	n.cmd = exec.Command(c.bin, "serve")
	n.cmd.Env = append(childEnv(), n.env...)
	n.cmd.Stderr = n.logs
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
}

// ready waits for n's /api/ready, showing its log if it never comes.
func (c *testCluster) ready(n *cnode) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(n.base + "/api/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("%s not ready; its log:\n%s", n.id, tail(n.logs.String(), 8000))
}

func (c *testCluster) kill(n *cnode) {
	n.cmd.Process.Kill()
	n.cmd.Wait()
	n.cmd = nil
}

type statusDoc struct {
	Node       string  `json:"node"`
	Role       string  `json:"role"`
	Term       uint64  `json:"term"`
	Leader     string  `json:"leader"`
	Ready      bool    `json:"ready"`
	AppliedLSN *string `json:"applied_lsn"`
	Chunks     int     `json:"chunks"`
	Digest     string  `json:"digest"`
	Nodes      []struct {
		ID string `json:"id"`
	} `json:"nodes"`
}

func (c *testCluster) status(n *cnode) (statusDoc, error) {
	var s statusDoc
	req, _ := http.NewRequest("GET", n.base+"/api/cluster/status", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return s, fmt.Errorf("status %d", resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// login makes an administrator (once) and signs in through n.
func (c *testCluster) login(n *cnode) {
	if c.token != "" {
		return
	}
	cmd := exec.Command(c.bin, "admin", "create", "--email", "root@example.com")
	cmd.Env = append(childEnv(), "SOSTENUTO_DATABASE_URL="+c.url, "SOSTENUTO_ADMIN_PASSWORD=correct horse battery", "SOSTENUTO_DATA_DIR="+c.dataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("admin create: %v\n%s", err, out)
	}
	body, _ := json.Marshal(map[string]string{"email": "root@example.com", "password": "correct horse battery"})
	resp, err := http.Post(n.base+"/api/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if out.AccessToken == "" {
		c.t.Fatalf("login: %d", resp.StatusCode)
	}
	c.token = out.AccessToken
}

func (c *testCluster) waitFor(what string, timeout time.Duration, ok func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(cmp.Or(c.poll, 100*time.Millisecond))
	}
}

// leader waits for one running node to lead, as every running node sees it.
func (c *testCluster) leader() *cnode {
	c.t.Helper()
	var lead *cnode
	c.waitFor("a leader", 30*time.Second, func() bool {
		lead = nil
		for _, n := range c.nodes {
			if n.cmd == nil {
				continue
			}
			s, err := c.status(n)
			if err != nil {
				return false
			}
			if s.Role == "leader" {
				lead = n
			}
		}
		return lead != nil
	})
	return lead
}

// pgDigest is PostgreSQL's (chunk id, version) digest.
func pgDigest(t *testing.T, url string) (string, int) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(), `SELECT id, version FROM chunks UNION ALL SELECT annotation_id, version FROM annotation_chunks`)
	m := map[index.ID]int64{}
	for rows.Next() {
		var id uuid.UUID
		var v int64
		rows.Scan(&id, &v)
		m[index.ID(id)] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return server.ChunkDigest(m), len(m)
}

// converged waits until every running node holds exactly PostgreSQL's
// chunk ids and versions.
func (c *testCluster) converged(what string) {
	c.t.Helper()
	var last string
	defer func() {
		if c.t.Failed() {
			c.t.Logf("last difference: %s", last)
		}
	}()
	c.waitFor(what+": every node equal to PostgreSQL", cmp.Or(c.converge, 60*time.Second), func() bool {
		want, n := pgDigest(c.t, c.url)
		for _, node := range c.nodes {
			if node.cmd == nil {
				continue
			}
			s, err := c.status(node)
			if err != nil || s.Digest != want {
				last = fmt.Sprintf("%s: %d chunks (PostgreSQL %d), err %v", node.id, s.Chunks, n, err)
				return false
			}
		}
		return true
	})
}

// ingestChunks writes documents of chunksPer chunks, one transaction each.
func ingestChunks(t *testing.T, url string, owner uuid.UUID, docs, chunksPer int, public bool, word string) []uuid.UUID {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var ids []uuid.UUID
	for d := range docs {
		id := uuid.New()
		_, err := conn.Exec(context.Background(), `WITH d AS (INSERT INTO documents (id, owner_id, title, source_type, is_public)
				VALUES ($1, $2, 'Doc', 'text', $3) RETURNING id)
			INSERT INTO chunks (document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding)
			SELECT d.id, $2, g, $4 || ' chunk ' || g, 3, 0, 10,
				('[' || array_to_string(array_fill((g % 7 + 1)::real, ARRAY[768]), ',') || ']')::vector
			FROM d, generate_series(0, $5 - 1) g`, id, owner, public, fmt.Sprintf("%s doc%d", word, d), chunksPer)
		if err != nil {
			t.Fatalf("ingest: %v", err)
		}
		ids = append(ids, id)
	}
	return ids
}

func makeUser(t *testing.T, url, email, role string) uuid.UUID {
	id := uuid.New()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO users (id, email, display_name, role, password_hash)
		VALUES ($1, $2, 'U', $3, 'x')`, id, email, role); err != nil {
		t.Fatal(err)
	}
	return id
}

// The cluster scenarios (a), (b), (c), (d) and (f), on one cluster in
// sequence.
func TestClusterScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	db := pgtest.NewEmptyDB(t, "")
	c := newTestCluster(t, db.URL)
	// Snapshots every 64 entries, so a late joiner installs one.
	n1 := c.add("n1", "SOSTENUTO_SNAPSHOT_THRESHOLD=64", "SOSTENUTO_SNAPSHOT_INTERVAL=1s")
	c.ready(n1)
	c.login(n1)
	c.add("n2", "SOSTENUTO_SNAPSHOT_THRESHOLD=64", "SOSTENUTO_SNAPSHOT_INTERVAL=1s")
	c.add("n3", "SOSTENUTO_SNAPSHOT_THRESHOLD=64", "SOSTENUTO_SNAPSHOT_INTERVAL=1s")
	c.waitFor("three voters", 60*time.Second, func() bool {
		s, err := c.status(n1)
		return err == nil && len(s.Nodes) == 3
	})
	teacher := makeUser(t, db.URL, "teacher@example.com", "teacher")

	// (a) 2,000+ chunks ingested while the leader is SIGKILLed.
	t.Run("a: leader killed during ingest", func(t *testing.T) {
		defer c.use(t)()
		done := make(chan struct{})
		go func() {
			defer close(done)
			ingestChunks(t, db.URL, teacher, 110, 20, true, "alpha")
		}()
		time.Sleep(1500 * time.Millisecond)
		old := c.leader()
		c.kill(old)
		<-done
		lead := c.leader()
		if lead == old {
			t.Fatal("the killed node still leads")
		}
		c.start(old) // back from its data directory
		c.converged("after the leader was killed")
		if _, n := pgDigest(t, db.URL); n < 2000 {
			t.Fatalf("only %d chunks ingested", n)
		}
	})

	// (b) A follower restarts from its data directory and catches up.
	t.Run("b: follower restart", func(t *testing.T) {
		defer c.use(t)()
		lead := c.leader()
		var f *cnode
		for _, n := range c.nodes {
			if n != lead {
				f = n
				break
			}
		}
		c.kill(f)
		ingestChunks(t, db.URL, teacher, 10, 20, true, "bravo")
		start := time.Now()
		c.start(f)
		c.ready(f)
		c.converged("after a follower restart")
		t.Logf("follower back and converged in %v", time.Since(start).Round(time.Millisecond))
		if strings.Contains(f.logs.String(), "changefeed base loaded") {
			t.Error("the restarted follower loaded a base instead of resuming")
		}
		// Idle past the lag bound (2 s here): heartbeats keep every node ready.
		time.Sleep(3 * time.Second)
		for _, n := range c.nodes {
			if s, err := c.status(n); err != nil || !s.Ready {
				t.Errorf("%s not ready while idle: %+v %v", n.id, s, err)
			}
		}
	})

	// (c) A new node joins a cluster holding data, through a snapshot.
	t.Run("c: join through a snapshot", func(t *testing.T) {
		defer c.use(t)()
		n4 := c.add("n4", "SOSTENUTO_SNAPSHOT_THRESHOLD=64", "SOSTENUTO_SNAPSHOT_INTERVAL=1s")
		c.converged("after n4 joined")
		c.waitFor("n4 installed a snapshot", 10*time.Second, func() bool {
			return strings.Contains(n4.logs.String(), "installed an index snapshot")
		})
		// Remove it again: three voters remain.
		req, _ := http.NewRequest("DELETE", n4.base+"/api/cluster/nodes/n4", nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 204 {
			t.Fatalf("remove n4: %v %v", err, resp)
		}
		resp.Body.Close()
		c.kill(n4)
		delete(c.nodes, "n4")
		lead := c.leader()
		c.waitFor("three voters again", 20*time.Second, func() bool {
			s, err := c.status(lead)
			return err == nil && len(s.Nodes) == 3
		})
	})

	// (d) Deletes and visibility changes reach every node and never come
	// back, not even after a leader change.
	t.Run("d: deletes and visibility", func(t *testing.T) {
		defer c.use(t)()
		docs := ingestChunks(t, db.URL, teacher, 3, 5, true, "charlie")
		c.converged("charlie ingested")
		conn, _ := pgx.Connect(context.Background(), db.URL)
		defer conn.Close(context.Background())
		conn.Exec(context.Background(), `DELETE FROM documents WHERE id = $1`, docs[0])
		conn.Exec(context.Background(), `UPDATE documents SET is_public = false WHERE id = $1`, docs[1])
		conn.Exec(context.Background(), `UPDATE chunks SET text = text || ' revised', version = version + 1 WHERE document_id = $1`, docs[2])
		c.converged("after deletes, a visibility change and rewrites")
		// A stranger finds nothing of the private document on any node.
		stranger := registerUser(t, n1.base, "stranger@example.com")
		for _, n := range c.nodes {
			hits := searchHits(t, n.base, stranger, "charlie doc1")
			for _, h := range hits {
				if h == docs[1] || h == docs[0] {
					t.Errorf("%s: a stranger found document %s", n.id, h)
				}
			}
		}
		old := c.leader()
		c.kill(old)
		c.leader()
		c.start(old)
		c.converged("after another leader change")
	})

	// (f) The leader is cut off (frozen with SIGSTOP): the others elect a
	// new leader and go on; once it is back it steps down and converges.
	t.Run("f: partitioned leader", func(t *testing.T) {
		defer c.use(t)()
		old := c.leader()
		old.cmd.Process.Signal(syscall.SIGSTOP)
		frozen := old.cmd
		old.cmd = nil // not running, for leader() and converged()
		lead := c.leader()
		if lead == old {
			t.Fatal("the frozen node leads")
		}
		ingestChunks(t, db.URL, teacher, 5, 20, true, "foxtrot")
		c.converged("the majority side")
		frozen.Process.Signal(syscall.SIGCONT)
		old.cmd = frozen
		c.waitFor("the old leader steps down", 30*time.Second, func() bool {
			s, err := c.status(old)
			return err == nil && s.Role == "follower"
		})
		c.converged("after the partition healed")
	})
}

func registerUser(t *testing.T, base, email string) string {
	body, _ := json.Marshal(map[string]string{"email": email, "password": "a long enough password", "display_name": "S", "role": "student"})
	resp, err := http.Post(base+"/api/auth/register", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if out.AccessToken == "" {
		t.Fatalf("register: %d", resp.StatusCode)
	}
	return out.AccessToken
}

func searchHits(t *testing.T, base, token, query string) []uuid.UUID {
	body, _ := json.Marshal(map[string]any{"query": query, "mode": "bm25", "k": 50})
	req, _ := http.NewRequest("POST", base+"/api/search", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			DocumentID uuid.UUID `json:"document_id"`
		} `json:"results"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	var ids []uuid.UUID
	for _, r := range out.Results {
		ids = append(ids, r.DocumentID)
	}
	return ids
}

// (e) PostgreSQL restarts mid-stream: the leader's feed resumes by itself
// and nothing committed is lost.
func TestClusterPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	pg := pgtest.NewCluster(t)
	c := newTestCluster(t, pg.URL())
	n1 := c.add("n1", "SOSTENUTO_ANTI_ENTROPY_EVERY=1s")
	c.ready(n1)
	c.login(n1)
	n2 := c.add("n2", "SOSTENUTO_ANTI_ENTROPY_EVERY=1s")
	c.waitFor("two voters", 60*time.Second, func() bool {
		s, err := c.status(n1)
		return err == nil && len(s.Nodes) == 2 && len(n2.base) > 0
	})
	teacher := makeUser(t, pg.URL(), "teacher@example.com", "teacher")
	ingestChunks(t, pg.URL(), teacher, 5, 20, true, "echo")
	c.converged("before the restart")
	pg.Stop()
	pg.Start()
	ingestChunks(t, pg.URL(), teacher, 5, 20, true, "golf")
	c.converged("after PostgreSQL restarted")

	// Anti-entropy: chunks written while the publication left them out
	// never reach the changefeed; the periodic check finds them on every
	// node and repairs them through the log.
	mustExec := func(sql string) {
		t.Helper()
		conn, err := pgx.Connect(context.Background(), pg.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	mustExec(`ALTER PUBLICATION sostenuto_changefeed SET TABLE documents (id, owner_id, is_public, title)`)
	ingestChunks(t, pg.URL(), teacher, 2, 10, true, "hotel")
	mustExec(`ALTER PUBLICATION sostenuto_changefeed SET TABLE chunks, documents (id, owner_id, is_public, title)`)
	c.converged("after anti-entropy repaired the unpublished chunks")
	// Both nodes may repair (the second repair is a no-op): count them all.
	total := 0.0
	for _, n := range []*cnode{n1, n2} {
		total += metrics(t, n.base)["sostenuto_antientropy_repaired_chunks_total"]
	}
	if total < 20 {
		t.Errorf("anti-entropy repaired %.0f chunks, want the 20 unpublished ones", total)
	}
}

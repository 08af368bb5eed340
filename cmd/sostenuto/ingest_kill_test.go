package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/embed"
)

// noRateLimits turns the rate limits off for nodes the tests drive hard
// from one address (the limits have their own tests).
var noRateLimits = []string{"SOSTENUTO_RATE_LIMIT_IP=off", "SOSTENUTO_RATE_LIMIT_USER=off", "SOSTENUTO_RATE_LIMIT_AUTH=off", "SOSTENUTO_RATE_LIMIT_CHAT=off"}

// buildBinary builds the node once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sostenuto")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

type node struct {
	cmd  *exec.Cmd
	base string
	logs *bytes.Buffer
}

func startNode(t *testing.T, bin string, env ...string) *node {
	t.Helper()
	port := freePort(t)
	n := &node{base: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &bytes.Buffer{}}
	n.cmd = exec.Command(bin, "serve")
	n.cmd.Env = append(append(os.Environ(), noRateLimits...), append(env, fmt.Sprintf("SOSTENUTO_LISTEN=127.0.0.1:%d", port), "SOSTENUTO_DATA_DIR="+t.TempDir(),
		fmt.Sprintf("SOSTENUTO_RAFT_BIND=127.0.0.1:%d", freePort(t)))...)
	n.cmd.Env = append(n.cmd.Env, raftTLS(t, bin, t.TempDir(), "n1")...)
	n.cmd.Stderr = n.logs
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.cmd.Process.Kill(); n.cmd.Wait() })
	waitReady(t, n.base+"/api/ready", n.logs)
	return n
}

func (n *node) call(t *testing.T, method, path, token string, body any, out any) int {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, n.base+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		json.Unmarshal(b, out)
	}
	return resp.StatusCode
}

// Killing a worker mid-job (SIGKILL of the whole node) leads to a retry by
// another node and exactly one set of chunks.
func TestIngestSurvivesSIGKILL(t *testing.T) {
	bin := buildBinary(t)
	db := pgtest.NewEmptyDB(t, "")
	// An OpenAI-compatible embedder whose third call hangs while the first
	// node holds the job: by then two batches (100 chunks) are staged.
	var calls atomic.Int32
	hung := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Input []string }
		json.NewDecoder(r.Body).Decode(&in)
		if calls.Add(1) == 3 {
			close(hung)
			<-release
			return
		}
		vs, _ := embed.Hash{}.Embed(r.Context(), in.Input)
		data := make([]map[string]any, len(vs))
		for i, v := range vs {
			data[i] = map[string]any{"index": i, "embedding": v}
		}
		json.NewEncoder(w).Encode(map[string]any{"data": data})
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the hung call
	env := []string{"SOSTENUTO_DATABASE_URL=" + db.URL, "SOSTENUTO_EMBED_PROVIDER=openai", "SOSTENUTO_EMBED_URL=" + srv.URL,
		"SOSTENUTO_EMBED_MODEL=test", "SOSTENUTO_JOB_LEASE=2s", "SOSTENUTO_JWT_HS256_SECRET=" + strings.Repeat("k", 32), "SOSTENUTO_LOG_LEVEL=warn", "SOSTENUTO_CHUNK_TOKENS=64", "SOSTENUTO_CHUNK_OVERLAP=16"}
	a := startNode(t, bin, env...)

	var sess struct {
		AccessToken string `json:"access_token"`
	}
	if st := a.call(t, "POST", "/api/auth/register", "", map[string]string{"email": "t@example.com", "password": "correct horse battery", "display_name": "T", "role": "teacher"}, &sess); st != 201 {
		t.Fatalf("register %d", st)
	}
	content := strings.Repeat("Play the scale slowly and evenly with a loose wrist; listen to every note. ", 600)
	var doc struct{ Document struct{ ID string } }
	if st := a.call(t, "POST", "/api/knowledge", sess.AccessToken, map[string]any{"title": "Scales", "source_type": "text", "content": content}, &doc); st != 201 {
		t.Fatalf("create %d", st)
	}
	if st := a.call(t, "POST", "/api/knowledge/"+doc.Document.ID+"/process", sess.AccessToken, nil, nil); st != 202 {
		t.Fatalf("process %d", st)
	}
	select {
	case <-hung:
	case <-time.After(30 * time.Second):
		t.Fatalf("the job never reached its third embedding call\n%s", a.logs)
	}
	var staged int
	pool := mustPool(t, db.URL)
	pool.QueryRow(context.Background(), `SELECT count(*) FROM chunk_staging`).Scan(&staged)
	a.cmd.Process.Kill() // SIGKILL mid-job
	a.cmd.Wait()
	if staged != 100 {
		t.Logf("staged before the kill: %d", staged)
	}

	b := startNode(t, bin, env...)
	var st struct {
		Status     string `json:"status"`
		ChunkCount int    `json:"chunk_count"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for st.Status != "completed" {
		if time.Now().After(deadline) || st.Status == "failed" {
			t.Fatalf("status %+v (nodes share the database and the token key)\n%s", st, b.logs)
		}
		time.Sleep(100 * time.Millisecond)
		b.call(t, "GET", "/api/knowledge/"+doc.Document.ID+"/status", sess.AccessToken, nil, &st)
	}
	var chunks, distinct, maxOrd, leftover, attempts int
	pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT ordinal), max(ordinal) FROM chunks WHERE document_id = $1`, doc.Document.ID).Scan(&chunks, &distinct, &maxOrd)
	pool.QueryRow(context.Background(), `SELECT count(*) FROM chunk_staging`).Scan(&leftover)
	pool.QueryRow(context.Background(), `SELECT attempts FROM jobs WHERE kind = 'ingest.document'`).Scan(&attempts)
	if chunks != st.ChunkCount || distinct != chunks || maxOrd != chunks-1 || leftover != 0 || attempts != 2 || chunks < 100 {
		t.Errorf("chunks %d (distinct %d, max ordinal %d), status count %d, staging left %d, attempts %d",
			chunks, distinct, maxOrd, st.ChunkCount, leftover, attempts)
	}
	t.Logf("killed with %d chunks staged; the retry stored %d chunks once", staged, chunks)
}

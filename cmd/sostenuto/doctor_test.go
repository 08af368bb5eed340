package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/replication"
	"github.com/sostenuto/sostenuto/replication/pki"
	"github.com/sostenuto/sostenuto/server/blob/blobtest"
)

// doctorCA is a cluster CA in a temporary directory that issues node
// certificates for 127.0.0.1.
type doctorCA struct {
	t   *testing.T
	dir string
	ca  *pki.CA
}

func newDoctorCA(t *testing.T) *doctorCA {
	dir := t.TempDir()
	ca, _, err := pki.LoadOrCreateCA(dir, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &doctorCA{t: t, dir: dir, ca: ca}
}

// env issues a node certificate and returns the settings naming it.
func (c *doctorCA) env(name string) []string {
	cert, key, err := c.ca.Issue(pki.Node{Name: name, Hosts: []string{"127.0.0.1"}}, 300*24*time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := pki.WriteNode(c.dir, name, cert, key); err != nil {
		c.t.Fatal(err)
	}
	return []string{"SOSTENUTO_RAFT_TLS_CA=" + filepath.Join(c.dir, pki.CAFile),
		"SOSTENUTO_RAFT_TLS_CERT=" + filepath.Join(c.dir, pki.CertFile(name)), "SOSTENUTO_RAFT_TLS_KEY=" + filepath.Join(c.dir, pki.KeyFile(name))}
}

// raftPeer runs a Raft node (founding its own cluster) with a certificate
// of ca and returns its Raft address.
func raftPeer(t *testing.T, ca *doctorCA, name string) string {
	env := ca.env(name)
	m, err := replication.LoadTLS(strings.TrimPrefix(env[0], "SOSTENUTO_RAFT_TLS_CA="),
		strings.TrimPrefix(env[1], "SOSTENUTO_RAFT_TLS_CERT="), strings.TrimPrefix(env[2], "SOSTENUTO_RAFT_TLS_KEY="))
	if err != nil {
		t.Fatal(err)
	}
	cfg := index.DefaultConfig()
	n, err := replication.StartNode(replication.NodeConfig{ID: name, RaftBind: "127.0.0.1:0", Dir: t.TempDir(), Bootstrap: true,
		TLS: m, Index: cfg, Fast: true, LogOutput: &lockedBuffer{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return n.Status().Nodes[0].RaftAddr
}

// fakeEmbedder speaks OpenAI's /v1/embeddings with 768-dimension vectors.
func fakeEmbedder(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/embeddings" {
			http.NotFound(w, r)
			return
		}
		v := make([]float32, 768)
		v[0] = 1
		json.NewEncoder(w).Encode(map[string]any{"model": "fake", "data": []map[string]any{{"index": 0, "embedding": v}}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// clockServer answers with its Date header skew away from now.
func clockServer(t *testing.T, skew time.Duration) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().Add(skew).UTC().Format(http.TimeFormat))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// doctorLines runs doctor and returns its exit code and output lines.
func doctorLines(t *testing.T, env []string, args ...string) (int, []string) {
	t.Helper()
	code, out, stderr := runCmd(t, env, "", append([]string{"doctor", "--doctor-timeout", "5s"}, args...)...)
	t.Logf("doctor (exit %d):\n%s%s", code, out, stderr)
	return code, strings.Split(strings.TrimSpace(out), "\n")
}

// hasLine reports whether a line starts with prefix.
func hasLine(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// A healthy setup: migrated database, S3 (versitygw), a Raft peer of the
// same CA, a hosted embedder, a peer whose clock agrees: every check ok.
func TestDoctorHealthy(t *testing.T) {
	db := pgtest.NewDB(t)
	s3 := blobtest.Start(t)
	ca := newDoctorCA(t)
	peer := raftPeer(t, ca, "n1")
	env := append([]string{"SOSTENUTO_DATABASE_URL=" + db.URL, "SOSTENUTO_DATA_DIR=" + t.TempDir(),
		"SOSTENUTO_BLOB_BACKEND=s3", "SOSTENUTO_S3_ENDPOINT=" + s3.Config.Endpoint, "SOSTENUTO_S3_BUCKET=" + s3.Config.Bucket,
		"SOSTENUTO_S3_ACCESS_KEY_ID=" + s3.Config.AccessKeyID, "SOSTENUTO_S3_SECRET_ACCESS_KEY=" + s3.Config.SecretAccessKey,
		"SOSTENUTO_S3_PATH_STYLE=true", "SOSTENUTO_EMBED_PROVIDER=openai", "SOSTENUTO_EMBED_URL=" + fakeEmbedder(t),
		"SOSTENUTO_EMBED_MODEL=fake"}, ca.env("n2")...)
	code, lines := doctorLines(t, env, "--doctor-raft-peers", peer, "--doctor-peer-urls", clockServer(t, 0))
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	for _, want := range []string{"ok    config:", "ok    database:", "ok    migrations:", "ok    pgvector:", "ok    wal_level: logical",
		"ok    slot:", "ok    blob store: s3: write, read, presigned download, delete ok", "ok    raft peers: 1 reachable",
		"ok    embedder: fake answered", "ok    llm:", "ok    clock skew:"} {
		if !hasLine(lines, want) {
			t.Errorf("no line %q", want)
		}
	}
	if objs := s3.Objects(); len(objs) != 0 {
		t.Errorf("doctor left objects behind: %v", objs)
	}
}

// Each broken dependency gives its FAIL line and a non-zero exit.
func TestDoctorFindsProblems(t *testing.T) {
	db := pgtest.NewDB(t)
	ca, other := newDoctorCA(t), newDoctorCA(t)
	base := append([]string{"SOSTENUTO_DATABASE_URL=" + db.URL, "SOSTENUTO_DATA_DIR=" + t.TempDir()}, ca.env("n2")...)
	stranger := raftPeer(t, other, "mallory") // a Raft peer with a certificate of another CA
	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"wrong database URL", []string{"SOSTENUTO_DATABASE_URL=postgres://sostenuto:x@127.0.0.1:1/nope"}, nil,
			[]string{"FAIL  database: 127.0.0.1:1:", "skip  migrations: needs the database"}},
		{"not migrated", []string{"SOSTENUTO_DATABASE_URL=" + pgtest.NewEmptyDB(t, "").URL}, nil, []string{"FAIL  migrations:"}},
		{"unreachable blob endpoint", []string{"SOSTENUTO_BLOB_BACKEND=s3", "SOSTENUTO_S3_ENDPOINT=http://127.0.0.1:1", "SOSTENUTO_S3_BUCKET=b",
			"SOSTENUTO_S3_ACCESS_KEY_ID=a", "SOSTENUTO_S3_SECRET_ACCESS_KEY=s", "SOSTENUTO_S3_PATH_STYLE=true"}, nil, []string{"FAIL  blob store: write:"}},
		{"peer with a wrong certificate", nil, []string{"--doctor-raft-peers", stranger}, []string{"FAIL  raft peers:"}},
		{"peer not listening", nil, []string{"--doctor-raft-peers", fmt.Sprintf("127.0.0.1:%d", freePort(t))}, []string{"FAIL  raft peers:"}},
		{"unreachable embedder", []string{"SOSTENUTO_EMBED_PROVIDER=openai", "SOSTENUTO_EMBED_URL=http://127.0.0.1:1", "SOSTENUTO_EMBED_MODEL=m"}, nil, []string{"FAIL  embedder:"}},
		{"unreachable LLM", []string{"SOSTENUTO_LLM_PROVIDER=openai", "SOSTENUTO_LLM_URL=http://127.0.0.1:1", "SOSTENUTO_LLM_MODEL=m"}, nil, []string{"FAIL  llm:"}},
		{"clock skew", nil, []string{"--doctor-peer-urls", clockServer(t, time.Minute)}, []string{"FAIL  clock skew:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, lines := doctorLines(t, append(append([]string{}, base...), tc.env...), tc.args...)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			for _, want := range tc.want {
				if !hasLine(lines, want) {
					t.Errorf("no line starting %q", want)
				}
			}
			if n := strings.Count(strings.Join(lines, "\n"), "FAIL"); n != 1 {
				t.Errorf("%d FAIL lines, want only the one broken", n)
			}
		})
	}
}

// wal_level below logical is reported, with the fix.
func TestDoctorWalLevel(t *testing.T) {
	cluster := pgtest.NewCluster(t)
	pool := mustPool(t, cluster.URL())
	if _, err := pool.Exec(context.Background(), `ALTER SYSTEM SET wal_level = 'replica'`); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	cluster.Stop()
	cluster.Start()
	code, lines := doctorLines(t, []string{"SOSTENUTO_DATABASE_URL=" + cluster.URL(), "SOSTENUTO_DATA_DIR=" + t.TempDir(), "SOSTENUTO_RAFT_INSECURE=true"})
	if code != 1 || !hasLine(lines, "FAIL  wal_level: wal_level is replica; the changefeed needs logical — fix: `ALTER SYSTEM SET wal_level = logical;`") {
		t.Errorf("exit %d, lines %q", code, lines)
	}
}

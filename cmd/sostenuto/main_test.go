package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sostenuto/sostenuto/migrations"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/auth"
)

func runCmd(t *testing.T, env []string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = run(ctx, args, env, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// Invalid or missing configuration stops start-up with exit code 2 and one
// line naming the setting.
func TestConfigErrors(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "missing")
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"bad listen flag", nil, []string{"serve", "--listen", "8080"}, "config: --listen: invalid listen address"},
		{"bad listen env", []string{"SOSTENUTO_LISTEN=localhost:http"}, []string{"serve"}, "config: SOSTENUTO_LISTEN: invalid port"},
		{"bad duration", []string{"SOSTENUTO_SHUTDOWN_TIMEOUT=soon"}, []string{"serve"}, "config: SOSTENUTO_SHUTDOWN_TIMEOUT: invalid duration"},
		{"out of range", []string{"SOSTENUTO_DB_MAX_CONNS=0"}, []string{"serve"}, "config: SOSTENUTO_DB_MAX_CONNS: 0 is out of range"},
		{"bad bool", []string{"SOSTENUTO_AUTO_MIGRATE=maybe"}, []string{"serve"}, "config: SOSTENUTO_AUTO_MIGRATE: invalid boolean"},
		{"bad log level", []string{"SOSTENUTO_LOG_LEVEL=loud"}, []string{"migrate"}, "config: SOSTENUTO_LOG_LEVEL: \"loud\" is not one of"},
		{"unknown env", []string{"SOSTENUTO_LISTN=:1"}, []string{"serve"}, "config: unknown setting SOSTENUTO_LISTN"},
		{"bad llm provider", []string{"SOSTENUTO_LLM_PROVIDER=gpt"}, []string{"serve"}, "config: SOSTENUTO_LLM_PROVIDER"},
		{"llm without url", []string{"SOSTENUTO_LLM_PROVIDER=openai"}, []string{"serve"}, "config: SOSTENUTO_LLM_URL: openai needs"},
		{"bad rerank provider", []string{"SOSTENUTO_RERANK_PROVIDER=magic"}, []string{"serve"}, "config: SOSTENUTO_RERANK_PROVIDER"},
		{"rerank without url", []string{"SOSTENUTO_RERANK_PROVIDER=cohere"}, []string{"serve"}, "config: SOSTENUTO_RERANK_URL: cohere needs"},
		{"rerank workers-ai without account", []string{"SOSTENUTO_RERANK_PROVIDER=workers-ai"}, []string{"serve"}, "config: SOSTENUTO_RERANK_ACCOUNT_ID: workers-ai needs"},
		{"rerank default without reranker", []string{"SOSTENUTO_RERANK_DEFAULT=true"}, []string{"serve"}, "config: SOSTENUTO_RERANK_DEFAULT: needs a reranker"},
		{"bad otlp endpoint", []string{"SOSTENUTO_OTLP_ENDPOINT=collector:4318"}, []string{"serve"}, "config: SOSTENUTO_OTLP_ENDPOINT: tracing: invalid configuration"},
		{"bad trace sample", nil, []string{"serve", "--trace-sample", "1.5"}, "config: --trace-sample: \"1.5\" is not a number from 0 to 1"},
		{"unknown flag", nil, []string{"serve", "--colour"}, "config: flag provided but not defined: -colour"},
		{"stray argument", nil, []string{"migrate", "now"}, "config: unexpected argument \"now\""},
		{"unreadable secret file", []string{"SOSTENUTO_DATABASE_URL_FILE=" + secret}, []string{"migrate"}, "config: SOSTENUTO_DATABASE_URL_FILE: cannot read secret file"},
		{"no database", []string{"SOSTENUTO_DATA_DIR=" + t.TempDir()}, []string{"migrate"}, "config: SOSTENUTO_DATABASE_URL: not set, and"},
		{"malformed database url", []string{"SOSTENUTO_DATABASE_URL=postgres://u:hunter2@h:notaport/db"}, []string{"migrate"}, "config: SOSTENUTO_DATABASE_URL:"},
		{"admin bad email", []string{"SOSTENUTO_DATABASE_URL=postgres://x@127.0.0.1:1/x"}, []string{"admin", "create", "--email", "nobody"}, "config: --email:"},
		{"admin short password", []string{"SOSTENUTO_DATABASE_URL=postgres://x@127.0.0.1:1/x"}, []string{"admin", "create", "--email", "a@b.co", "--password", "short"}, "config: --password: password must be 8 to 256 characters"},
		{"raft without tls", []string{"SOSTENUTO_DATA_DIR=" + t.TempDir()}, []string{"serve"}, "config: SOSTENUTO_RAFT_TLS_CA: not set: the Raft transport runs on mutual TLS"},
		{"raft tls half set", []string{"SOSTENUTO_RAFT_TLS_CA=/x/ca.pem", "SOSTENUTO_RAFT_TLS_CERT=/x/n1.pem"}, []string{"serve"}, "config: SOSTENUTO_RAFT_TLS_KEY: not set"},
		{"raft tls unreadable", []string{"SOSTENUTO_RAFT_TLS_CA=" + secret, "SOSTENUTO_RAFT_TLS_CERT=" + secret, "SOSTENUTO_RAFT_TLS_KEY=" + secret}, []string{"serve"}, "config: SOSTENUTO_RAFT_TLS_*: replication: cluster CA"},
		{"raft insecure on all interfaces", []string{"SOSTENUTO_RAFT_INSECURE=true", "SOSTENUTO_RAFT_BIND=0.0.0.0:7000"}, []string{"serve"}, "config: SOSTENUTO_RAFT_INSECURE: replication: 0.0.0.0:7000 is not a loopback address"},
		{"raft insecure advertised", nil, []string{"serve", "--raft-insecure", "--raft-advertise", "10.0.0.1:7000"}, "config: SOSTENUTO_RAFT_INSECURE: replication: 10.0.0.1:7000 is not a loopback address"},
		{"raft insecure and tls", []string{"SOSTENUTO_RAFT_INSECURE=true", "SOSTENUTO_RAFT_TLS_KEY=/x/k.pem"}, []string{"serve"}, "config: SOSTENUTO_RAFT_INSECURE: conflicts with SOSTENUTO_RAFT_TLS_KEY"},
		{"certs without nodes", nil, []string{"cluster", "certs", "--dir", t.TempDir()}, "config: --nodes: pki: no nodes"},
		{"certs without dir", nil, []string{"cluster", "certs", "--nodes", "n1=10.0.0.1"}, "config: --dir: needed"},
		{"cluster without subcommand", nil, []string{"cluster"}, "usage: sostenuto cluster certs"},
		{"unknown command", nil, []string{"frobnicate"}, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, tc.env, "", tc.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr %q", code, stderr)
			}
			first, _, _ := strings.Cut(stderr, "\n")
			if !strings.Contains(first, tc.want) {
				t.Errorf("first stderr line %q does not contain %q", first, tc.want)
			}
			if strings.Contains(stderr, "hunter2") {
				t.Error("the database password leaked into the error")
			}
		})
	}
}

func TestSecretPrecedence(t *testing.T) {
	dir := t.TempDir()
	fromFile := filepath.Join(dir, "url")
	os.WriteFile(fromFile, []byte("postgres://file@127.0.0.1/x\n"), 0o600)
	cases := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"env file", nil, []string{"SOSTENUTO_DATABASE_URL_FILE=" + fromFile}, "postgres://file@127.0.0.1/x"},
		{"env beats env file", nil, []string{"SOSTENUTO_DATABASE_URL=postgres://env@h/x", "SOSTENUTO_DATABASE_URL_FILE=" + fromFile}, "postgres://env@h/x"},
		{"flag file beats env", []string{"--database-url-file", fromFile}, []string{"SOSTENUTO_DATABASE_URL=postgres://env@h/x"}, "postgres://file@127.0.0.1/x"},
		{"flag beats all", []string{"--database-url", "postgres://flag@h/x", "--database-url-file", fromFile}, []string{"SOSTENUTO_DATABASE_URL=postgres://env@h/x"}, "postgres://flag@h/x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cfg migrateConfig
			if err := loadSettings("migrate", cfg.settings(), tc.args, tc.env, io.Discard); err != nil {
				t.Fatal(err)
			}
			if cfg.db.url != tc.want {
				t.Errorf("url = %q, want %q", cfg.db.url, tc.want)
			}
		})
	}
}

func TestDefaultsServeEmbeddedMode(t *testing.T) {
	var cfg serveConfig
	if err := loadSettings("serve", cfg.settings(), nil, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	if cfg.listen != ":8080" || cfg.db.dataDir != ".data/run" || !cfg.autoMigrate || cfg.shutdownTimeout != 20*time.Second {
		t.Errorf("defaults %+v", cfg)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "database_url"), []byte("postgres://local@127.0.0.1:5433/sostenuto\n"), 0o600)
	cfg.db.dataDir = dir
	if u, err := cfg.db.resolveURL(); err != nil || u != "postgres://local@127.0.0.1:5433/sostenuto" {
		t.Errorf("resolveURL = %q, %v", u, err)
	}
}

func TestMigrateAndAdminCreate(t *testing.T) {
	db := pgtest.NewEmptyDB(t, "")
	env := []string{"SOSTENUTO_DATABASE_URL=" + db.URL, "SOSTENUTO_LOG_LEVEL=warn"}
	latest, _ := migrations.Latest()
	// Numbers may have gaps while branches land (00008 before 00007).
	files, _ := fs.Glob(migrations.FS(), "*.sql")
	code, out, stderr := runCmd(t, env, "", "migrate")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("schema at version %d (was 0; applied %d)", latest, len(files))) {
		t.Fatalf("migrate = %d %q %q", code, out, stderr)
	}
	code, out, _ = runCmd(t, env, "", "migrate")
	if code != 0 || !strings.Contains(out, "applied 0") {
		t.Errorf("second migrate = %d %q", code, out)
	}

	code, out, stderr = runCmd(t, env, "organ-pipes-42\n", "admin", "create", "--email", " Root@Example.com ", "--display-name", "Root")
	if code != 0 || !strings.Contains(out, "created admin root@example.com") {
		t.Fatalf("admin create = %d %q %q", code, out, stderr)
	}
	var role, hash string
	pool := mustPool(t, db.URL)
	if err := pool.QueryRow(context.Background(), "SELECT role, password_hash FROM users WHERE email = 'root@example.com'").Scan(&role, &hash); err != nil {
		t.Fatal(err)
	}
	if ok, err := auth.VerifyPassword("organ-pipes-42", hash); role != "admin" || !ok || err != nil {
		t.Errorf("stored admin role %q, password verifies %v (%v)", role, ok, err)
	}
	code, _, stderr = runCmd(t, append(env, "SOSTENUTO_ADMIN_PASSWORD=another-pass"), "", "admin", "create", "--email", "ROOT@example.com")
	if code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("duplicate admin = %d %q", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	latest, _ := migrations.Latest()
	code, out, _ := runCmd(t, nil, "", "version")
	if code != 0 || !strings.HasPrefix(out, "sostenuto ") || !strings.Contains(out, fmt.Sprintf("schema %d,", latest)) {
		t.Errorf("version = %d %q", code, out)
	}
}

// The real binary: starts on a fresh database, migrates, answers ready,
// and on SIGTERM finishes an in-flight request before exiting 0.
func TestServeBinarySIGTERM(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sostenuto")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	db := pgtest.NewEmptyDB(t, "")
	port := freePort(t)
	// A client that holds a request open: its body arrives slowly, so the
	// request is in flight when SIGTERM lands.
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "SOSTENUTO_DATABASE_URL="+db.URL, fmt.Sprintf("SOSTENUTO_LISTEN=127.0.0.1:%d", port),
		fmt.Sprintf("SOSTENUTO_RAFT_BIND=127.0.0.1:%d", freePort(t)), "SOSTENUTO_DATA_DIR="+t.TempDir())
	cmd.Env = append(cmd.Env, raftTLS(t, bin, t.TempDir(), "n1")...)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, base+"/api/ready", &logs)

	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/api/health", pr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	pw.Write([]byte("{")) // the request is now in flight, its body unfinished
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	pw.Close()
	if status := <-done; status != http.StatusMethodNotAllowed {
		t.Errorf("in-flight request answered %d, want its full answer (405)", status)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "draining in-flight requests") {
		t.Errorf("no shutdown log line:\n%s", logs.String())
	}
}

func waitReady(t *testing.T, url string, logs *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("not ready: %s", logs.String())
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func mustPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Package pgtest gives tests real PostgreSQL databases: each test gets its
// own database cloned from a migrated template, so test packages run in
// parallel against the cluster that `make test` starts. It also starts
// throwaway clusters for tests that stop and restart PostgreSQL.
//
// The test cluster's URL comes from SOSTENUTO_TEST_DATABASE_URL (or
// SOSTENUTO_TEST_DATABASE_URL_FILE), else from .data/test/database_url at the
// repository root. When none is there the test fails with a message saying
// to run `make test`: tests that need PostgreSQL never skip.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sostenuto/sostenuto/migrations"
)

// AdminURL returns the URL of the test cluster's maintenance database role
// (it may create databases). It fails the test when no cluster is configured.
func AdminURL(t testing.TB) string {
	t.Helper()
	u, err := adminURL()
	if err != nil {
		t.Fatalf("pgtest: %v (run `make test`, which starts the test cluster)", err)
	}
	return u
}

func adminURL() (string, error) {
	if u := os.Getenv("SOSTENUTO_TEST_DATABASE_URL"); u != "" {
		return u, nil
	}
	path := os.Getenv("SOSTENUTO_TEST_DATABASE_URL_FILE")
	if path == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		path = filepath.Join(root, ".data", "test", "database_url")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no test database: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// WithDatabase returns u with its database name replaced.
func WithDatabase(u, name string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		panic(fmt.Sprintf("pgtest: bad URL: %v", err))
	}
	parsed.Path = "/" + name
	return parsed.String()
}

// DB is a fresh, migrated database that lives as long as the test.
type DB struct {
	Name string
	URL  string
	Pool *pgxpool.Pool
}

// NewDB creates a database cloned from the migrated template and drops it
// when the test ends.
func NewDB(t testing.TB) *DB {
	t.Helper()
	db := NewEmptyDB(t, templateName(t))
	pool, err := pgxpool.New(context.Background(), db.URL)
	if err != nil {
		t.Fatalf("pgtest: connect %s: %v", db.Name, err)
	}
	t.Cleanup(pool.Close)
	db.Pool = pool
	return db
}

// NewEmptyDB creates a database from template (template1, which has pgvector,
// when empty) without a pool and drops it when the test ends.
func NewEmptyDB(t testing.TB, template string) *DB {
	t.Helper()
	if template == "" {
		template = "template1"
	}
	admin := AdminURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: connect to test cluster: %v", err)
	}
	defer conn.Close(ctx)
	name := "test_" + randomHex(8)
	sql := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize())
	for attempt := 0; ; attempt++ {
		_, err := conn.Exec(ctx, sql)
		if err == nil {
			break
		}
		// A test run of another checkout with other migrations, sharing
		// the cluster, dropped our template as stale: build it again.
		var pgErr *pgconn.PgError
		if attempt < 3 && errors.As(err, &pgErr) && pgErr.Code == "3D000" && strings.HasPrefix(template, "sostenuto_tmpl_") {
			if err := ensureTemplate(admin, template); err != nil {
				t.Fatalf("pgtest: rebuild template: %v", err)
			}
			continue
		}
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
	t.Cleanup(func() { dropDatabase(t, admin, name) })
	return &DB{Name: name, URL: WithDatabase(admin, name)}
}

func dropDatabase(t testing.TB, admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Errorf("pgtest: drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	// A backend of the database may still be closing; retry briefly.
	for attempt := 0; ; attempt++ {
		// Replication slots of the database (changefeeds) hold it open.
		conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active`, name)        //nolint:errcheck // best effort
		conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, name) //nolint:errcheck // best effort
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		if err == nil || attempt == 20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("pgtest: drop %s: %v", name, err)
	}
}

var (
	templateOnce sync.Mutex
	templateDone string
)

// templateName returns the migrated template database for the embedded
// migrations, building it once per cluster (guarded by an advisory lock, as
// test packages run in parallel processes). Its name carries a hash of the
// migration files, so a changed migration builds a new template.
func templateName(t testing.TB) string {
	t.Helper()
	templateOnce.Lock()
	defer templateOnce.Unlock()
	if templateDone != "" {
		return templateDone
	}
	name := "sostenuto_tmpl_" + migrationsHash(t)
	if err := ensureTemplate(AdminURL(t), name); err != nil {
		t.Fatalf("pgtest: template: %v", err)
	}
	templateDone = name
	return name
}

func ensureTemplate(admin, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	const lockKey = 0x7067746d706c // "pgtmpl"
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return err
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", lockKey) //nolint:errcheck // closing the connection releases it too
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := name + "_building"
	for _, sql := range []string{
		"DROP DATABASE IF EXISTS " + pgx.Identifier{building}.Sanitize() + " WITH (FORCE)",
		"CREATE DATABASE " + pgx.Identifier{building}.Sanitize() + " TEMPLATE template1",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	pool, err := pgxpool.New(ctx, WithDatabase(admin, building))
	if err != nil {
		return err
	}
	_, err = migrations.Up(ctx, pool, slog.New(slog.DiscardHandler))
	pool.Close()
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{building}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize())
	if err != nil {
		return err
	}
	dropStaleTemplates(ctx, conn, name)
	return nil
}

// dropStaleTemplates removes templates of earlier migration sets, but the
// three newest: checkouts with other migrations (branches tested side by
// side on one cluster) keep theirs. One still in use (by a test run of
// older code) is left for a later run to drop.
func dropStaleTemplates(ctx context.Context, conn *pgx.Conn, keep string) {
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'sostenuto\_tmpl\_%' AND datname <> $1
		AND datname NOT LIKE '%\_building' ORDER BY oid DESC OFFSET 3`, keep)
	if err != nil {
		return
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, name := range stale {
		conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, name) //nolint:errcheck // best effort
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize())                                                      //nolint:errcheck // best effort
	}
}

func migrationsHash(t testing.TB) string {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS(), path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatalf("pgtest: hash migrations: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

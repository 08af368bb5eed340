// Package migrations holds Sostenuto's database schema as numbered,
// forward-only SQL files embedded into the binary, and applies them with
// goose under a PostgreSQL advisory lock so several nodes may start at once.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

// FS returns the embedded migration files.
func FS() fs.FS { return files }

// lockID is the advisory lock key shared by every node; the value spells
// "sostenut" in ASCII so it does not collide with other applications' keys.
const lockID int64 = 0x736f7374656e7574

// Result reports what Up did.
type Result struct {
	From, To int64 // schema version before and after
	Applied  int   // migrations applied by this call
}

// Up applies every pending migration through pool. It waits for the advisory
// lock when another node is migrating, then finds nothing left to do.
func Up(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) (Result, error) {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return up(ctx, db, logger)
}

func up(ctx context.Context, db *sql.DB, logger *slog.Logger) (Result, error) {
	// Poll the lock every second for up to 5 minutes: a first migration on a
	// large database (an index build) can take that long.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 300))
	if err != nil {
		return Result{}, fmt.Errorf("migrations: locker: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return Result{}, fmt.Errorf("migrations: provider: %w", err)
	}
	from, err := p.GetDBVersion(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("migrations: read version: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("migrations: up: %w", err)
	}
	to, err := p.GetDBVersion(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("migrations: read version: %w", err)
	}
	for _, r := range results {
		logger.Info("migration applied", "component", "migrations",
			"version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return Result{From: from, To: to, Applied: len(results)}, nil
}

// Latest returns the highest migration version embedded in the binary.
func Latest() (int64, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return 0, fmt.Errorf("migrations: list: %w", err)
	}
	var latest int64
	for _, name := range names {
		v, err := goose.NumericComponent(name)
		if err != nil {
			return 0, fmt.Errorf("migrations: %s: %w", name, err)
		}
		latest = max(latest, v)
	}
	return latest, nil
}

// Pending lists the embedded migrations the database has not applied,
// reading goose's version table without changing anything (all of them
// when the table does not exist yet).
func Pending(ctx context.Context, pool *pgxpool.Pool) ([]int64, error) {
	applied := map[int64]bool{}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("migrations: read version: %w", err)
	}
	if exists {
		rows, err := pool.Query(ctx, `SELECT DISTINCT ON (version_id) version_id, is_applied
			FROM goose_db_version ORDER BY version_id, id DESC`)
		if err != nil {
			return nil, fmt.Errorf("migrations: read version: %w", err)
		}
		for rows.Next() {
			var v int64
			var ok bool
			if err := rows.Scan(&v, &ok); err != nil {
				return nil, fmt.Errorf("migrations: read version: %w", err)
			}
			applied[v] = ok
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("migrations: read version: %w", err)
		}
	}
	return notApplied(applied)
}

// notApplied lists the embedded versions applied does not hold, in order.
func notApplied(applied map[int64]bool) ([]int64, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrations: list: %w", err)
	}
	var pending []int64
	for _, name := range names {
		v, err := goose.NumericComponent(name)
		if err != nil {
			return nil, fmt.Errorf("migrations: %s: %w", name, err)
		}
		if !applied[v] {
			pending = append(pending, v)
		}
	}
	return pending, nil
}

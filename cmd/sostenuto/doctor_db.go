package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sostenuto/sostenuto/migrations"
	"github.com/sostenuto/sostenuto/replication"
)

// minPgvector is the oldest pgvector the schema works with.
var minPgvector = [2]int{0, 7}

// database connects as the configured (owning) role.
func (d *doctor) database(ctx context.Context) checkResult {
	url, err := d.cfg.serve.db.resolveURL()
	if err != nil {
		return fail("database", err, "set SOSTENUTO_DATABASE_URL (or _FILE)")
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return fail("database", errors.New("the database URL does not parse"), "write it as postgres://USER:PASSWORD@HOST:5432/DB?sslmode=require")
	}
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		return fail("database", fmt.Errorf("%s:%d: %w", pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, err),
			"check the host, port, user and password of SOSTENUTO_DATABASE_URL, that PostgreSQL runs, and that it accepts this host (listen_addresses, pg_hba.conf)")
	}
	d.db, d.dbName = pool, pcfg.ConnConfig.Database
	var version string
	if err := pool.QueryRow(ctx, `SHOW server_version`).Scan(&version); err != nil {
		return fail("database", err, "check the role's rights")
	}
	return pass("database", fmt.Sprintf("reachable at %s:%d, PostgreSQL %s", pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, version))
}

// migrations reports migrations the database has not applied.
func (d *doctor) migrations(ctx context.Context) checkResult {
	if d.db == nil {
		return skip("migrations", "needs the database")
	}
	pending, err := migrations.Pending(ctx, d.db)
	if err != nil {
		return fail("migrations", err, "check the role's rights on the database")
	}
	latest, _ := migrations.Latest()
	if len(pending) > 0 {
		return fail("migrations", fmt.Errorf("%d pending (%v; the binary's latest is %d)", len(pending), pending, latest),
			"run `sostenuto migrate` (or start a node with SOSTENUTO_AUTO_MIGRATE=true, the default)")
	}
	return pass("migrations", fmt.Sprintf("schema at version %d, nothing pending", latest))
}

// pgvector checks the extension installed in the database (or, before
// the first migration, available on the server).
func (d *doctor) pgvector(ctx context.Context) checkResult {
	if d.db == nil {
		return skip("pgvector", "needs the database")
	}
	var installed, available *string
	err := d.db.QueryRow(ctx, `SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
		(SELECT default_version FROM pg_available_extensions WHERE name = 'vector')`).Scan(&installed, &available)
	if err != nil {
		return fail("pgvector", err, "check the role's rights")
	}
	v, where := installed, "installed"
	if v == nil {
		v, where = available, "available, not yet created (the migrations create it)"
	}
	if v == nil {
		return fail("pgvector", errors.New("not available on the server"), "install pgvector ≥ 0.7 (`scripts/deps.sh` on Debian 12; managed PostgreSQL: enable the vector extension)")
	}
	if !versionAtLeast(*v, minPgvector) {
		return fail("pgvector", fmt.Errorf("version %s %s; 0.7 or later needed", *v, where), "upgrade pgvector, then `ALTER EXTENSION vector UPDATE`")
	}
	return pass("pgvector", "version "+*v+" "+where)
}

// versionAtLeast compares a "major.minor[.patch]" version with min.
func versionAtLeast(v string, min [2]int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return major > min[0] || major == min[0] && minor >= min[1]
}

// walLevel checks the server settings the changefeed needs.
func (d *doctor) walLevel(ctx context.Context) checkResult {
	if d.db == nil {
		return skip("wal_level", "needs the database")
	}
	var level string
	var slots, senders int
	err := d.db.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int,
		current_setting('max_wal_senders')::int`).Scan(&level, &slots, &senders)
	if err != nil {
		return fail("wal_level", err, "check the role's rights")
	}
	if level != "logical" {
		return fail("wal_level", fmt.Errorf("wal_level is %s; the changefeed needs logical", level),
			"`ALTER SYSTEM SET wal_level = logical;` then restart PostgreSQL (managed services: their logical replication setting)")
	}
	if slots < 1 || senders < 1 {
		return fail("wal_level", fmt.Errorf("max_replication_slots %d, max_wal_senders %d", slots, senders), "set both to at least 4 and restart PostgreSQL")
	}
	return pass("wal_level", fmt.Sprintf("logical (max_replication_slots %d, max_wal_senders %d)", slots, senders))
}

// slot reports the changefeed slot's state.
func (d *doctor) slot(ctx context.Context) checkResult {
	if d.db == nil {
		return skip("slot", "needs the database")
	}
	name := replication.SlotName(d.dbName)
	var active bool
	var status *string
	var retained *float64
	err := d.db.QueryRow(ctx, `SELECT active, wal_status, (pg_current_wal_lsn() - restart_lsn)::float8
		FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&active, &status, &retained)
	if errors.Is(err, pgx.ErrNoRows) {
		return pass("slot", name+" not created yet (the first leader creates it)")
	}
	if err != nil {
		return fail("slot", err, "check the role's rights")
	}
	if status != nil && *status == "lost" {
		return fail("slot", fmt.Errorf("%s is invalidated (wal_status lost: max_slot_wal_keep_size exceeded)", name),
			fmt.Sprintf("nothing to do if a node leads (it rebuilds from a fresh base); else `SELECT pg_drop_replication_slot('%s')`", name))
	}
	return pass("slot", fmt.Sprintf("%s active=%t wal_status=%s retains %s of WAL", name, active, deref(status), mib(retained)))
}

func deref(s *string) string {
	if s == nil {
		return "unknown"
	}
	return *s
}

func mib(b *float64) string {
	if b == nil {
		return "no"
	}
	return fmt.Sprintf("%.1f MiB", *b/(1<<20))
}

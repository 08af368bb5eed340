// Package store is the only owner of CRUD SQL. Each resource has its own
// file with its queries beside the methods that run them; row structs stay
// private to this package and map to the domain types it returns.
//
// The request path runs as the role sostenuto_app, under Row Level Security
// (migrations/00002_access.sql): OpenAppPool sets the role on every
// connection, and queries on protected tables run in a transaction that
// names the acting user (AsUser).
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Database roles.
const (
	AppRole    = "sostenuto_app"
	WorkerRole = "sostenuto_worker"
)

// Store runs queries against the pool.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store over pool; pool should come from OpenPool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Ping checks the database is reachable.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// PoolConfig parses url into a pool configuration whose connections all run
// as role (AppRole for the request path, WorkerRole for background work).
func PoolConfig(url, role string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize())
		return err
	}
	return cfg, nil
}

// OpenPool opens a pool whose connections run as role.
func OpenPool(ctx context.Context, url, role string) (*pgxpool.Pool, error) {
	cfg, err := PoolConfig(url, role)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// AsUser runs fn in a transaction whose Row Level Security user is uid.
func (s *Store) AsUser(ctx context.Context, uid uuid.UUID, fn func(pgx.Tx) error) error {
	if uid == uuid.Nil {
		return errors.New("store: a transaction as the nil user")
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('sostenuto.user_id', $1, true)", uid.String()); err != nil {
			return err
		}
		return fn(tx)
	})
}

// uniqueViolation reports whether err violates the named unique constraint
// (any unique constraint when name is empty).
func uniqueViolation(err error, name string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (name == "" || pgErr.ConstraintName == name)
}

// fkViolation reports whether err violates a foreign key.
func fkViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/server/fault"
)

// Grant gives a user a permission on a project.
type Grant struct {
	ProjectID  uuid.UUID
	UserID     uuid.UUID
	Permission string
	GrantedBy  *uuid.UUID
	CreatedAt  time.Time
}

// grantRow is how a project_grants row scans; Grant(r) is the record.
type grantRow struct {
	ProjectID  uuid.UUID  `db:"project_id"`
	UserID     uuid.UUID  `db:"user_id"`
	Permission string     `db:"permission"`
	GrantedBy  *uuid.UUID `db:"granted_by"`
	CreatedAt  time.Time  `db:"created_at"`
}

// scanGrant scans a row into a Grant.
func scanGrant(row pgx.CollectableRow) (Grant, error) {
	r, err := pgx.RowToStructByName[grantRow](row)
	return Grant(r), err
}

const grantColumns = "project_id, user_id, permission, granted_by, created_at"

// PutGrant creates or changes user's grant on project, as actor; created
// says which.
func (s *Store) PutGrant(ctx context.Context, actor, project, user uuid.UUID, permission string) (g Grant, created bool, err error) {
	err = s.AsUser(ctx, actor, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO project_grants (project_id, user_id, permission, granted_by)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT (project_id, user_id) DO UPDATE SET permission = EXCLUDED.permission,
				granted_by = EXCLUDED.granted_by, updated_at = now()
			RETURNING `+grantColumns+`, (xmax = 0) AS created`, project, user, permission, actor)
		if err != nil {
			return err
		}
		type row struct {
			grantRow
			Created bool `db:"created"`
		}
		r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[row])
		g, created = Grant(r.grantRow), r.Created
		return err
	})
	if fkViolation(err) {
		return Grant{}, false, fmt.Errorf("store: put grant: %w", fault.ErrNotFound)
	}
	if err != nil {
		return Grant{}, false, fmt.Errorf("store: put grant: %w", err)
	}
	g.CreatedAt = g.CreatedAt.UTC()
	return g, created, nil
}

// GrantOf returns user's grant on project, as actor.
func (s *Store) GrantOf(ctx context.Context, actor, project, user uuid.UUID) (Grant, error) {
	var g Grant
	err := s.AsUser(ctx, actor, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT `+grantColumns+` FROM project_grants WHERE project_id = $1 AND user_id = $2`, project, user)
		var err error
		g, err = pgx.CollectExactlyOneRow(rows, scanGrant)
		return err
	})
	g.CreatedAt = g.CreatedAt.UTC()
	return g, notFound("grant", err)
}

// ListGrants lists a project's grants, oldest first.
func (s *Store) ListGrants(ctx context.Context, actor, project uuid.UUID) ([]Grant, error) {
	var gs []Grant
	err := s.AsUser(ctx, actor, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT `+grantColumns+` FROM project_grants WHERE project_id = $1
			ORDER BY created_at, user_id`, project)
		var err error
		gs, err = pgx.CollectRows(rows, scanGrant)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list grants: %w", err)
	}
	for i := range gs {
		gs[i].CreatedAt = gs[i].CreatedAt.UTC()
	}
	return gs, nil
}

// DeleteGrant revokes user's grant on project, as actor.
func (s *Store) DeleteGrant(ctx context.Context, actor, project, user uuid.UUID) error {
	var n int64
	err := s.AsUser(ctx, actor, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM project_grants WHERE project_id = $1 AND user_id = $2`, project, user)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("store: delete grant: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("store: delete grant: %w", fault.ErrNotFound)
	}
	return nil
}

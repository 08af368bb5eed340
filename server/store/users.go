package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/server/fault"
)

// Roles a user may hold.
const (
	RoleTeacher = "teacher"
	RoleStudent = "student"
	RoleAdmin   = "admin"
)

// User is an account.
type User struct {
	ID          uuid.UUID
	Email       string
	DisplayName string
	Role        string
	CreatedAt   time.Time
}

// NewUser is what creating a user needs; Email must be normalized and
// PasswordHash already computed. ExternalSubject is the Supabase Auth
// subject of a user provisioned from a Supabase token.
type NewUser struct {
	Email           string
	DisplayName     string
	Role            string
	PasswordHash    string
	ExternalSubject string
}

type userRow struct {
	ID          uuid.UUID `db:"id"`
	Email       string    `db:"email"`
	DisplayName string    `db:"display_name"`
	Role        string    `db:"role"`
	CreatedAt   time.Time `db:"created_at"`
}

func (r userRow) user() User {
	return User{ID: r.ID, Email: r.Email, DisplayName: r.DisplayName, Role: r.Role, CreatedAt: r.CreatedAt.UTC()}
}

const userColumns = "id, email, display_name, role, created_at"

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// CreateUser inserts a user. An email already taken (in any letter case)
// is fault.ErrConflict.
func (s *Store) CreateUser(ctx context.Context, u NewUser) (User, error) {
	rows, _ := s.pool.Query(ctx, `INSERT INTO users (email, display_name, role, password_hash, external_subject)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+userColumns,
		u.Email, u.DisplayName, u.Role, nullIfEmpty(u.PasswordHash), nullIfEmpty(u.ExternalSubject))
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[userRow])
	if uniqueViolation(err, "users_email_key") {
		return User{}, fmt.Errorf("store: create user: email %s is taken: %w", u.Email, fault.ErrConflict)
	}
	if uniqueViolation(err, "users_external_subject_key") {
		return User{}, fmt.Errorf("store: create user: subject is taken: %w", fault.ErrConflict)
	}
	if err != nil {
		return User{}, fmt.Errorf("store: create user: %w", err)
	}
	return row.user(), nil
}

func (s *Store) oneUser(ctx context.Context, op, where string, arg any) (User, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users WHERE `+where, arg)
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[userRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("store: %s: %w", op, fault.ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("store: %s: %w", op, err)
	}
	return row.user(), nil
}

// UserByID loads a user.
func (s *Store) UserByID(ctx context.Context, id uuid.UUID) (User, error) {
	return s.oneUser(ctx, "user by id", "id = $1", id)
}

// UserByEmail loads a user by normalized email.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	return s.oneUser(ctx, "user by email", "lower(email) = lower($1)", email)
}

// UserByExternalSubject loads the user provisioned for a Supabase subject.
func (s *Store) UserByExternalSubject(ctx context.Context, sub string) (User, error) {
	return s.oneUser(ctx, "user by subject", "external_subject = $1", sub)
}

// Credentials returns the user with email and its password hash ("" for a
// user who signs in only through Supabase).
func (s *Store) Credentials(ctx context.Context, email string) (User, string, error) {
	var r userRow
	var hash *string
	err := s.pool.QueryRow(ctx, `SELECT id, email, display_name, role, created_at, password_hash
		FROM users WHERE lower(email) = lower($1)`, email).
		Scan(&r.ID, &r.Email, &r.DisplayName, &r.Role, &r.CreatedAt, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, "", fmt.Errorf("store: credentials: %w", fault.ErrNotFound)
	}
	if err != nil {
		return User{}, "", fmt.Errorf("store: credentials: %w", err)
	}
	if hash == nil {
		return r.user(), "", nil
	}
	return r.user(), *hash, nil
}

// userInSessionSQL reads a user ($1) and whether its login session ($2, a
// refresh-token family) is live.
const userInSessionSQL = `SELECT id, email, display_name, role, created_at,
		EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = $2 AND t.user_id = users.id AND t.revoked_at IS NULL)
	FROM users WHERE id = $1`

// UserInSession loads the user of an access token and reports whether its
// login session (refresh-token family sid) is still live: logout and replay
// revocation end it.
func (s *Store) UserInSession(ctx context.Context, id, sid uuid.UUID) (User, bool, error) {
	var r userRow
	var live bool
	err := s.pool.QueryRow(ctx, userInSessionSQL, id, sid).
		Scan(&r.ID, &r.Email, &r.DisplayName, &r.Role, &r.CreatedAt, &live)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, false, fmt.Errorf("store: user in session: %w", fault.ErrNotFound)
	}
	if err != nil {
		return User{}, false, fmt.Errorf("store: user in session: %w", err)
	}
	return r.user(), live, nil
}

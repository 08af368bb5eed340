package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Roles a user may hold.
const (
	RoleTeacher = "teacher"
	RoleStudent = "student"
	RoleAdmin   = "admin"
)

// User is an account.
type User struct {
	ID          uuid.UUID `json:"id"`
	Email       string    `json:"email"`
	DisplayName string    `json:"display_name"`
	Role        string    `json:"role"`
	CreatedAt   time.Time `json:"created_at"`
}

// NewUser is what creating a user needs; Email must be normalized and
// PasswordHash already computed.
type NewUser struct {
	Email        string
	DisplayName  string
	Role         string
	PasswordHash string
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

// CreateUser inserts a user. An email already taken (in any letter case)
// is ErrConflict.
func (s *Store) CreateUser(ctx context.Context, u NewUser) (User, error) {
	rows, _ := s.pool.Query(ctx, `INSERT INTO users (email, display_name, role, password_hash)
		VALUES ($1, $2, $3, $4) RETURNING `+userColumns, u.Email, u.DisplayName, u.Role, u.PasswordHash)
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[userRow])
	if uniqueViolation(err, "users_email_key") {
		return User{}, fmt.Errorf("store: create user: email %s is taken: %w", u.Email, ErrConflict)
	}
	if err != nil {
		return User{}, fmt.Errorf("store: create user: %w", err)
	}
	return row.user(), nil
}

// UserByID loads a user.
func (s *Store) UserByID(ctx context.Context, id uuid.UUID) (User, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id)
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[userRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("store: user %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("store: user %s: %w", id, err)
	}
	return row.user(), nil
}

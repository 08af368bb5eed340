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

// Refresh-token outcomes besides success.
var (
	// ErrTokenReplayed: the token was already spent or revoked; its whole
	// family has now been revoked.
	ErrTokenReplayed = errors.New("refresh token replayed")
	// ErrTokenExpired: the token outlived its lifetime.
	ErrTokenExpired = errors.New("refresh token expired")
)

// CreateRefreshToken stores the hash of a new token of family for user.
func (s *Store) CreateRefreshToken(ctx context.Context, user, family uuid.UUID, hash []byte, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at)
		VALUES ($1, $2, $3, $4)`, user, family, hash, expires)
	if err != nil {
		return fmt.Errorf("store: create refresh token: %w", err)
	}
	return nil
}

// RotateRefreshToken spends the token with oldHash and stores newHash in the
// same family, atomically: of two racing rotations of one token exactly one
// succeeds. A token already spent or revoked is a replay: the family is
// revoked (committed even though the call fails) and ErrTokenReplayed
// returned. Unknown tokens are fault.ErrNotFound.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash, newHash []byte, expires time.Time) (user, family uuid.UUID, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE refresh_tokens SET used_at = now()
			WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
			RETURNING user_id, family_id`, oldHash).Scan(&user, &family)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at)
			VALUES ($1, $2, $3, $4)`, user, family, newHash, expires)
		return err
	})
	if err == nil {
		return user, family, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, uuid.Nil, fmt.Errorf("store: rotate refresh token: %w", err)
	}
	return uuid.Nil, uuid.Nil, s.refreshFailure(ctx, oldHash)
}

// refreshFailure says why a token could not be spent, revoking its family
// when it was replayed.
func (s *Store) refreshFailure(ctx context.Context, hash []byte) error {
	var family uuid.UUID
	var spent bool
	err := s.pool.QueryRow(ctx, `SELECT family_id, used_at IS NOT NULL OR revoked_at IS NOT NULL
		FROM refresh_tokens WHERE token_hash = $1`, hash).Scan(&family, &spent)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: rotate refresh token: %w", fault.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: rotate refresh token: %w", err)
	}
	if !spent {
		return fmt.Errorf("store: rotate refresh token: %w", ErrTokenExpired)
	}
	if err := s.revokeFamily(ctx, family); err != nil {
		return err
	}
	return fmt.Errorf("store: rotate refresh token: family %s revoked: %w", family, ErrTokenReplayed)
}

// RevokeRefreshFamily revokes the family of the token with hash (logout).
// An unknown token is fault.ErrNotFound.
func (s *Store) RevokeRefreshFamily(ctx context.Context, hash []byte) error {
	var family uuid.UUID
	err := s.pool.QueryRow(ctx, `SELECT family_id FROM refresh_tokens WHERE token_hash = $1`, hash).Scan(&family)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: revoke refresh token: %w", fault.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: revoke refresh token: %w", err)
	}
	return s.revokeFamily(ctx, family)
}

func (s *Store) revokeFamily(ctx context.Context, family uuid.UUID) error {
	_, err := s.pool.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = now()
		WHERE family_id = $1 AND revoked_at IS NULL`, family)
	if err != nil {
		return fmt.Errorf("store: revoke family: %w", err)
	}
	return nil
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/server/fault"
)

// ErrNotAnAnswer marks feedback on a message that is not an answer (a
// question of the caller's own session).
var ErrNotAnAnswer = fmt.Errorf("store: feedback is given on answers only: %w", fault.ErrInvalid)

// Feedback is a rating of one answer, as administrators review it: the
// answer, the question before it in its session, the rating and comment.
type Feedback struct {
	MessageID uuid.UUID
	Question  string
	Answer    string
	Sources   json.RawMessage
	Rating    string
	Comment   string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// feedbackRow is how a chat_feedback_review row scans; Feedback(r) is the record.
type feedbackRow struct {
	MessageID uuid.UUID       `db:"message_id"`
	Question  string          `db:"question"`
	Answer    string          `db:"answer"`
	Sources   json.RawMessage `db:"sources"`
	Rating    string          `db:"rating"`
	Comment   string          `db:"comment"`
	CreatedAt time.Time       `db:"created_at"`
	UpdatedAt time.Time       `db:"updated_at"`
}

// RateMessage records user's rating of an answer of one of user's sessions,
// replacing an earlier one. ErrNotFound: no such message, or not user's;
// ErrNotAnAnswer: a question.
func (s *Store) RateMessage(ctx context.Context, user, message uuid.UUID, rating, comment string) error {
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var role string
		err := tx.QueryRow(ctx, `SELECT role FROM chat_messages WHERE id = $1`, message).Scan(&role)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.ErrNotFound
		}
		if err != nil {
			return err
		}
		if role != "assistant" {
			return ErrNotAnAnswer
		}
		_, err = tx.Exec(ctx, `INSERT INTO chat_feedback (message_id, user_id, rating, comment) VALUES ($1, $2, $3, $4)
			ON CONFLICT (message_id) DO UPDATE SET rating = EXCLUDED.rating, comment = EXCLUDED.comment, updated_at = now()`,
			message, user, rating, comment)
		return err
	})
	if err != nil {
		return notFound("chat message", err)
	}
	return nil
}

// ListFeedback lists rated answers as admin sees them (nothing for anyone
// else), most recently rated first; rating "" lists both ratings.
func (s *Store) ListFeedback(ctx context.Context, admin uuid.UUID, rating string, page Page) ([]Feedback, string, error) {
	before, hasBefore, err := decodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	var items []Feedback
	err = s.AsUser(ctx, admin, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT message_id, question, answer, sources, rating, comment, created_at, updated_at
			FROM chat_feedback_review
			WHERE ($1 = '' OR rating = $1) AND (NOT $2 OR (updated_at, message_id) < ($3, $4))
			ORDER BY updated_at DESC, message_id DESC LIMIT $5`, rating, hasBefore, before.T, before.ID, page.Limit+1)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Feedback, error) {
			r, err := pgx.RowToStructByName[feedbackRow](row)
			return Feedback(r), err
		})
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("store: list feedback: %w", err)
	}
	for i := range items {
		items[i].CreatedAt, items[i].UpdatedAt = items[i].CreatedAt.UTC(), items[i].UpdatedAt.UTC()
	}
	return pageOf(items, page.Limit, func(f Feedback) string { return encodeCursor(f.UpdatedAt, f.MessageID) })
}

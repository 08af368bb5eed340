package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// With the application's checks off (raw statements), Row Level Security
// alone keeps ratings to the session's owner, on answers only, and the
// review view to administrators.
func TestRLSChatFeedback(t *testing.T) {
	w := newRLSWorld(t)
	ctx := context.Background()
	answer, err := w.app.AddExchange(ctx, w.alice, w.session, "When do I pedal?", ChatMessage{Content: "Late. [1]", Sources: []byte("[]"), Confidence: ptr("LOW")})
	if err != nil {
		t.Fatal(err)
	}
	var question uuid.UUID
	err = w.app.AsUser(ctx, w.alice, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT id FROM chat_messages WHERE session_id = $1 AND role = 'user' ORDER BY created_at DESC LIMIT 1`, w.session).Scan(&question)
	})
	if err != nil {
		t.Fatal(err)
	}
	exec := func(user uuid.UUID, sql string, args ...any) (int64, error) {
		var n int64
		err := w.app.AsUser(ctx, user, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, sql, args...)
			n = tag.RowsAffected()
			return err
		})
		return n, err
	}
	const insert = `INSERT INTO chat_feedback (message_id, user_id, rating) VALUES ($1, $2, 'down')`
	for _, tc := range []struct {
		name          string
		user, as, msg uuid.UUID
	}{
		{"bob rates alice's answer", w.bob, w.bob, answer},
		{"the admin rates alice's answer", w.admin, w.admin, answer},
		{"bob rates in alice's name", w.bob, w.alice, answer},
		{"alice rates a question", w.alice, w.alice, question},
	} {
		_, err := exec(tc.user, insert, tc.msg, tc.as)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: %v, want an RLS violation (42501)", tc.name, err)
		}
	}
	if n, err := exec(w.alice, insert, answer, w.alice); err != nil || n != 1 {
		t.Fatalf("alice rates her answer: %d, %v", n, err)
	}
	for _, u := range []uuid.UUID{w.bob, w.admin} {
		if n, err := exec(u, `UPDATE chat_feedback SET rating = 'up'`); err != nil || n != 0 {
			t.Errorf("another user changes the rating: %d, %v", n, err)
		}
	}
	if got := w.visible(t, w.bob, "chat_feedback", "message_id"); len(got) != 0 {
		t.Errorf("bob reads ratings: %v", got)
	}
	if got := w.visible(t, w.alice, "chat_feedback", "message_id"); !got[answer] {
		t.Errorf("alice does not read her rating: %v", got)
	}
	// The review view answers administrators only.
	for user, want := range map[uuid.UUID]bool{w.alice: false, w.bob: false, w.student: false, w.admin: true} {
		if got := w.visible(t, user, "chat_feedback_review", "message_id"); got[answer] != want {
			t.Errorf("user %s reads the review: %v, want %v", user, got[answer], want)
		}
	}
	items, _, err := w.app.ListFeedback(ctx, w.admin, "", Page{Limit: 10})
	if err != nil || len(items) != 1 || items[0].Question != "When do I pedal?" || items[0].Rating != "down" {
		t.Errorf("the admin's list: %+v, %v", items, err)
	}
}

func ptr[T any](v T) *T { return &v }

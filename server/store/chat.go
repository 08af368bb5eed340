package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sostenuto/sostenuto/server/fault"
)

// ChatSession is a user's conversation with the knowledge base.
type ChatSession struct {
	ID        uuid.UUID
	UserID    uuid.UUID
	Title     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// chatSessionRow is how a chat_sessions row scans; ChatSession(r) is the record.
type chatSessionRow struct {
	ID        uuid.UUID `db:"id"`
	UserID    uuid.UUID `db:"user_id"`
	Title     string    `db:"title"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
}

// scanChatSession scans a row into a ChatSession.
func scanChatSession(row pgx.CollectableRow) (ChatSession, error) {
	r, err := pgx.RowToStructByName[chatSessionRow](row)
	return ChatSession(r), err
}

// ChatMessage is one question or answer of a session.
type ChatMessage struct {
	ID         uuid.UUID
	SessionID  uuid.UUID
	Role       string
	Content    string
	Sources    json.RawMessage
	Confidence *string
	Model      *string
	CreatedAt  time.Time
}

// chatMessageRow is how a chat_messages row scans; ChatMessage(r) is the record.
type chatMessageRow struct {
	ID         uuid.UUID       `db:"id"`
	SessionID  uuid.UUID       `db:"session_id"`
	Role       string          `db:"role"`
	Content    string          `db:"content"`
	Sources    json.RawMessage `db:"sources"`
	Confidence *string         `db:"confidence"`
	Model      *string         `db:"model"`
	CreatedAt  time.Time       `db:"created_at"`
}

// scanChatMessage scans a row into a ChatMessage.
func scanChatMessage(row pgx.CollectableRow) (ChatMessage, error) {
	r, err := pgx.RowToStructByName[chatMessageRow](row)
	return ChatMessage(r), err
}

const (
	sessionColumns = "id, user_id, title, created_at, updated_at"
	messageColumns = "id, session_id, role, content, sources, confidence, model, created_at"
)

func utcSession(s ChatSession) ChatSession {
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s
}

// CreateChatSession starts a session of user.
func (s *Store) CreateChatSession(ctx context.Context, user uuid.UUID, title string) (ChatSession, error) {
	var out ChatSession
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO chat_sessions (user_id, title) VALUES ($1, $2) RETURNING `+sessionColumns, user, title)
		if err != nil {
			return err
		}
		out, err = pgx.CollectExactlyOneRow(rows, scanChatSession)
		return err
	})
	if err != nil {
		return ChatSession{}, fmt.Errorf("store: create chat session: %w", err)
	}
	return utcSession(out), nil
}

// ChatSessionByID loads a session as user (only its owner sees it).
func (s *Store) ChatSessionByID(ctx context.Context, user, id uuid.UUID) (ChatSession, error) {
	var out ChatSession
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+sessionColumns+` FROM chat_sessions WHERE id = $1`, id)
		if err != nil {
			return err
		}
		out, err = pgx.CollectExactlyOneRow(rows, scanChatSession)
		return err
	})
	if err != nil {
		return ChatSession{}, notFound("chat session", err)
	}
	return utcSession(out), nil
}

// ListChatSessions lists user's sessions, most recently active first.
func (s *Store) ListChatSessions(ctx context.Context, user uuid.UUID, page Page) ([]ChatSession, string, error) {
	before, hasBefore, err := decodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	var items []ChatSession
	err = s.AsUser(ctx, user, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+sessionColumns+` FROM chat_sessions
			WHERE user_id = $1 AND (NOT $2 OR (updated_at, id) < ($3, $4))
			ORDER BY updated_at DESC, id DESC LIMIT $5`, user, hasBefore, before.T, before.ID, page.Limit+1)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, scanChatSession)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("store: list chat sessions: %w", err)
	}
	for i := range items {
		items[i] = utcSession(items[i])
	}
	return pageOf(items, page.Limit, func(c ChatSession) string { return encodeCursor(c.UpdatedAt, c.ID) })
}

// ChatMessages lists a session's messages in order (as user: none unless
// user owns it).
func (s *Store) ChatMessages(ctx context.Context, user, session uuid.UUID) ([]ChatMessage, error) {
	var items []ChatMessage
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+messageColumns+` FROM chat_messages WHERE session_id = $1
			ORDER BY created_at, id`, session)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, scanChatMessage)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: chat messages: %w", err)
	}
	for i := range items {
		items[i].CreatedAt = items[i].CreatedAt.UTC()
	}
	if items == nil {
		items = []ChatMessage{}
	}
	return items, nil
}

// DeleteChatSession deletes a session and its messages (as user).
func (s *Store) DeleteChatSession(ctx context.Context, user, id uuid.UUID) error {
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM chat_sessions WHERE id = $1`, id)
		if err == nil && tag.RowsAffected() == 0 {
			return fault.ErrNotFound
		}
		return err
	})
	if err != nil {
		return notFound("chat session", err)
	}
	return nil
}

// AddExchange stores a question and its answer in a session, in one
// transaction, marks the session active, and returns the stored answer's id.
// Both rows are stamped with clock_timestamp() after the session row's lock
// is held (not now(), the transaction's start): exchanges of one session
// are thus ordered as written, and an answer's question is the last one
// before it (RecentTurns, chat_feedback_review) even when two questions
// were asked at once.
func (s *Store) AddExchange(ctx context.Context, user, session uuid.UUID, question string, answer ChatMessage) (uuid.UUID, error) {
	var id uuid.UUID
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE chat_sessions SET updated_at = now() WHERE id = $1`, session)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fault.ErrNotFound
		}
		if _, err := tx.Exec(ctx, `INSERT INTO chat_messages (session_id, role, content, created_at) VALUES ($1, 'user', $2, clock_timestamp())`, session, question); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO chat_messages (session_id, role, content, sources, confidence, model, created_at)
			VALUES ($1, 'assistant', $2, $3, $4, $5, clock_timestamp()) RETURNING id`,
			session, answer.Content, answer.Sources, answer.Confidence, answer.Model).Scan(&id)
	})
	if err != nil {
		return uuid.Nil, notFound("chat session", err)
	}
	return id, nil
}

// ChatTurn is one earlier exchange of a session: the question as asked
// and its answer.
type ChatTurn struct {
	Question, Answer string
}

// RecentTurns returns the last n exchanges of a session, oldest first (as
// user: none unless user owns it). A question without an answer yet is
// left out.
func (s *Store) RecentTurns(ctx context.Context, user, session uuid.UUID, n int) ([]ChatTurn, error) {
	var turns []ChatTurn
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT q.content, a.content FROM (
				SELECT id, content, created_at FROM chat_messages
				WHERE session_id = $1 AND role = 'assistant' ORDER BY created_at DESC, id DESC LIMIT $2) a
			CROSS JOIN LATERAL (SELECT content FROM chat_messages
				WHERE session_id = $1 AND role = 'user' AND (created_at, id) < (a.created_at, a.id)
				ORDER BY created_at DESC, id DESC LIMIT 1) q
			ORDER BY a.created_at, a.id`, session, n)
		if err != nil {
			return err
		}
		turns, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ChatTurn, error) {
			var t ChatTurn
			return t, row.Scan(&t.Question, &t.Answer)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: recent turns: %w", err)
	}
	return turns, nil
}

// SessionVisibleChunks is VisibleChunks for user in login session sid,
// whose liveness and role it reads in the same round trip (the query of
// UserInSession, run before the Row Level Security user is set, as it is
// alone): live is false when the session ended or the user is gone (role
// ""). The session is read even when ids is empty.
func (s *Store) SessionVisibleChunks(ctx context.Context, user, sid uuid.UUID, ids []uuid.UUID) (visible map[uuid.UUID]bool, role string, live bool, err error) {
	if user == uuid.Nil {
		return nil, "", false, errors.New("store: session visible chunks: the nil user")
	}
	visible = make(map[uuid.UUID]bool, len(ids))
	b := &pgx.Batch{}
	b.Queue(userInSessionSQL, user, sid).QueryRow(func(row pgx.Row) error {
		var r userRow
		err := row.Scan(&r.ID, &r.Email, &r.DisplayName, &r.Role, &r.CreatedAt, &live)
		if errors.Is(err, pgx.ErrNoRows) {
			live = false
			return nil
		}
		role = r.Role
		return err
	})
	if len(ids) > 0 {
		queueVisible(b, user, ids, visible)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, "", false, fmt.Errorf("store: session visible chunks: %w", err)
	}
	if !live {
		return nil, "", false, nil
	}
	return visible, role, true, nil
}

// VisibleChunks reports which of ids user may see now (as user, under Row
// Level Security): the last check before a chunk reaches an answer. Ids
// of both kinds are checked in one query: knowledge chunks by their
// document's visibility, annotation chunks by view permission on their
// project (annotation_chunks_select).
func (s *Store) VisibleChunks(ctx context.Context, user uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	out := make(map[uuid.UUID]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	if user == uuid.Nil {
		return nil, errors.New("store: visible chunks: the nil user")
	}
	b := &pgx.Batch{}
	queueVisible(b, user, ids, out)
	err := s.pool.SendBatch(ctx, b).Close()
	if err != nil {
		return nil, fmt.Errorf("store: visible chunks: %w", err)
	}
	return out, nil
}

// queueVisible queues VisibleChunks' statements, which mark in out the ids
// user may see. One round trip: a batch runs as one implicit transaction,
// so the Row Level Security user set locally holds for the query after it.
// The ids are sent as pgtype.UUID, encoded in binary as they are
// (uuid.UUID would go through its driver.Valuer: formatted as text, then
// parsed back).
func queueVisible(b *pgx.Batch, user uuid.UUID, ids []uuid.UUID, out map[uuid.UUID]bool) {
	b.Queue(`SELECT set_config('sostenuto.user_id', $1, true)`, user.String())
	arg := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		arg[i] = pgtype.UUID{Bytes: id, Valid: true}
	}
	b.Queue(`SELECT id FROM chunks WHERE id = ANY($1)
		UNION ALL SELECT annotation_id FROM annotation_chunks WHERE annotation_id = ANY($1)`, arg).Query(func(rows pgx.Rows) error {
		seen, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		for _, id := range seen {
			out[id] = true
		}
		return err
	})
}

// Package searchtest builds the real parts the search and answer services
// are tested on: a PostgreSQL database cloned from the migrated template,
// users and documents written as the table owner, and the node's
// in-memory engine fed by the real changefeed.
package searchtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pgvector/pgvector-go"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/replication"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/store"
)

// World is a database with a teacher, her student, a stranger and an
// administrator, and the engine the changefeed keeps in step with it.
type World struct {
	DB    *pgtest.DB
	Store *store.Store // the application's role: Row Level Security applies
	Live  *index.Live
	// Based reports whether the engine holds the changefeed's base; Stop
	// stops feeding it (it keeps what it holds).
	Based func() bool
	Stop  func()

	Teacher, Student, Stranger, Admin uuid.UUID
	n                                 atomic.Int64
}

// New builds the world and waits for the engine's base.
func New(t *testing.T) *World {
	t.Helper()
	db := pgtest.NewDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pool, err := store.OpenPool(ctx, db.URL, store.AppRole)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w := &World{DB: db, Store: store.New(pool), Teacher: uuid.New(), Student: uuid.New(), Stranger: uuid.New(), Admin: uuid.New()}
	for i, u := range []struct {
		id   uuid.UUID
		role string
	}{{w.Teacher, "teacher"}, {w.Student, "student"}, {w.Stranger, "student"}, {w.Admin, "admin"}} {
		w.exec(t, `INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, $2, 'U', $3, 'x')`,
			u.id, fmt.Sprintf("u%d@example.com", i), u.role)
	}
	w.exec(t, `INSERT INTO relationships (teacher_id, student_id) VALUES ($1, $2)`, w.Teacher, w.Student)
	w.feed(t, ctx)
	return w
}

// feed starts the changefeed into a fresh engine.
func (w *World) feed(t *testing.T, parent context.Context) {
	t.Helper()
	empty, err := index.New(index.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	w.Live = index.NewLive(empty)
	fsm := replication.NewFSM(w.Live, index.DefaultConfig())
	ctx, cancel := context.WithCancel(parent)
	feed := &replication.Feed{URL: w.DB.URL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), KeepaliveEvery: 200 * time.Millisecond}
	fed := make(chan struct{})
	go func() { feed.Run(ctx, replication.DirectProposer{FSM: fsm}); close(fed) }() //nolint:errcheck // ends with ctx
	w.Stop = func() { cancel(); <-fed }
	t.Cleanup(w.Stop)
	w.Based = func() bool { return fsm.State().Based }
	for deadline := time.Now().Add(30 * time.Second); !w.Based(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("searchtest: the changefeed loaded no base")
		}
	}
}

func (w *World) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := w.DB.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("searchtest: %s: %v", sql, err)
	}
}

// Document writes a one-chunk document of owner (its chunk embedded by
// embed.Hash) and returns its id, its chunk's and the position after it.
func (w *World) Document(t *testing.T, owner uuid.UUID, title, text string, public bool) (doc, chunk uuid.UUID, lsn index.LSN) {
	t.Helper()
	doc, chunk = uuid.New(), uuid.New()
	vs, err := embed.Hash{}.Embed(context.Background(), []string{text})
	if err != nil {
		t.Fatal(err)
	}
	w.exec(t, `INSERT INTO documents (id, owner_id, title, source_type, is_public, status) VALUES ($1, $2, $3, 'text', $4, 'completed')`,
		doc, owner, title, public)
	w.exec(t, `INSERT INTO chunks (id, document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding)
		VALUES ($1, $2, $3, 0, $4, 1, 0, $5, $6)`, chunk, doc, owner, text, len(text), pgvector.NewVector(vs[0]))
	return doc, chunk, w.Position(t)
}

// Hide makes a document private.
func (w *World) Hide(t *testing.T, doc uuid.UUID) index.LSN {
	t.Helper()
	w.exec(t, `UPDATE documents SET is_public = false WHERE id = $1`, doc)
	return w.Position(t)
}

// Position is PostgreSQL's current position.
func (w *World) Position(t *testing.T) index.LSN {
	t.Helper()
	lsn, err := w.Store.WALPosition(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// WaitIndexed waits until the engine has applied lsn.
func (w *World) WaitIndexed(t *testing.T, lsn index.LSN) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := w.Live.WaitApplied(ctx, lsn); err != nil {
		t.Fatalf("searchtest: the engine did not reach %s: %v", lsn, err)
	}
}

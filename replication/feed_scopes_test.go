package replication

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// Teacher–student relationships travel the changefeed as scope changes
// (migration 00013): making one, moving it to another student, removing
// it and deleting its teacher (a cascade) each reach the engine as a
// change of the student's scope at the transaction's position; a delete
// names the student (the replica identity is the pair, not the row's id).
func TestFeedCarriesScopeChanges(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	teacher, s1, s2 := uuid.New(), uuid.New(), uuid.New()
	lsnOf := func(sql string, args ...any) index.LSN {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		var s string
		if err := db.Pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return parseLSN(t, s)
	}
	lsnOf(`INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, 't@example.com', 'T', 'teacher', 'x'),
		($2, 's1@example.com', 'S1', 'student', 'x'), ($3, 's2@example.com', 'S2', 'student', 'x')`, teacher, s1, s2)
	sink := newDirect(t)
	feed := &Feed{URL: db.URL, Logger: slog.New(slog.DiscardHandler), KeepaliveEvery: 200 * time.Millisecond}
	go feed.Run(ctx, sink)
	waitFor(t, "base", func() bool { return sink.FSM.State().Based })
	changedAt := func(u uuid.UUID) index.LSN { return sink.Live.Engine().ScopeChangedAt(index.ID(u)) }
	step := func(what string, users []uuid.UUID, sql string, args ...any) {
		t.Helper()
		before := make([]index.LSN, len(users))
		for i, u := range users {
			before[i] = changedAt(u)
		}
		at := lsnOf(sql, args...)
		waitFor(t, what, func() bool { return sink.Live.Engine().Position().LSN >= at })
		for i, u := range users {
			if got := changedAt(u); got <= before[i] || got > at {
				t.Fatalf("%s: user %d's scope changed at %s (before %s, the write at %s)", what, i, got, before[i], at)
			}
		}
	}
	step("made", []uuid.UUID{s1}, `INSERT INTO relationships (teacher_id, student_id) VALUES ($1, $2)`, teacher, s1)
	if changedAt(s2) != 0 {
		t.Fatal("a relationship with s1 changed s2's scope")
	}
	step("moved", []uuid.UUID{s1, s2}, `UPDATE relationships SET student_id = $2 WHERE student_id = $1`, s1, s2)
	step("removed", []uuid.UUID{s2}, `DELETE FROM relationships WHERE student_id = $1`, s2)
	step("made again", []uuid.UUID{s1}, `INSERT INTO relationships (teacher_id, student_id) VALUES ($1, $2)`, teacher, s1)
	step("teacher deleted", []uuid.UUID{s1}, `DELETE FROM users WHERE id = $1`, teacher) // the relationship goes by cascade
	t2 := uuid.New()
	lsnOf(`INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, 't2@example.com', 'T2', 'teacher', 'x')`, t2)
	step("made for two", []uuid.UUID{s1, s2}, `INSERT INTO relationships (teacher_id, student_id) VALUES ($1, $2), ($1, $3)`, t2, s1, s2)
	// A TRUNCATE names no rows: every user's scope changed, even one that
	// never had a teacher.
	step("truncated", []uuid.UUID{s1, s2, uuid.New()}, `TRUNCATE relationships`)
}

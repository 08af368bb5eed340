package replication

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/index/vector"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/replication/logentry"
)

func vec(seed int) string {
	parts := make([]string, 768)
	for i := range parts {
		parts[i] = "0"
	}
	parts[seed%768] = "1"
	return "[" + strings.Join(parts, ",") + "]"
}

func TestFeedAppliesChanges(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	owner, doc1, doc2 := uuid.New(), uuid.New(), uuid.New()
	exec(`INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, 'o@example.com', 'O', 'teacher', 'x')`, owner)
	exec(`INSERT INTO documents (id, owner_id, title, source_type, is_public) VALUES ($1, $2, 'Before', 'text', true)`, doc1, owner)
	for i := range 3 {
		exec(`INSERT INTO chunks (document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding)
			VALUES ($1, $2, $3, $4, 1, 0, 5, $5::vector)`, doc1, owner, i, fmt.Sprintf("base chunk %d legato", i), vec(i))
	}
	sink := newDirect(t)
	feed := &Feed{URL: db.URL, Logger: slog.New(slog.DiscardHandler), KeepaliveEvery: 200 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- feed.Run(ctx, sink) }()
	waitFor(t, "base", func() bool { return sink.FSM.State().Based && sink.Live.Engine().Len() == 3 })

	// New document with chunks, in one transaction.
	exec(`WITH d AS (INSERT INTO documents (id, owner_id, title, source_type) VALUES ($1, $2, 'Second', 'text') RETURNING id)
		INSERT INTO chunks (document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding)
		SELECT d.id, $2, g, 'streamed staccato', 1, 0, 5, $3::vector FROM d, generate_series(0, 1) g`, doc2, owner, vec(10))
	var lsn string
	db.Pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn)
	want := parseLSN(t, lsn)
	// Waiting on the position (what min_lsn does) means the whole commit is
	// in every index.
	waitFor(t, "insert", func() bool { return sink.Live.Engine().Position().LSN >= want })
	if n := sink.Live.Engine().Len(); n != 5 {
		t.Fatalf("%d chunks at the insert's position", n)
	}
	hits, _ := sink.Live.Engine().Search(index.Query{K: 5, Mode: index.ModeBM25, Text: "staccato", Scope: index.Scope{User: index.ID(uuid.New())}})
	if len(hits) != 0 {
		t.Errorf("a private document's chunks reached a stranger: %d", len(hits))
	}
	hits, _ = sink.Live.Engine().Search(index.Query{K: 5, Mode: index.ModeBM25, Text: "staccato", Scope: index.Scope{User: index.ID(owner)}})
	if len(hits) != 2 || hits[0].Chunk.Title != "Second" {
		t.Errorf("owner's hits %+v", hits)
	}
	// Visibility change, then deletes (a cascade from the document).
	exec(`UPDATE documents SET is_public = true, title = 'Second, public' WHERE id = $1`, doc2)
	waitFor(t, "visibility", func() bool {
		h, _ := sink.Live.Engine().Search(index.Query{K: 5, Mode: index.ModeBM25, Text: "staccato", Scope: index.Scope{User: index.ID(uuid.New())}})
		return len(h) == 2 && h[0].Chunk.Title == "Second, public"
	})
	exec(`DELETE FROM documents WHERE id = $1`, doc1)
	waitFor(t, "delete", func() bool { return sink.Live.Engine().Len() == 2 })
	// Keepalives advance the position while idle, past any WAL position.
	db.Pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn)
	want = parseLSN(t, lsn)
	waitFor(t, "position", func() bool { return sink.Live.Engine().Position().LSN >= want })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// PostgreSQL restarts mid-stream: the feed starts over by itself and loses
// nothing committed meanwhile.
func TestFeedSurvivesPostgresRestart(t *testing.T) {
	cluster := pgtest.NewCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := cluster.URL()
	mustExecURL(t, url, `CREATE TABLE documents (id uuid PRIMARY KEY, owner_id uuid NOT NULL, is_public boolean NOT NULL DEFAULT false, title text NOT NULL DEFAULT '')`)
	mustExecURL(t, url, `CREATE TABLE chunks (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), document_id uuid, owner_id uuid, text text, page_start int DEFAULT 1, page_end int DEFAULT 1, version bigint DEFAULT 1, embedding text, language text NOT NULL DEFAULT 'en')`)
	mustExecURL(t, url, `CREATE PUBLICATION sostenuto_changefeed FOR TABLE chunks, documents`)
	sink := newDirect(t)
	feed := &Feed{URL: url, Slot: "restart", Logger: slog.New(slog.DiscardHandler), KeepaliveEvery: 200 * time.Millisecond}
	go feed.Run(ctx, sink)
	doc, owner := uuid.New(), uuid.New()
	mustExecURL(t, url, fmt.Sprintf(`INSERT INTO documents VALUES ('%s', '%s', true, 'D')`, doc, owner))
	mustExecURL(t, url, fmt.Sprintf(`INSERT INTO chunks (document_id, owner_id, text, embedding) VALUES ('%s', '%s', 'one', '%s')`, doc, owner, vec(1)))
	waitFor(t, "first", func() bool { return sink.Live.Engine().Len() == 1 })
	cluster.Stop()
	cluster.Start()
	mustExecURL(t, url, fmt.Sprintf(`INSERT INTO chunks (document_id, owner_id, text, embedding) VALUES ('%s', '%s', 'two', '%s')`, doc, owner, vec(2)))
	waitFor(t, "after restart", func() bool { return sink.Live.Engine().Len() == 2 })
}

// direct is an FSM fed without Raft.
type direct struct {
	DirectProposer
	Live *index.Live
}

func newDirect(t *testing.T) direct {
	live := index.NewLive(mustEngine(t))
	return direct{DirectProposer: DirectProposer{FSM: NewFSM(live, engineConfig())}, Live: live}
}

func engineConfig() index.Config {
	return index.Config{Vector: vector.DefaultConfig(768), ExactBelow: 2000}
}

func mustEngine(t *testing.T) *index.Engine {
	e, err := index.New(engineConfig())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func parseLSN(t *testing.T, s string) index.LSN {
	lsn, err := index.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

func mustExecURL(t *testing.T, url, sql string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(context.Background(), url)
		if err == nil {
			_, err = conn.Exec(context.Background(), sql)
			conn.Close(context.Background())
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", sql, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The named slot outlives a reader: a new one resumes from the applied
// position without a new base, and gets what was committed meanwhile. A
// lost slot means a fresh base.
func TestFeedResumesFromSlot(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	owner, doc := uuid.New(), uuid.New()
	exec(`INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, 'o@example.com', 'O', 'teacher', 'x')`, owner)
	exec(`INSERT INTO documents (id, owner_id, title, source_type, is_public) VALUES ($1, $2, 'D', 'text', true)`, doc, owner)
	insert := func(i int) {
		exec(`INSERT INTO chunks (document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding)
			VALUES ($1, $2, $3, 'c', 1, 0, 1, $4::vector)`, doc, owner, i, vec(i))
	}
	insert(0)
	sink := newDirect(t)
	var bases atomic.Int32
	counting := countingProposer{direct: sink, bases: &bases}
	run := func() (context.CancelFunc, chan struct{}) {
		fctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		feed := &Feed{URL: db.URL, Logger: slog.New(slog.DiscardHandler), KeepaliveEvery: 200 * time.Millisecond}
		go func() { defer close(done); feed.Run(fctx, counting) }()
		return cancel, done
	}
	cancel, done := run()
	waitFor(t, "base", func() bool { return sink.Live.Engine().Len() == 1 })
	insert(1)
	waitFor(t, "stream", func() bool { return sink.Live.Engine().Len() == 2 })
	cancel()
	<-done
	insert(2) // committed while nobody reads
	cancel, done = run()
	waitFor(t, "resume", func() bool { return sink.Live.Engine().Len() == 3 })
	if n := bases.Load(); n != 1 {
		t.Errorf("%d bases; resuming must not load another", n)
	}
	cancel()
	<-done
	// The stopped reader's server session may take a moment to end.
	waitFor(t, "the slot dropped", func() bool {
		_, err := db.Pool.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, SlotName(db.Name))
		return err == nil
	})
	insert(3)
	cancel, done = run()
	defer func() { cancel(); <-done }()
	waitFor(t, "rebase", func() bool { return sink.Live.Engine().Len() == 4 && bases.Load() == 2 })
}

type countingProposer struct {
	direct
	bases *atomic.Int32
}

func (c countingProposer) Propose(ctx context.Context, e Entry) error {
	if e.Kind == logentry.KindBaseBegin {
		c.bases.Add(1)
	}
	return c.direct.Propose(ctx, e)
}

// An update that leaves a TOASTed embedding alone arrives without it; the
// index keeps the vector it holds and takes the rest.
func TestFeedUnchangedToastedEmbedding(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	owner, doc, chunk := uuid.New(), uuid.New(), uuid.New()
	parts := make([]string, 768)
	for i := range parts {
		parts[i] = fmt.Sprintf("%.7f", math.Sin(float64(i)*1.37+0.1)) // incompressible: stored out of line
	}
	emb := "[" + strings.Join(parts, ",") + "]"
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO users (id, email, display_name, role, password_hash) VALUES ('%s', 'o@example.com', 'O', 'teacher', 'x')`, owner),
		fmt.Sprintf(`INSERT INTO documents (id, owner_id, title, source_type, is_public) VALUES ('%s', '%s', 'D', 'text', true)`, doc, owner),
		fmt.Sprintf(`INSERT INTO chunks (id, document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding)
			VALUES ('%s', '%s', '%s', 0, 'before', 1, 0, 6, '%s')`, chunk, doc, owner, emb),
	} {
		mustExecURL(t, db.URL, q)
	}
	sink := newDirect(t)
	feed := &Feed{URL: db.URL, Logger: slog.New(slog.DiscardHandler), KeepaliveEvery: 200 * time.Millisecond}
	go feed.Run(ctx, sink)
	waitFor(t, "base", func() bool { return sink.Live.Engine().Len() == 1 })
	mustExecURL(t, db.URL, fmt.Sprintf(`UPDATE chunks SET text = 'after legato', version = version + 1 WHERE id = '%s'`, chunk))
	waitFor(t, "update", func() bool { return sink.Live.Engine().ChunkVersions()[index.ID(chunk)] == 2 })
	v, _ := parseVector(emb)
	hits, err := sink.Live.Engine().Search(index.Query{K: 1, Mode: index.ModeHybrid, Text: "legato", Vector: v, Scope: index.Scope{Admin: true}})
	if err != nil || len(hits) != 1 || hits[0].Chunk.Text != "after legato" || hits[0].VectorRank != 1 || hits[0].BM25Rank != 1 {
		t.Fatalf("after the update: %+v %v", hits, err)
	}
}

// A chunk's language reaches the index both ways it can travel: in the
// base (read by Source) and streamed (decoded by the assembler). The same
// German text stored as English is not found by the inflected German query.
func TestFeedCarriesLanguage(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	owner, doc := uuid.New(), uuid.New()
	exec(`INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, 'o@example.com', 'O', 'teacher', 'x')`, owner)
	exec(`INSERT INTO documents (id, owner_id, title, source_type, is_public, language) VALUES ($1, $2, 'Übungen', 'text', true, 'de')`, doc, owner)
	insert := func(ordinal int, lang string) {
		exec(`INSERT INTO chunks (document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding, language)
			VALUES ($1, $2, $3, 'Die Tonleiter langsam üben', 1, 0, 5, $4::vector, $5)`, doc, owner, ordinal, vec(ordinal), lang)
	}
	insert(0, "de") // in the base
	insert(1, "en")
	sink := newDirect(t)
	feed := &Feed{URL: db.URL, Logger: slog.New(slog.DiscardHandler), KeepaliveEvery: 200 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- feed.Run(ctx, sink) }()
	waitFor(t, "base", func() bool { return sink.FSM.State().Based && sink.Live.Engine().Len() == 2 })
	insert(2, "de") // streamed
	waitFor(t, "stream", func() bool { return sink.Live.Engine().Len() == 3 })
	hits, err := sink.Live.Engine().Search(index.Query{K: 5, Mode: index.ModeBM25, Text: "Tonleitern", Scope: index.Scope{Admin: true}})
	if err != nil {
		t.Fatal(err)
	}
	var langs []string
	for _, h := range hits {
		var l string
		if err := db.Pool.QueryRow(ctx, `SELECT language FROM chunks WHERE id = $1`, uuid.UUID(h.Chunk.ID)).Scan(&l); err != nil {
			t.Fatal(err)
		}
		langs = append(langs, l)
	}
	if !slices.Equal(langs, []string{"de", "de"}) {
		t.Errorf("hits in %v, want the two German chunks", langs)
	}
	cancel()
	<-done
}

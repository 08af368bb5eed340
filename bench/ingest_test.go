package bench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/ingest"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
	"github.com/sostenuto/sostenuto/server/store"
)

func TestMain(m *testing.M) {
	pdf.MaybeChild()
	os.Exit(m.Run())
}

type ingestEnv struct {
	db    *pgtest.DB
	pipe  *ingest.Pipeline
	owner uuid.UUID
}

func newIngestEnv(b *testing.B) *ingestEnv {
	b.Helper()
	db := pgtest.NewDB(b)
	worker, err := store.OpenPool(context.Background(), db.URL, store.WorkerRole)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(worker.Close)
	local, err := blob.NewLocal(b.TempDir(), "http://localhost", bytes.Repeat([]byte("k"), 32))
	if err != nil {
		b.Fatal(err)
	}
	checker, err := pdf.NewChecker(pdf.DefaultLimits)
	if err != nil {
		b.Fatal(err)
	}
	chunker, err := ingest.NewChunker(512, 128)
	if err != nil {
		b.Fatal(err)
	}
	e := &ingestEnv{db: db, owner: uuid.New(), pipe: &ingest.Pipeline{Store: store.New(worker), Blob: local, PDF: checker,
		Chunker: chunker, Embedder: embed.Hash{}, MaxObjectBytes: 1 << 30, Logger: slog.New(slog.DiscardHandler)}}
	if _, err := db.Pool.Exec(context.Background(), `INSERT INTO users (id, email, display_name, role, password_hash)
		VALUES ($1, 'bench@example.com', 'Bench', 'teacher', 'x')`, e.owner); err != nil {
		b.Fatal(err)
	}
	return e
}

func (e *ingestEnv) document(b *testing.B, title, typ string, content, key *string) uuid.UUID {
	id := uuid.New()
	if _, err := e.db.Pool.Exec(context.Background(), `INSERT INTO documents (id, owner_id, title, source_type, content, object_key, is_public)
		VALUES ($1, $2, $3, $4, $5, $6, true)`, id, e.owner, title, typ, content, key); err != nil {
		b.Fatal(err)
	}
	return id
}

// report prints where the time went and sets the benchmark's metrics.
func report(b *testing.B, name string, docs int, elapsed time.Duration, st ingest.Stats) {
	b.ReportMetric(float64(docs)/elapsed.Seconds(), "docs/s")
	b.ReportMetric(float64(st.Chunks)/elapsed.Seconds(), "chunks/s")
	for stage, d := range map[string]time.Duration{"extract": st.Extract, "chunk": st.Chunk, "embed": st.Embed, "store": st.Store} {
		b.ReportMetric(100*d.Seconds()/elapsed.Seconds(), stage+"-%")
	}
	b.Logf("%s: %d documents, %d chunks, %d tokens in %v: %.1f docs/s, %.0f chunks/s; extract %v, chunk %v, embed %v, store %v, other %v",
		name, docs, st.Chunks, st.Tokens, elapsed.Round(time.Millisecond), float64(docs)/elapsed.Seconds(), float64(st.Chunks)/elapsed.Seconds(),
		st.Extract.Round(time.Millisecond), st.Chunk.Round(time.Millisecond), st.Embed.Round(time.Millisecond), st.Store.Round(time.Millisecond),
		(elapsed - st.Extract - st.Chunk - st.Embed - st.Store).Round(time.Millisecond))
}

func add(total *ingest.Stats, st ingest.Stats) {
	total.Chunks += st.Chunks
	total.Tokens += st.Tokens
	total.Extract += st.Extract
	total.Chunk += st.Chunk
	total.Embed += st.Embed
	total.Store += st.Store
}

// BenchmarkIngestCISI ingests the 1,460 CISI abstracts end to end (text
// sources, hash embedder, PostgreSQL), one after the other.
func BenchmarkIngestCISI(b *testing.B) {
	dir, err := CISIDir()
	if err != nil {
		b.Fatal(err)
	}
	docs, err := LoadCISI(dir)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		e := newIngestEnv(b)
		ids := make([]uuid.UUID, len(docs))
		for i, d := range docs {
			text := d.Title + "\n\n" + d.Text
			title := strings.Join(strings.Fields(d.Title), " ")
			if r := []rune(title); len(r) > 300 {
				title = string(r[:300])
			}
			if title == "" {
				title = fmt.Sprintf("CISI %d", d.ID)
			}
			ids[i] = e.document(b, title, store.SourceText, &text, nil)
		}
		var total ingest.Stats
		start := time.Now()
		for _, id := range ids {
			st, err := e.pipe.Process(context.Background(), id)
			if err != nil {
				b.Fatal(err)
			}
			add(&total, st)
		}
		report(b, "CISI", len(docs), time.Since(start), total)
	}
}

// BenchmarkIngestPDF300 ingests a generated 300-page PDF (about 330 words a
// page) end to end: child-process extraction, chunking, embedding, store.
func BenchmarkIngestPDF300(b *testing.B) {
	words := strings.Fields("the pianist shapes each phrase with weight from the arm while fingers stay close to the keys and the pedal follows harmony")
	body := pdftest.Generate(300, func(p int) string {
		var s strings.Builder
		for line := range 30 {
			fmt.Fprintf(&s, "Page %d line %d:", p, line)
			for w := range 10 {
				s.WriteString(" " + words[(p*31+line*7+w)%len(words)])
			}
			s.WriteString(".\n")
		}
		return s.String()
	})
	for b.Loop() {
		e := newIngestEnv(b)
		key := "documents/" + uuid.NewString() + "/book.pdf"
		if err := e.pipe.Blob.Put(context.Background(), key, "application/pdf", bytes.NewReader(body), int64(len(body))); err != nil {
			b.Fatal(err)
		}
		id := e.document(b, "Method book", store.SourcePDF, nil, &key)
		start := time.Now()
		st, err := e.pipe.Process(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		report(b, fmt.Sprintf("300-page PDF (%d KiB)", len(body)>>10), 1, time.Since(start), st)
	}
}

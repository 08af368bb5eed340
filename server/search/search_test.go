package search_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/search"
	"github.com/sostenuto/sostenuto/server/search/searchtest"
)

// node is the search path of one node over a world: its index (whose
// readiness the test switches), PostgreSQL, and the Fallback over both.
type node struct {
	w                *searchtest.World
	ready            atomic.Bool
	index, lagging   *search.Index
	pg               *search.Postgres
	fallback         *search.Fallback
	pgSlots, waiters search.Slots
	embeds           atomic.Int64
}

// countingEmbedder is embed.Hash, counting its calls.
type countingEmbedder struct{ n *atomic.Int64 }

func (c countingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	c.n.Add(1)
	return embed.Hash{}.Embed(ctx, texts)
}

func newNode(t *testing.T, w *searchtest.World) *node {
	n := &node{w: w, pgSlots: search.NewSlots(1), waiters: search.NewSlots(2)}
	n.ready.Store(true)
	n.index, n.lagging = search.NewIndex(search.IndexConfig{Live: w.Live, Ready: n.ready.Load, Based: w.Based,
		Teachers: w.Store, Waiters: n.waiters, Wait: 2 * time.Second})
	n.pg = search.NewPostgres(w.Store, n.pgSlots)
	n.fallback = &search.Fallback{Index: n.index, Lagging: n.lagging, Postgres: n.pg, Embedder: countingEmbedder{&n.embeds}}
	return n
}

func vector(t *testing.T, text string) []float32 {
	t.Helper()
	vs, err := embed.Hash{}.Embed(context.Background(), []string{text})
	if err != nil {
		t.Fatal(err)
	}
	return vs[0]
}

func query(user uuid.UUID, text string, min index.LSN) search.Query {
	return search.Query{Scope: search.Scope{User: user}, Text: text, K: 5, Mode: search.ModeHybrid, MinLSN: min}
}

func has(res search.Result, chunk uuid.UUID) bool {
	for _, h := range res.Hits {
		if h.ChunkID == chunk {
			return true
		}
	}
	return false
}

// Index and Postgres answer the same scoped question alike: the teacher
// and her student see her private document, a stranger does not.
func TestIndexAndPostgresScope(t *testing.T) {
	w := searchtest.New(t)
	n := newNode(t, w)
	_, private, lsn := w.Document(t, w.Teacher, "Pedalling", "Press the damper pedal just after the chord.", false)
	ctx := context.Background()
	for name, s := range map[string]search.Searcher{"index": n.index, "postgres": n.pg} {
		for who, want := range map[uuid.UUID]bool{w.Teacher: true, w.Student: true, w.Stranger: false, w.Admin: true} {
			q := query(who, "damper pedal chord", lsn)
			q.Scope.Admin = who == w.Admin
			q.Vector = vector(t, q.Text)
			res, err := s.Search(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if has(res, private) != want || res.LSN < lsn {
				t.Errorf("%s, user %s: found %v (want %v), at %s (min %s)", name, who, has(res, private), want, res.LSN, lsn)
			}
			if len(res.Hits) > 0 && (res.Hits[0].VectorRank == nil || res.Hits[0].BM25Rank == nil) {
				t.Errorf("%s: top hit without both ranks: %+v", name, res.Hits[0])
			}
		}
	}
}

// A read with min_lsn just written waits for the index (read your writes);
// one beyond every write gives up after the bound; past the waiters'
// bound it is refused at once.
func TestIndexWaitApplied(t *testing.T) {
	w := searchtest.New(t)
	n := newNode(t, w)
	ctx := context.Background()
	_, chunk, lsn := w.Document(t, w.Teacher, "Scales", "Play scales slowly with a relaxed thumb.", true)
	q := query(w.Teacher, "relaxed thumb", lsn)
	q.Mode = search.ModeBM25
	res, err := n.index.Search(ctx, q)
	if err != nil || !has(res, chunk) || res.Source != search.SourceLocal {
		t.Fatalf("read your write: %v %+v", err, res)
	}
	q.MinLSN = lsn + 1<<40
	start := time.Now()
	if _, err := n.index.Search(ctx, q); !errors.Is(err, search.ErrBehind) || time.Since(start) < 1900*time.Millisecond {
		t.Errorf("beyond every write: %v after %s", err, time.Since(start))
	}
	for range cap(n.waiters) {
		n.waiters <- struct{}{}
	}
	start = time.Now()
	if _, err := n.index.Search(ctx, q); !errors.Is(err, search.ErrTooManyWaiting) || time.Since(start) > 100*time.Millisecond {
		t.Errorf("past the waiters' bound: %v after %s", err, time.Since(start))
	}
	q.MinLSN = lsn // already applied: needs no slot
	if _, err := n.index.Search(ctx, q); err != nil {
		t.Errorf("an applied position with every slot taken: %v", err)
	}
}

// failing is a backend that fails with err: the seam for the fallback
// rule on errors other than busy.
type failing struct{ err error }

func (f failing) Search(context.Context, search.Query) (search.Result, error) {
	return search.Result{}, f.err
}

// The fallback's decision table, on the real index and PostgreSQL.
func TestFallbackDecisions(t *testing.T) {
	w := searchtest.New(t)
	n := newNode(t, w)
	_, chunk, lsn := w.Document(t, w.Teacher, "Scales", "Play scales slowly with a relaxed thumb.", true)
	w.WaitIndexed(t, lsn)
	ahead := lsn + 1<<40
	boom := errors.New("boom")
	cases := []struct {
		name                 string
		ready, pgBusy, noRYW bool
		min                  index.LSN
		text                 string
		postgres             search.Searcher
		wantSource           string
		wantLagging          bool
		wantErr              error
	}{
		{name: "ready and caught up: local", ready: true, min: lsn, wantSource: search.SourceLocal},
		{name: "not ready: postgres", min: lsn, wantSource: search.SourcePostgres},
		{name: "ready, min_lsn never reached: postgres says ahead", ready: true, min: ahead, wantErr: &search.AheadError{}},
		{name: "waiters full, min_lsn ahead: refused", ready: true, noRYW: true, min: ahead, wantErr: search.ErrTooManyWaiting},
		{name: "not ready, postgres busy: lagging index", pgBusy: true, min: lsn, wantSource: search.SourceLocal, wantLagging: true},
		{name: "not ready, postgres busy, min_lsn beyond the index: unavailable", pgBusy: true, min: ahead, wantErr: search.ErrUnavailable},
		{name: "not ready, postgres fails: its error", postgres: failing{boom}, min: lsn, wantErr: boom},
		{name: "not ready, postgres busy (seam): lagging index", postgres: failing{search.ErrBusy}, min: lsn, wantSource: search.SourceLocal, wantLagging: true},
		{name: "nothing to embed: empty", ready: true, text: "...", wantSource: search.SourcePostgres},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n.ready.Store(c.ready)
			f := *n.fallback
			if c.postgres != nil {
				f.Postgres = c.postgres
			}
			if c.pgBusy {
				n.pgSlots <- struct{}{}
				defer func() { <-n.pgSlots }()
			}
			if c.noRYW {
				for range cap(n.waiters) {
					n.waiters <- struct{}{}
				}
				defer func() {
					for range cap(n.waiters) {
						<-n.waiters
					}
				}()
			}
			q := query(w.Stranger, "relaxed thumb", c.min)
			if c.text != "" {
				q.Text = c.text
			}
			res, err := f.Search(context.Background(), q)
			if c.wantErr != nil {
				var ae *search.AheadError
				if _, isAhead := c.wantErr.(*search.AheadError); isAhead && errors.As(err, &ae) {
					return
				}
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("error %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Source != c.wantSource || res.Lagging != c.wantLagging {
				t.Errorf("source %q lagging %v, want %q %v", res.Source, res.Lagging, c.wantSource, c.wantLagging)
			}
			if c.text == "" && !has(res, chunk) || c.text != "" && (!res.Empty || len(res.Hits) != 0 || res.Hits == nil) {
				t.Errorf("hits %+v empty %v", res.Hits, res.Empty)
			}
		})
	}
}

// OnLocal sees the index's data version and the resolved scope before
// anything is embedded; its error ends the search.
func TestFallbackOnLocal(t *testing.T) {
	w := searchtest.New(t)
	n := newNode(t, w)
	_, _, lsn := w.Document(t, w.Teacher, "Scales", "Play scales slowly with a relaxed thumb.", true)
	stop := errors.New("stop")
	var seen search.Scope
	q := query(w.Student, "relaxed thumb", lsn)
	q.OnLocal = func(version string, scope search.Scope) error {
		if version == "" {
			t.Error("no data version")
		}
		seen = scope
		return stop
	}
	before := n.embeds.Load()
	if _, err := n.fallback.Search(context.Background(), q); !errors.Is(err, stop) {
		t.Fatalf("OnLocal's error: %v", err)
	}
	if n.embeds.Load() != before {
		t.Error("the query was embedded before OnLocal stopped it")
	}
	if !seen.Resolved || len(seen.Teachers) != 1 || seen.Teachers[0] != w.Teacher {
		t.Errorf("scope %+v", seen)
	}
	other := search.Scope{User: w.Student, Teachers: []uuid.UUID{w.Teacher}, Resolved: true}
	if seen.Key() != other.Key() || seen.Key() == (search.Scope{User: w.Stranger, Resolved: true}).Key() {
		t.Errorf("scope keys: %s", seen.Key())
	}
}

// modelRecorder is PostgreSQL's search as far as models go: it refuses a
// vector of any model but the database's active one, and records the
// models it was asked with.
type modelRecorder struct {
	active string
	asked  []string
}

func (m *modelRecorder) Search(_ context.Context, q search.Query) (search.Result, error) {
	m.asked = append(m.asked, q.Model)
	if q.Model != m.active {
		return search.Result{}, index.ErrModel
	}
	return search.Result{Hits: []search.Hit{}, Source: search.SourcePostgres}, nil
}

// A search PostgreSQL answers is embedded with the database's active
// model, even while the index names another (a node whose index lags a
// model switch, or whose min_lsn wait ran out): PostgreSQL refuses any
// other model's vector.
func TestFallbackEmbedsForPostgresWithTheDatabasesModel(t *testing.T) {
	w := searchtest.New(t)
	n := newNode(t, w)
	n.ready.Store(false)
	models, err := embed.NewModels(embed.Model{Name: "old", Dim: embed.Dim, Embedder: embed.Hash{}},
		embed.Model{Name: "new", Dim: 256, Embedder: embed.Hash{Dims: 256}})
	if err != nil {
		t.Fatal(err)
	}
	pg := &modelRecorder{active: "new"}
	f := *n.fallback
	f.Postgres = pg
	f.Embedder = &embed.Active{Models: models, Name: func() string { return "old" }, Stored: func() string { return "new" }}
	res, err := f.Search(context.Background(), query(w.Stranger, "relaxed thumb", 0))
	if err != nil {
		t.Fatalf("search: %v (PostgreSQL was asked with %v)", err, pg.asked)
	}
	if res.Source != search.SourcePostgres || len(pg.asked) != 1 || pg.asked[0] != "new" {
		t.Fatalf("source %q; PostgreSQL was asked with %v, want [new]", res.Source, pg.asked)
	}
}

package server

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// requestTrips counts the PostgreSQL round trips (a query outside a
// batch, a batch) made for each request id (the X-Request-ID the request
// carries, which the node puts in the request's context).
type requestTrips struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *requestTrips) count(ctx context.Context) {
	id := RequestID(ctx)
	if id == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[id]++
}

func (r *requestTrips) of(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[id]
}

func (r *requestTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.count(ctx)
	return ctx
}

func (r *requestTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *requestTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.count(ctx)
	return ctx
}

func (r *requestTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (r *requestTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// A chat question the cache does not hold costs one PostgreSQL round trip
// in all once the node knows the caller's session and scope: the
// visibility re-check, which reads the session's liveness and the role
// too (before: two, authentication's own and the re-check). A cached
// answer costs one (the session's). A caller's first request is checked
// in full first.
func TestChatRoundTripsPerRequest(t *testing.T) {
	trips := &requestTrips{}
	a := newAPIWith(t, apiSettings{engine: true, pgTracer: trips})
	teacher := a.register("t@example.com", "teacher")
	student := a.register("s@example.com", "student")
	d := a.createDocument(teacher.AccessToken, map[string]any{"title": "Scales", "source_type": "text",
		"content": "Relax the thumb while playing scales slowly.", "is_public": true})
	a.process(teacher.AccessToken, d.Document.ID)
	st := a.waitDocument(teacher.AccessToken, d.Document.ID)
	n := 0
	ask := func(q string) int {
		t.Helper()
		n++
		id := fmt.Sprintf("roundtrips-%d", n)
		var res struct {
			Sources []any `json:"sources"`
			Cached  bool  `json:"cached"`
		}
		a.mustStatus(a.call("POST", "/api/chat/query", student.AccessToken, map[string]any{"query": q, "min_lsn": *st.IndexLSN},
			"X-Request-ID", id), 200).decode(t, &res)
		if len(res.Sources) != 1 {
			t.Fatalf("%q: %+v", q, res)
		}
		return trips.of(id)
	}
	if got := ask("thumb scales, to warm the node up"); got != 3 {
		t.Errorf("a user's first question: %d round trips, want 3 (the session, the teachers, the re-check)", got)
	}
	for _, c := range []struct {
		what, q string
		want    int
	}{
		{"a new question", "How should the thumb be in scales?", 1},
		{"the same again (a cached answer)", "How should the thumb be in scales?", 1},
		{"another new question", "relax thumb while playing scales", 1},
	} {
		if got := ask(c.q); got != c.want {
			t.Errorf("%s: %d round trips, want %d", c.what, got, c.want)
		}
	}
}

// A caller the node let through pending (its session seen live before) is
// refused at once when the session ended, when its account is gone, and
// a role changed since is answered in the stored role's scope.
func TestChatPendingSessionEnds(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true})
	other := a.register("other@example.com", "teacher")
	d := a.createDocument(other.AccessToken, map[string]any{"title": "Pedalling", "source_type": "text",
		"content": "Change the damper pedal just after each new chord.", "is_public": false})
	a.process(other.AccessToken, d.Document.ID)
	st := a.waitDocument(other.AccessToken, d.Document.ID)
	ask := func(tok string, body map[string]any, want int) response {
		t.Helper()
		body["min_lsn"] = *st.IndexLSN
		return a.mustStatus(a.call("POST", "/api/chat/query", tok, body), want)
	}
	sources := func(r response) int {
		var res struct {
			Sources []any `json:"sources"`
		}
		r.decode(t, &res)
		return len(res.Sources)
	}

	s := a.register("s@example.com", "student")
	if n := sources(ask(s.AccessToken, map[string]any{"query": "When do I change the damper pedal?"}, 200)); n != 0 {
		t.Fatalf("a student sees another teacher's private document: %d sources", n)
	}
	a.mustStatus(a.call("POST", "/api/auth/logout", "", map[string]string{"refresh_token": s.RefreshToken}), 204)
	ask(s.AccessToken, map[string]any{"query": "damper pedal after each chord"}, 401)
	ask(s.AccessToken, map[string]any{"query": "When do I change the damper pedal?"}, 401) // the answer kept
	ask(s.AccessToken, map[string]any{"query": ""}, 401)                                   // invalid, yet 401 first

	g := a.register("gone@example.com", "student")
	ask(g.AccessToken, map[string]any{"query": "pedal"}, 200)
	if _, err := a.ownerPool().Exec(context.Background(), `DELETE FROM users WHERE id = $1`, g.User.ID); err != nil {
		t.Fatal(err)
	}
	ask(g.AccessToken, map[string]any{"query": "damper pedal after each chord"}, 401)

	p := a.register("promoted@example.com", "student")
	ask(p.AccessToken, map[string]any{"query": "pedal"}, 200)
	if _, err := a.ownerPool().Exec(context.Background(), `UPDATE users SET role = 'admin' WHERE id = $1`, p.User.ID); err != nil {
		t.Fatal(err)
	}
	if n := sources(ask(p.AccessToken, map[string]any{"query": "When do I change the damper pedal?"}, 200)); n != 1 {
		t.Errorf("promoted to admin: %d sources, want the private document", n)
	}
}

package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/rag"
)

// recorder keeps every request an answerer was given, by question.
type recorder struct {
	inner rag.Provider
	mu    sync.Mutex
	seen  map[string][]rag.Passage
}

func (r *recorder) Answer(ctx context.Context, req rag.Request, emit func(string) error) (rag.Answer, error) {
	r.mu.Lock()
	r.seen[req.Question] = append([]rag.Passage(nil), req.Passages...)
	r.mu.Unlock()
	return r.inner.Answer(ctx, req, emit)
}

var canaryRE = regexp.MustCompile(`canary\d{3}`)

// 20 users, 50 documents of random visibility each carrying a unique canary
// word, 1,000 questions (a quarter streamed): no canary of a document the
// asker may not see appears in any prompt, citation, or byte of an answer
// or SSE event, also right after documents change visibility.
func TestChatLeaks(t *testing.T) {
	x, _ := rag.NewExtractive()
	rec := &recorder{inner: x, seen: map[string][]rag.Passage{}}
	a := newAPIWith(t, apiSettings{answerer: rec, engine: true})
	r := rand.New(rand.NewPCG(5, 8))
	type user struct {
		id    uuid.UUID
		token string
		role  string
	}
	var users []user
	for i := range 20 {
		role := "student"
		if i < 8 {
			role = "teacher"
		}
		s := a.register(fmt.Sprintf("u%d@example.com", i), role)
		users = append(users, user{s.User.ID, s.AccessToken, role})
	}
	studentOf := map[[2]uuid.UUID]bool{} // {teacher, student}
	for _, st := range users[8:] {
		for _, te := range users[:8] {
			if r.IntN(4) == 0 {
				if _, err := a.store.CreateRelationship(t0(), te.id, st.id); err != nil {
					t.Fatal(err)
				}
				studentOf[[2]uuid.UUID{te.id, st.id}] = true
			}
		}
	}
	type doc struct {
		id     uuid.UUID
		owner  uuid.UUID
		public bool
	}
	var mu sync.Mutex // docs' visibility changes during the run
	docs := map[string]*doc{}
	var pending []struct {
		id    uuid.UUID
		token string
	}
	for i := range 50 {
		owner := users[r.IntN(8)]
		canary := fmt.Sprintf("canary%03d", i)
		public := r.IntN(3) == 0
		text := fmt.Sprintf("Pedal practice note %s. Keep the %s wrist loose while the pedal changes after each chord.", canary, canary)
		d := a.createDocument(owner.token, map[string]any{"title": "Notes " + canary, "source_type": "text", "content": text, "is_public": public})
		a.process(owner.token, d.Document.ID)
		docs[canary] = &doc{d.Document.ID, owner.id, public}
		pending = append(pending, struct {
			id    uuid.UUID
			token string
		}{d.Document.ID, owner.token})
	}
	for _, p := range pending {
		if st := a.waitDocument(p.token, p.id); st.Status != "completed" {
			t.Fatalf("document %s: %+v", p.id, st)
		}
	}
	visible := func(u user, canary string) bool {
		mu.Lock()
		defer mu.Unlock()
		d := docs[canary]
		return d.public || d.owner == u.id || studentOf[[2]uuid.UUID{d.owner, u.id}]
	}
	leaks, cited := 0, 0
	check := func(u user, where, text string) {
		for _, c := range canaryRE.FindAllString(text, -1) {
			if !visible(u, c) {
				leaks++
				if leaks < 5 {
					t.Errorf("%s: %s reached a user who may not see it", where, c)
				}
			}
		}
	}
	for q := range 1000 {
		if q%100 == 50 {
			// A visibility change, effective for the very next question.
			mu.Lock()
			c := fmt.Sprintf("canary%03d", r.IntN(50))
			docs[c].public = !docs[c].public
			id, pub := docs[c].id, docs[c].public
			mu.Unlock()
			if _, err := a.db.Pool.Exec(t0(), `UPDATE documents SET is_public = $2 WHERE id = $1`, id, pub); err != nil {
				t.Fatal(err)
			}
		}
		u := users[r.IntN(len(users))]
		question := fmt.Sprintf("pedal wrist canary%03d canary%03d canary%03d q%04d", r.IntN(50), r.IntN(50), r.IntN(50), q)
		var hdr []string
		if q%4 == 0 {
			hdr = []string{"Accept", "text/event-stream"}
		}
		resp := a.mustStatus(a.call("POST", "/api/chat/query", u.token, map[string]any{"query": question, "k": 10}, hdr...), 200)
		if q == 0 {
			// Searches answer from the in-memory index, as on a node.
			var s searchResponse
			a.mustStatus(a.call("POST", "/api/search", u.token, map[string]any{"query": "pedal"}), 200).decode(t, &s)
			if s.Index.Source != SourceLocal {
				t.Fatalf("search answered from %s", s.Index.Source)
			}
		}
		// The question itself names canaries; strip it before looking.
		body := strings.ReplaceAll(string(resp.body), question, "")
		check(u, "answer", body)
		rec.mu.Lock()
		passages := rec.seen[question]
		rec.mu.Unlock()
		for _, p := range passages {
			check(u, "prompt", p.Text+" "+p.Title)
		}
		cited += len(passages)
	}
	if leaks != 0 {
		t.Fatalf("%d foreign canaries in 1,000 questions", leaks)
	}
	if cited < 1000 {
		t.Errorf("only %d passages reached the answerer in 1,000 questions: the test proves little", cited)
	}
	t.Logf("1,000 questions, %d passages given to the answerer, no foreign canary", cited)
}

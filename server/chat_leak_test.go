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

var canaryRE = regexp.MustCompile(`canary\d{3}|notecanary\d{3}`)

// 20 users, 50 documents of random visibility each carrying a unique canary
// word, 10 projects with 30 teachers' notes (each its own canary) shared
// with random students, 1,000 questions (a quarter streamed): no canary of
// a document or note the asker may not see appears in any prompt,
// citation, or byte of an answer or SSE event, also right after documents
// change visibility and after project grants are revoked mid-run.
func TestChatLeaks(t *testing.T) {
	x, _ := rag.NewExtractive()
	rec := &recorder{inner: x, seen: map[string][]rag.Passage{}}
	a := newAPIWith(t, apiSettings{answerer: rec, engine: true})
	r := rand.New(rand.NewPCG(5, 8))
	type user = leakUser
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
	notes := newLeakNotes(t, a, r, users[:8], users[8:])
	visible := func(u user, canary string) bool {
		if strings.HasPrefix(canary, "note") {
			return notes.sees(u.id, canary)
		}
		mu.Lock()
		defer mu.Unlock()
		d := docs[canary]
		return d.public || d.owner == u.id || studentOf[[2]uuid.UUID{d.owner, u.id}]
	}
	leaks, cited, notesCited := 0, 0, 0
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
		if q%100 == 25 {
			// A grant revoked: the student loses the project's notes at
			// once (the index learns it through the changefeed; the
			// chat's PostgreSQL re-check closes the gap meanwhile).
			notes.revokeOne(t, a, r)
		}
		u := users[r.IntN(len(users))]
		question := fmt.Sprintf("pedal wrist canary%03d canary%03d canary%03d notecanary%03d notecanary%03d q%04d",
			r.IntN(50), r.IntN(50), r.IntN(50), r.IntN(len(notes.project)), r.IntN(len(notes.project)), q)
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
			if strings.Contains(p.Text, "notecanary") {
				notesCited++
			}
		}
		cited += len(passages)
	}
	if leaks != 0 {
		t.Fatalf("%d foreign canaries in 1,000 questions", leaks)
	}
	if cited < 1000 {
		t.Errorf("only %d passages reached the answerer in 1,000 questions: the test proves little", cited)
	}
	if notesCited < 100 {
		t.Errorf("only %d teachers' notes reached the answerer: the test proves little for annotations", notesCited)
	}
	t.Logf("1,000 questions, %d passages given to the answerer (%d of them teachers' notes), %d grants revoked mid-run, no foreign canary",
		cited, notesCited, notes.revoked)
}

// leakUser is a user of the leak test.
type leakUser struct {
	id    uuid.UUID
	token string
	role  string
}

// leakNotes are the leak test's projects and notes: which project holds
// each note canary, and who may see each project.
type leakNotes struct {
	mu      sync.Mutex
	project map[string]uuid.UUID             // note canary → project
	owner   map[uuid.UUID]string             // project → owner's token
	viewers map[uuid.UUID]map[uuid.UUID]bool // project → owner and grantees
	grants  [][2]uuid.UUID                   // {project, student} still granted
	revoked int
}

// newLeakNotes makes 10 projects of random teachers, each shared with
// random students and holding three notes (POST /api/annotations), and
// waits until the last note is in the index.
func newLeakNotes(t *testing.T, a *testAPI, r *rand.Rand, teachers, students []leakUser) *leakNotes {
	t.Helper()
	n := &leakNotes{project: map[string]uuid.UUID{}, owner: map[uuid.UUID]string{}, viewers: map[uuid.UUID]map[uuid.UUID]bool{}}
	var lsn string
	for i := range 10 {
		te := teachers[r.IntN(len(teachers))]
		p := a.readyProject(te.token, fmt.Sprintf("Piece %d", i), 3).ID
		n.owner[p], n.viewers[p] = te.token, map[uuid.UUID]bool{te.id: true}
		for _, st := range students {
			if r.IntN(3) == 0 {
				a.mustStatus(a.call("POST", "/api/projects/"+p.String()+"/access", te.token, map[string]any{"user_id": st.id, "permission": "view"}), 201)
				n.viewers[p][st.id] = true
				n.grants = append(n.grants, [2]uuid.UUID{p, st.id})
			}
		}
		for j := range 3 {
			c := fmt.Sprintf("notecanary%03d", i*3+j)
			n.project[c] = p
			text := fmt.Sprintf("Teacher note %s: pedal lightly here and keep the wrist loose, %s.", c, c)
			lsn = a.mustStatus(a.call("POST", "/api/annotations", te.token, map[string]any{"project_id": p, "page": 1 + j, "type": "note",
				"content": map[string]any{"text": text, "x": 0.5, "y": 0.5}}), 201).header.Get(HeaderIndexLSN)
		}
	}
	a.mustStatus(a.call("POST", "/api/search", teachers[0].token, map[string]any{"query": "pedal", "min_lsn": lsn}), 200)
	return n
}

// sees reports whether user may see the note with canary c.
func (n *leakNotes) sees(user uuid.UUID, c string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.viewers[n.project[c]][user]
}

// revokeOne revokes a random remaining grant through the API.
func (n *leakNotes) revokeOne(t *testing.T, a *testAPI, r *rand.Rand) {
	t.Helper()
	if len(n.grants) == 0 {
		return
	}
	i := r.IntN(len(n.grants))
	g := n.grants[i]
	n.grants = append(n.grants[:i], n.grants[i+1:]...)
	a.mustStatus(a.call("DELETE", "/api/projects/"+g[0].String()+"/access/"+g[1].String(), n.owner[g[0]], nil), 204)
	n.mu.Lock()
	delete(n.viewers[g[0]], g[1])
	n.revoked++
	n.mu.Unlock()
}

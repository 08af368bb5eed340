package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// apiCall is one JSON call to a node: the status, the body and the
// X-Index-LSN it answered.
func apiCall(t *testing.T, method, url, token string, body any, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	cl := http.Client{Timeout: 30 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header.Get("X-Index-LSN")
}

// registerAs registers a user of role through base.
func registerAs(t *testing.T, base, email, role string) (token string, id uuid.UUID) {
	t.Helper()
	var out struct {
		User        struct{ ID uuid.UUID } `json:"user"`
		AccessToken string                 `json:"access_token"`
	}
	if st, _ := apiCall(t, "POST", base+"/api/auth/register", "", map[string]string{"email": email, "password": "a long enough password",
		"display_name": email, "role": role}, &out); st != 201 {
		t.Fatalf("register %s: %d", email, st)
	}
	return out.AccessToken, out.User.ID
}

// sharedScore creates a 4-page project through base (upload and confirm)
// and grants student view on it.
func sharedScore(t *testing.T, base, teacher string, student uuid.UUID) uuid.UUID {
	t.Helper()
	var pu struct {
		Project struct{ ID uuid.UUID } `json:"project"`
		Upload  struct {
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
		} `json:"upload"`
	}
	if st, _ := apiCall(t, "POST", base+"/api/projects", teacher, map[string]any{"title": "Nocturne op. 9 no. 2", "filename": "nocturne.pdf"}, &pu); st != 201 {
		t.Fatalf("create project: %d", st)
	}
	req, _ := http.NewRequest("PUT", pu.Upload.URL, bytes.NewReader(pdftest.Pages(4)))
	for k, v := range pu.Upload.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("upload: %v %v", err, resp)
	}
	resp.Body.Close()
	p := pu.Project.ID.String()
	if st, _ := apiCall(t, "POST", base+"/api/projects/"+p+"/confirm", teacher, nil, nil); st != 200 {
		t.Fatalf("confirm: %d", st)
	}
	if st, _ := apiCall(t, "POST", base+"/api/projects/"+p+"/access", teacher, map[string]any{"user_id": student, "permission": "view"}, nil); st != 201 {
		t.Fatalf("grant: %d", st)
	}
	return pu.Project.ID
}

type journeySource struct {
	N            int        `json:"n"`
	Kind         string     `json:"kind"`
	Page         int        `json:"page"`
	ProjectID    *uuid.UUID `json:"project_id"`
	AnnotationID *uuid.UUID `json:"annotation_id"`
}

type journeyAnswer struct {
	Content string          `json:"content"`
	Sources []journeySource `json:"sources"`
}

// ask waits on base for lsn (a search with min_lsn) and asks the chat.
func ask(t *testing.T, base, token, lsn, question string) journeyAnswer {
	t.Helper()
	if st, _ := apiCall(t, "POST", base+"/api/search", token, map[string]any{"query": "pedal", "min_lsn": lsn}, nil); st != 200 {
		t.Fatalf("search at %s on %s: %d", lsn, base, st)
	}
	var ans journeyAnswer
	if st, _ := apiCall(t, "POST", base+"/api/chat/query", token, map[string]any{"query": question}, &ans); st != 200 {
		t.Fatalf("chat on %s: %d", base, st)
	}
	return ans
}

// The journey of issue 18 through the API on a three-node cluster: the
// teacher annotates her shared score on one node, the student asks on
// the other two, and the answer cites the teacher's note and its page;
// once the grant is revoked the note is gone from the student's answers
// on every node.
func TestClusterTeacherNotesAsAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	db := pgtest.NewEmptyDB(t, "")
	c := newTestCluster(t, db.URL)
	n1 := c.add("n1")
	c.ready(n1)
	c.login(n1)
	n2, n3 := c.add("n2"), c.add("n3")
	c.waitFor("three voters", 60*time.Second, func() bool {
		s, err := c.status(n1)
		return err == nil && len(s.Nodes) == 3
	})
	c.ready(n2)
	c.ready(n3)
	teacher, _ := registerAs(t, n1.base, "teacher@example.com", "teacher")
	student, studentID := registerAs(t, n2.base, "student@example.com", "student")
	project := sharedScore(t, n1.base, teacher, studentID)
	note := "In the nocturne keep the pedalling shallow: change the pedal on every new harmony, never through the melody's rests."
	var created struct{ ID uuid.UUID }
	st, lsn := apiCall(t, "POST", n1.base+"/api/annotations", teacher, map[string]any{"project_id": project, "page": 3, "type": "note",
		"content": map[string]any{"text": note, "x": 0.4, "y": 0.6}}, &created)
	if st != 201 || !strings.Contains(lsn, "/") {
		t.Fatalf("annotate: %d, X-Index-LSN %q", st, lsn)
	}
	question := "What did my teacher say about the pedalling in the nocturne?"
	for _, n := range []*cnode{n2, n3} {
		ans := ask(t, n.base, student, lsn, question)
		cited := citedNote(ans, created.ID)
		if cited == nil || cited.Page != 3 || *cited.ProjectID != project || !strings.Contains(ans.Content, fmt.Sprintf("[%d]", cited.N)) ||
			!strings.Contains(ans.Content, "change the pedal on every new harmony") {
			t.Fatalf("%s: the answer does not cite the note on page 3: %+v", n.id, ans)
		}
		t.Logf("%s answers: %s", n.id, ans.Content)
	}
	st, lsn = apiCall(t, "DELETE", n1.base+"/api/projects/"+project.String()+"/access/"+studentID.String(), teacher, nil, nil)
	if st != 204 || lsn == "" {
		t.Fatalf("revoke: %d, X-Index-LSN %q", st, lsn)
	}
	for _, n := range []*cnode{n1, n2, n3} {
		if ans := ask(t, n.base, student, lsn, question); citedNote(ans, created.ID) != nil || strings.Contains(ans.Content, "every new harmony") {
			t.Fatalf("%s: after the revoke the student still gets the note: %+v", n.id, ans)
		}
	}
	// The teacher still has her note, and every node holds PostgreSQL's
	// chunks of both kinds.
	if ans := ask(t, n3.base, teacher, lsn, question); citedNote(ans, created.ID) == nil {
		t.Fatalf("the teacher lost her own note: %+v", ans)
	}
	c.converged("after the journey")
}

// citedNote is the answer's source for the annotation, if any.
func citedNote(ans journeyAnswer, id uuid.UUID) *journeySource {
	for i, s := range ans.Sources {
		if s.Kind == "annotation" && s.AnnotationID != nil && *s.AnnotationID == id {
			return &ans.Sources[i]
		}
	}
	return nil
}

package server

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// scopeAnswer is a chat answer's sources and whether it came from the
// cache.
type scopeAnswer struct {
	chatResult
	Cached bool `json:"cached"`
}

// A relationship removed through the API (DELETE /api/relationships/{id})
// stops the student's search hits and chat answers from the teacher's
// private documents: at once for requests carrying the write's
// X-Index-LSN as min_lsn (the cached answer included), and within the
// node's lag bound for requests without it (the scope cache and the
// cached answers are invalidated by the changefeed, not by time).
func TestRevokedRelationshipStopsAnswers(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true})
	teacher, student := a.register("t@example.com", "teacher"), a.register("s@example.com", "student")
	r := a.mustStatus(a.call("POST", "/api/relationships", teacher.AccessToken, map[string]any{"student_id": student.User.ID}), 201)
	var rel relationshipResponse
	r.decode(t, &rel)
	if lsn := r.header.Get(HeaderIndexLSN); !strings.Contains(lsn, "/") {
		t.Fatalf("POST /api/relationships: X-Index-LSN %q", lsn)
	}
	d := a.createDocument(teacher.AccessToken, map[string]any{"title": "Pedalling", "source_type": "text",
		"content": "Change the damper pedal just after each new chord.", "is_public": false})
	a.process(teacher.AccessToken, d.Document.ID)
	st := a.waitDocument(teacher.AccessToken, d.Document.ID)
	if st.IndexLSN == nil {
		t.Fatalf("status %+v", st)
	}
	tok := student.AccessToken
	ask := func(q, lsn string) scopeAnswer {
		t.Helper()
		var res scopeAnswer
		a.mustStatus(a.call("POST", "/api/chat/query", tok, map[string]any{"query": q, "min_lsn": lsn}), 200).decode(t, &res)
		return res
	}
	questions := []string{"When do I change the damper pedal?", "damper pedal after each chord"}
	for _, q := range questions {
		for i := 0; ; i++ { // until kept (the index may move meanwhile)
			res := ask(q, *st.IndexLSN)
			if len(res.Sources) != 1 {
				t.Fatalf("%q, before the revoke: %+v", q, res)
			}
			if res.Cached {
				break
			}
			if i == 100 {
				t.Fatalf("%q was not kept: %+v", q, res)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	r = a.mustStatus(a.call("DELETE", "/api/relationships/"+rel.ID.String(), teacher.AccessToken, nil), 204)
	lsn := r.header.Get(HeaderIndexLSN)
	if !strings.Contains(lsn, "/") {
		t.Fatalf("DELETE: X-Index-LSN %q", lsn)
	}
	if res := ask(questions[0], lsn); len(res.Sources) != 0 || res.Cached {
		t.Errorf("with the revoke's min_lsn, the cached answer: %+v", res)
	}
	if hits := a.searchAt(tok, lsn, map[string]any{"query": "damper pedal"}); hasDoc(hits, d.Document.ID) {
		t.Errorf("with the revoke's min_lsn, search: %+v", hits.Results)
	}
	// Without min_lsn: within the lag bound (5 s, the default).
	start := time.Now()
	for res := ask(questions[1], ""); len(res.Sources) != 0; res = ask(questions[1], "") {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("a cached answer outlived the revoke by %s: %+v", time.Since(start), res)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasDoc(ans searchAnswer, doc uuid.UUID) bool {
	for _, h := range ans.Results {
		if h.DocumentID == doc {
			return true
		}
	}
	return false
}

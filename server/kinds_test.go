package server

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestSearchAndChatKinds: search and chat accept the contract's kinds and
// project_id; every hit and source names its kind; asking for annotations
// alone finds nothing when nobody annotated (TestAnnotationsInSearch covers them);
// bad kinds or project ids answer 400 and change nothing.
func TestSearchAndChatKinds(t *testing.T) {
	a := newAPI(t)
	teacher := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(teacher, map[string]any{"title": "Pedalling basics", "source_type": "text",
		"content": "Change the damper pedal just after each new chord, lifting and pressing again in one motion.", "is_public": false})
	a.process(teacher, d.Document.ID)
	if st := a.waitDocument(teacher, d.Document.ID); st.Status != "completed" {
		t.Fatalf("ingest: %+v", st)
	}
	search := func(body map[string]any) searchAnswer {
		t.Helper()
		body["query"] = "damper pedal chord"
		var ans searchAnswer
		a.mustStatus(a.call("POST", "/api/search", teacher, body), 200).decode(t, &ans)
		return ans
	}
	waitFor(t, func() bool { return len(search(map[string]any{}).Results) > 0 })
	project := uuid.NewString()
	for _, body := range []map[string]any{{}, {"kinds": []string{"knowledge"}}, {"kinds": []string{"annotation", "knowledge"}, "project_id": project}} {
		ans := search(body)
		if len(ans.Results) == 0 {
			t.Errorf("%v: no hits", body)
		}
		for _, h := range ans.Results {
			if h.Kind != "knowledge" || h.ProjectID != nil {
				t.Errorf("%v: hit kind %q project %v", body, h.Kind, h.ProjectID)
			}
		}
	}
	if ans := search(map[string]any{"kinds": []string{"annotation"}}); len(ans.Results) != 0 {
		t.Errorf("annotations only: %d hits", len(ans.Results))
	}
	for name, body := range map[string]string{
		"unknown kind": `{"query":"x","kinds":["video"]}`,
		"twice":        `{"query":"x","kinds":["knowledge","knowledge"]}`,
		"not a list":   `{"query":"x","kinds":"knowledge"}`,
		"bad project":  `{"query":"x","project_id":"p1"}`,
	} {
		for _, route := range []string{"/api/search", "/api/chat/query"} {
			if r := a.call("POST", route, teacher, body); r.status != 400 || r.problem(t).Code != CodeInvalidInput {
				t.Errorf("%s %s: %d %s", route, name, r.status, r.body)
			}
		}
	}
	var res chatResult
	a.mustStatus(a.call("POST", "/api/chat/query", teacher, map[string]any{"query": "When should I change the damper pedal?", "kinds": []string{"knowledge"}}), 200).decode(t, &res)
	if len(res.Sources) == 0 || res.Sources[0].Kind != "knowledge" {
		t.Errorf("knowledge sources %+v", res.Sources)
	}
	a.mustStatus(a.call("POST", "/api/chat/query", teacher, map[string]any{"query": "When should I change the damper pedal?", "kinds": []string{"annotation"}}), 200).decode(t, &res)
	if len(res.Sources) != 0 || !strings.Contains(res.Content, "could not find") {
		t.Errorf("annotations only: %+v", res)
	}
}

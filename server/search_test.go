package server

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

type searchAnswer struct {
	Results []SearchHit `json:"results"`
	Index   SearchIndex `json:"index"`
}

func TestSearchPostgres(t *testing.T) {
	a := newAPI(t)
	teacher := a.register("t@example.com", "teacher")
	student := a.register("s@example.com", "student")
	stranger := a.register("x@example.com", "student")
	a.mustStatus(a.call("POST", "/api/relationships", teacher.AccessToken, map[string]any{"student_id": student.User.ID}), 201)
	private := a.createDocument(teacher.AccessToken, map[string]any{"title": "Private pedalling notes", "source_type": "text",
		"content": "Syncopated pedalling: press the damper pedal just after the chord. zebracanary", "is_public": false})
	public := a.createDocument(teacher.AccessToken, map[string]any{"title": "Scales", "source_type": "text",
		"content": "Practise scales with a metronome, slowly, hands separately.", "is_public": true})
	var lsn string
	for _, d := range []uuid.UUID{private.Document.ID, public.Document.ID} {
		a.process(teacher.AccessToken, d)
		st := a.waitDocument(teacher.AccessToken, d)
		lsn = *st.IndexLSN
	}
	search := func(token string, body map[string]any) searchAnswer {
		var ans searchAnswer
		a.mustStatus(a.call("POST", "/api/search", token, body), 200).decode(t, &ans)
		return ans
	}
	found := func(ans searchAnswer, doc uuid.UUID) bool {
		for _, h := range ans.Results {
			if h.DocumentID == doc {
				return true
			}
		}
		return false
	}
	q := map[string]any{"query": "damper pedal chord zebracanary", "k": 5, "min_lsn": lsn}
	for name, tc := range map[string]struct {
		token   string
		private bool
	}{"owner": {teacher.AccessToken, true}, "student": {student.AccessToken, true}, "stranger": {stranger.AccessToken, false}} {
		ans := search(tc.token, q)
		if found(ans, private.Document.ID) != tc.private {
			t.Errorf("%s sees the private document: %v, want %v", name, !tc.private, tc.private)
		}
		if ans.Index.Source != SourcePostgres || !strings.Contains(ans.Index.LSN, "/") || ans.Index.Node == "" {
			t.Errorf("%s: index %+v", name, ans.Index)
		}
	}
	ans := search(teacher.AccessToken, q)
	top := ans.Results[0]
	if top.DocumentID != private.Document.ID || top.VectorRank == nil || top.BM25Rank == nil || top.Score <= 0 ||
		top.Title != "Private pedalling notes" || top.PageStart != 1 || !strings.Contains(top.Text, "zebracanary") {
		t.Errorf("top hit %+v", top)
	}
	if bm := search(teacher.AccessToken, map[string]any{"query": "metronome", "mode": "bm25"}); len(bm.Results) != 1 || bm.Results[0].VectorRank != nil || *bm.Results[0].BM25Rank != 1 {
		t.Errorf("bm25 mode %+v", bm.Results)
	}
	if vec := search(teacher.AccessToken, map[string]any{"query": "metronome scales", "mode": "vector", "k": 1}); len(vec.Results) != 1 || vec.Results[0].BM25Rank != nil {
		t.Errorf("vector mode %+v", vec.Results)
	}
	for name, body := range map[string]any{
		"empty query": map[string]any{"query": "  "},
		"k zero":      map[string]any{"query": "x", "k": 0},
		"k too big":   map[string]any{"query": "x", "k": 51},
		"bad mode":    map[string]any{"query": "x", "mode": "fuzzy"},
		"bad lsn":     map[string]any{"query": "x", "min_lsn": "yesterday"},
		"unknown":     map[string]any{"query": "x", "filter": "all"},
	} {
		if r := a.call("POST", "/api/search", teacher.AccessToken, body); r.status != 400 {
			t.Errorf("%s: %d", name, r.status)
		}
	}
	// A position no write has reached yet cannot be waited for: 503, saying why.
	r := a.call("POST", "/api/search", teacher.AccessToken, map[string]any{"query": "x", "min_lsn": "FFFF/0"})
	if r.status != 503 || !strings.Contains(string(r.body), "ahead of the database") {
		t.Errorf("future min_lsn: %d %s", r.status, r.body)
	}
}

func TestGenerateEmbedding(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "student").AccessToken
	var e struct {
		Embedding []float32 `json:"embedding"`
		Model     string    `json:"model"`
		Dim       int       `json:"dim"`
		Cached    bool      `json:"cached"`
	}
	a.mustStatus(a.call("POST", "/api/embeddings/generate", tok, map[string]any{"text": "Relax the wrist."}), 200).decode(t, &e)
	var norm float64
	for _, x := range e.Embedding {
		norm += float64(x) * float64(x)
	}
	if e.Dim != 768 || len(e.Embedding) != 768 || e.Model != "sostenuto-hash-v1" || norm < 0.999 || norm > 1.001 {
		t.Errorf("dim %d len %d model %q norm %v", e.Dim, len(e.Embedding), e.Model, norm)
	}
	for name, body := range map[string]any{"empty": map[string]any{"text": " "}, "no words": map[string]any{"text": "..."},
		"too long": map[string]any{"text": strings.Repeat("a", 8001)}, "unknown field": map[string]any{"text": "x", "model": "gpt"}} {
		if r := a.call("POST", "/api/embeddings/generate", tok, body); r.status != 400 {
			t.Errorf("%s: %d", name, r.status)
		}
	}
	a.mustStatus(a.call("POST", "/api/embeddings/generate", "", map[string]any{"text": "x"}), 401)
}

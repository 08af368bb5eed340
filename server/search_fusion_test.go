package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestSearchWeightsValidated: weights and fusion are checked before
// anything is searched: 400 problem+json naming the field.
func TestSearchWeightsValidated(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	for name, tc := range map[string]struct {
		body  string
		field string
	}{
		"negative":     {`{"query":"x","weights":{"vector":-1,"bm25":1}}`, "weights"},
		"both zero":    {`{"query":"x","weights":{"vector":0,"bm25":0}}`, "weights"},
		"one missing":  {`{"query":"x","weights":{"vector":1}}`, "weights"},
		"bad fusion":   {`{"query":"x","fusion":"max"}`, "fusion"},
		"not a number": {`{"query":"x","weights":{"vector":"1","bm25":1}}`, ""},
		"overflow":     {`{"query":"x","weights":{"vector":1e400,"bm25":1}}`, ""},
		"unknown key":  {`{"query":"x","weights":{"vector":1,"bm25":1,"rerank":1}}`, ""},
	} {
		r := a.call("POST", "/api/search", tok, tc.body)
		if r.status != 400 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
			continue
		}
		p := r.problem(t)
		if p.Code != CodeInvalidInput {
			t.Errorf("%s: code %q", name, p.Code)
		}
		if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field || p.Errors[0].Message == "") {
			t.Errorf("%s: errors %+v, want one on %q", name, p.Errors, tc.field)
		}
	}
	for _, body := range []string{`{"query":"x","weights":{"vector":1,"bm25":0}}`, `{"query":"x","weights":{"vector":0.02,"bm25":0.98},"fusion":"rrf"}`} {
		if r := a.call("POST", "/api/search", tok, body); r.status != 200 {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
}

// TestSearchWeightsRank: weights reach both backends. With all the
// weight on one list, hybrid answers that list's order, from the engine and
// from PostgreSQL alike.
func TestSearchWeightsRank(t *testing.T) {
	for _, engine := range []bool{false, true} {
		t.Run(fmt.Sprintf("engine=%v", engine), func(t *testing.T) {
			a := newAPIWith(t, apiSettings{engine: engine})
			tok := a.register("t@example.com", "teacher").AccessToken
			for i, text := range fusionDocs {
				d := a.createDocument(tok, map[string]any{"title": fmt.Sprintf("Doc %d", i), "source_type": "text", "content": text, "is_public": false})
				a.process(tok, d.Document.ID)
				a.waitDocument(tok, d.Document.ID)
			}
			order := func(body map[string]any) []uuid.UUID {
				body["query"], body["k"] = "pedal chord", len(fusionDocs)
				var ans searchAnswer
				a.mustStatus(a.call("POST", "/api/search", tok, body), 200).decode(t, &ans)
				var ids []uuid.UUID
				for _, h := range ans.Results {
					ids = append(ids, h.DocumentID)
				}
				if want := map[bool]string{false: SourcePostgres, true: SourceLocal}[engine]; ans.Index.Source != want {
					t.Fatalf("answered by %s, want %s", ans.Index.Source, want)
				}
				return ids
			}
			waitFor(t, func() bool { return len(order(map[string]any{"mode": "bm25"})) == len(fusionDocs) })
			vec, bm := order(map[string]any{"mode": "vector"}), order(map[string]any{"mode": "bm25"})
			if fmt.Sprint(vec) == fmt.Sprint(bm) {
				t.Fatalf("the lists agree (%v): the test proves nothing", vec)
			}
			for _, method := range []string{"convex", "rrf"} {
				if got := order(map[string]any{"fusion": method, "weights": map[string]any{"vector": 1, "bm25": 0}}); fmt.Sprint(got) != fmt.Sprint(vec) {
					t.Errorf("%s, vector weight only: %v, want the vector order %v", method, got, vec)
				}
				if got := order(map[string]any{"fusion": method, "weights": map[string]any{"vector": 0, "bm25": 1}}); fmt.Sprint(got) != fmt.Sprint(bm) {
					t.Errorf("%s, bm25 weight only: %v, want the bm25 order %v", method, got, bm)
				}
			}
		})
	}
}

// fusionDocs rank differently by BM25 (stems, document length) and by the
// hash embedder (words, word pairs, trigrams).
var fusionDocs = []string{
	"Pedal chord. Pedal chord.",
	"Pedalling pedalled pedals: hold the sustaining pedal through every chord change, then lift the pedal cleanly before the next harmony arrives in the left hand.",
	"The chord pedal chord pedal chord is a drill.",
	"Chords and pedals in Chopin's nocturnes: the pedal blurs, the chord sings.",
	"Pedal, pedal, pedal, pedal, pedal, pedal.",
	"A pedal chord is a chord held over a pedal point in the bass, a long sustained pedal note.",
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSearchETagCarriesFusion: a kept answer revalidates only for the
// same weights and method.
func TestSearchETagCarriesFusion(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true})
	tok := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(tok, map[string]any{"title": "Pedalling", "source_type": "text", "content": "Change the damper pedal just after each new chord.", "is_public": false})
	a.process(tok, d.Document.ID)
	a.waitDocument(tok, d.Document.ID)
	body := func(w map[string]any, fusion string) map[string]any {
		b := map[string]any{"query": "damper pedal chord", "weights": w}
		if fusion != "" {
			b["fusion"] = fusion
		}
		return b
	}
	first := body(map[string]any{"vector": 1, "bm25": 1}, "")
	// The answer is kept once it holds the chunk and the index is still:
	// the ETag follows the index's data version, and the processing's
	// last transaction (the document's row) may land just after the chunk.
	var etag string
	waitFor(t, func() bool {
		r := a.mustStatus(a.call("POST", "/api/search", tok, first), 200)
		prev := etag
		etag = r.header.Get("ETag")
		return etag != "" && etag == prev && strings.Contains(string(r.body), "damper")
	})
	if r := a.call("POST", "/api/search", tok, first, "If-None-Match", etag); r.status != 304 {
		t.Fatalf("same request: %d", r.status)
	}
	for name, b := range map[string]map[string]any{
		"other weights": body(map[string]any{"vector": 1, "bm25": 3}, ""),
		"other method":  body(map[string]any{"vector": 1, "bm25": 1}, "rrf"),
	} {
		if r := a.call("POST", "/api/search", tok, b, "If-None-Match", etag); r.status != 200 {
			t.Errorf("%s: %d, want 200 (a different answer)", name, r.status)
		}
	}
}

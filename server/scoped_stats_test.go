package server

import (
	"fmt"
	"testing"
)

// A teacher must not learn what another teacher's private documents hold
// from her own rankings: she makes two documents that differ in one word,
// another teacher then writes many private documents full of one of the
// two words, and nothing she sees may move (ids, order, scores, ranks), in
// any mode, whether the node answers from its index or from PostgreSQL.
func TestHiddenDocumentsMoveNoRanking(t *testing.T) {
	for name, engine := range map[string]bool{"index": true, "postgres": false} {
		t.Run(name, func(t *testing.T) {
			a := newAPIWith(t, apiSettings{engine: engine})
			alice := a.register("alice@example.com", "teacher")
			bob := a.register("bob@example.com", "teacher")
			var lsn string
			for i, word := range []string{"zebrawood", "marimbula"} {
				lsn = a.ingestText(alice.AccessToken, fmt.Sprintf("Alice %d", i), false,
					"Pedalling in the nocturne: lift the damper with the beat. "+word)
			}
			for i := range 3 { // more of her own, so the collection has some shape
				lsn = a.ingestText(alice.AccessToken, fmt.Sprintf("Alice extra %d", i), false,
					"Scales and arpeggios with a metronome, slowly; the damper stays up.")
			}
			queries := []map[string]any{}
			for _, mode := range []string{"bm25", "hybrid", "vector"} {
				queries = append(queries, map[string]any{"query": "damper zebrawood marimbula", "k": 10, "mode": mode})
			}
			before := a.rankings(alice.AccessToken, queries, lsn)
			for i := range 12 {
				lsn = a.ingestText(bob.AccessToken, fmt.Sprintf("Bob private %d", i), false,
					"marimbula marimbula: my student Marimbula plays the nocturne; damper notes.")
			}
			if after := a.rankings(alice.AccessToken, queries, lsn); after != before {
				t.Fatalf("another teacher's private documents moved Alice's rankings:\nbefore %s\nafter  %s", before, after)
			}
			// Control: the same documents made public do move them (the test can fail).
			lsn = a.ingestText(bob.AccessToken, "Bob public", true,
				"marimbula marimbula marimbula damper zebrawood marimbula")
			if after := a.rankings(alice.AccessToken, queries, lsn); after == before {
				t.Fatal("a visible document moved nothing: the comparison cannot fail")
			}
		})
	}
}

// ingestText makes a text document, processes it and returns its index_lsn.
func (a *testAPI) ingestText(token, title string, public bool, content string) string {
	a.t.Helper()
	d := a.createDocument(token, map[string]any{"title": title, "source_type": "text", "content": content, "is_public": public})
	a.process(token, d.Document.ID)
	st := a.waitDocument(token, d.Document.ID)
	if st.IndexLSN == nil {
		a.t.Fatalf("document %s has no index_lsn", d.Document.ID)
	}
	return *st.IndexLSN
}

// rankings renders what the caller gets for queries (after min_lsn).
func (a *testAPI) rankings(token string, queries []map[string]any, lsn string) string {
	a.t.Helper()
	out := ""
	for _, q := range queries {
		q["min_lsn"] = lsn
		var ans searchAnswer
		a.mustStatus(a.call("POST", "/api/search", token, q), 200).decode(a.t, &ans)
		out += fmt.Sprintf("%s[%s]: ", q["mode"], ans.Index.Source)
		for _, h := range ans.Results {
			out += fmt.Sprintf("%s %.9g %s %s | ", h.DocumentID.String()[:8], h.Score, rank(h.VectorRank), rank(h.BM25Rank))
		}
		out += "\n"
	}
	return out
}

func rank(r *int) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprint(*r)
}

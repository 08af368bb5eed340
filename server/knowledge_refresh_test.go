package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// source is a web page and a video's captions whose content a test
// changes; with a gate set, a request waits at it (after saying so on
// entered) until the gate closes.
type source struct {
	mu       sync.Mutex
	page     string
	captions string
	status   int
	gate     chan struct{}
	entered  chan struct{}
}

func (s *source) set(f func(s *source)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	page, captions, status, gate, entered := s.page, s.captions, s.status, s.gate, s.entered
	s.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
	if status != 0 {
		http.Error(w, "gone", status)
		return
	}
	switch r.URL.Path {
	case "/article":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(page))
	case "/api/timedtext":
		w.Header().Set("Content-Type", "text/vtt")
		w.Write([]byte(captions))
	default:
		http.NotFound(w, r)
	}
}

// hold makes the next requests wait; the returned func lets them go.
func (s *source) hold() (entered chan struct{}, release func()) {
	gate, entered := make(chan struct{}), make(chan struct{}, 4)
	s.set(func(s *source) { s.gate, s.entered = gate, entered })
	return entered, func() {
		s.set(func(s *source) { s.gate = nil })
		close(gate)
	}
}

// article is a web page long enough for several chunks, every paragraph
// of which names marker.
func article(marker string) string {
	var b strings.Builder
	b.WriteString("<html><head><title>Pedalling</title></head><body><article><h1>Pedalling</h1>")
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, "<p>Study %d, edition %s: press the damper pedal just after the new chord sounds, so the old harmony clears "+
			"and the new one rings; listen for a clean change, keep the heel on the floor, and lift the foot with the hand "+
			"that plays the chord, slowly at first, then in tempo, in every key of the cycle of fifths.</p>", i, marker)
	}
	b.WriteString("</article></body></html>")
	return b.String()
}

type chunkStamp struct {
	ID   uuid.UUID
	Xmin string
}

// chunkStamps lists a document's chunks with the transaction that wrote
// each (xmin): equal stamps mean no chunk row was written since.
func (a *testAPI) chunkStamps(doc uuid.UUID) []chunkStamp {
	a.t.Helper()
	rows, err := a.db.Pool.Query(context.Background(), `SELECT id, xmin::text FROM chunks WHERE document_id = $1 ORDER BY ordinal`, doc)
	if err != nil {
		a.t.Fatal(err)
	}
	defer rows.Close()
	var out []chunkStamp
	for rows.Next() {
		var c chunkStamp
		if err := rows.Scan(&c.ID, &c.Xmin); err != nil {
			a.t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// editions says which markers doc's hits in res carry.
func editions(res searchResponse, doc uuid.UUID, markers ...string) (seen map[string]bool, hits int) {
	seen = map[string]bool{}
	for _, h := range res.Results {
		if h.DocumentID != doc {
			continue
		}
		hits++
		for _, m := range markers {
			if strings.Contains(h.Text, m) {
				seen[m] = true
			}
		}
	}
	return seen, hits
}

// watchEditions searches until stop closes and reports every answer in
// which doc's hits are missing or mix the two editions.
func (a *testAPI) watchEditions(token string, doc uuid.UUID, old, next string, stop chan struct{}) func() (bad []string, searches int) {
	var bad []string
	done := make(chan struct{})
	searches := 0
	go func() {
		defer close(done)
		for n := 0; ; n++ {
			select {
			case <-stop:
				searches = n
				return
			default:
			}
			r := a.send(http.DefaultClient, a.url, "POST", "/api/search", token, map[string]any{"query": "damper pedal chord", "k": 50, "mode": "bm25"})
			var res searchResponse
			if r.status != 200 || json.Unmarshal(r.body, &res) != nil {
				bad = append(bad, fmt.Sprintf("search %d: %d %s", n, r.status, r.body))
				continue
			}
			if seen, hits := editions(res, doc, old, next); hits == 0 || len(seen) != 1 {
				bad = append(bad, fmt.Sprintf("search %d: %d hits, editions %v %.400s", n, hits, seen, r.body))
			}
		}
	}()
	return func() ([]string, int) { <-done; return bad, searches }
}

// A refresh fetches a web page again through the pipeline: the same
// content rewrites nothing (content hash: no chunk row written, index_lsn
// kept, processed_at moved); a second refresh while one runs answers 409;
// new content replaces the chunks in one step — every search during the
// refresh sees the old edition or the new, never a mix or nothing; a page
// gone fails the refresh and keeps the chunks.
func TestRefreshWebDocument(t *testing.T) {
	src := &source{page: article("alphaedition")}
	site := httptest.NewServer(src)
	defer site.Close()
	a := newAPIWith(t, apiSettings{engine: true, fetchAllow: []string{site.Listener.Addr().String()}, fetchTimeout: 30 * time.Second})
	tok := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(tok, map[string]any{"title": "Pedalling", "source_type": "web", "source_url": site.URL + "/article", "is_public": false})
	doc := d.Document.ID
	a.process(tok, doc)
	first := a.waitDocument(tok, doc)
	before := a.chunkStamps(doc)
	if first.Status != "completed" || first.IndexLSN == nil || len(before) < 2 {
		t.Fatalf("ingest: %+v, %d chunks", first, len(before))
	}
	refresh := "/api/knowledge/" + doc.String() + "/refresh"

	// Unchanged; a second refresh while the first waits at the source.
	entered, release := src.hold()
	var queued documentResponse
	a.mustStatus(a.call("POST", refresh, tok, nil), 202).decode(t, &queued)
	if queued.Status != "queued" {
		t.Errorf("refresh answered %+v", queued)
	}
	<-entered
	if p := a.call("POST", refresh, tok, nil).problem(t); p.Status != 409 || p.Code != CodeAlreadyProcessing {
		t.Errorf("a second refresh: %+v", p)
	}
	release()
	same := a.waitDocument(tok, doc)
	if same.Status != "completed" || *same.IndexLSN != *first.IndexLSN || same.ChunkCount != first.ChunkCount ||
		!same.ProcessedAt.After(*first.ProcessedAt) {
		t.Errorf("unchanged refresh: %+v, first %+v", same, first)
	}
	if after := a.chunkStamps(doc); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("an unchanged refresh wrote chunks: %v, was %v", after, before)
	}
	var jobs int
	a.db.Pool.QueryRow(t0(), `SELECT count(*) FROM jobs WHERE kind = 'ingest.document' AND payload->>'document_id' = $1`, doc.String()).Scan(&jobs)
	if jobs != 2 {
		t.Errorf("%d ingest jobs, want 2 (the process and one refresh)", jobs)
	}

	// Changed: searched throughout, from an index that holds the old
	// edition (a search without min_lsn never goes back from there).
	a.searchHits(a.url, tok, map[string]any{"query": "pedal", "min_lsn": *same.IndexLSN})
	src.set(func(s *source) { s.page = article("omegaedition") })
	stop := make(chan struct{})
	watched := a.watchEditions(tok, doc, "alphaedition", "omegaedition", stop)
	entered, release = src.hold()
	a.mustStatus(a.call("POST", refresh, tok, nil), 202)
	<-entered
	time.Sleep(300 * time.Millisecond) // searches while the refresh waits at the source
	release()
	changed := a.waitDocument(tok, doc)
	res, _ := a.searchHits(a.url, tok, map[string]any{"query": "damper pedal chord", "k": 50, "mode": "bm25", "min_lsn": *changed.IndexLSN})
	close(stop)
	bad, searches := watched()
	for _, b := range bad {
		t.Error(b)
	}
	if searches < 5 {
		t.Errorf("only %d searches during the refresh", searches)
	}
	t.Logf("%d searches during the refresh, none missing or mixing the editions", searches)
	if seen, hits := editions(res, doc, "alphaedition", "omegaedition"); changed.Status != "completed" || *changed.IndexLSN == *first.IndexLSN ||
		hits == 0 || !seen["omegaedition"] || seen["alphaedition"] {
		t.Errorf("changed refresh: %+v; search at its index_lsn: %d hits, %v", changed, hits, seen)
	}

	// Gone at the source: failed, the chunks stay.
	kept := a.chunkStamps(doc)
	src.set(func(s *source) { s.status = http.StatusNotFound })
	a.mustStatus(a.call("POST", refresh, tok, nil), 202)
	gone := a.waitDocument(tok, doc)
	if gone.Status != "failed" || gone.ErrorCode == nil || *gone.ErrorCode != "not_found_at_source" || gone.ChunkCount != len(kept) {
		t.Errorf("refresh of a page gone: %+v", gone)
	}
	if now := a.chunkStamps(doc); fmt.Sprint(now) != fmt.Sprint(kept) {
		t.Errorf("a failed refresh changed the chunks")
	}
}

// Only a web page or a video named by URL can be fetched again: a text,
// a PDF, a video whose captions were uploaded answer 409 not_refreshable;
// a video's captions fetched again replace its chunks, or keep them when
// unchanged.
func TestRefreshSources(t *testing.T) {
	src := &source{captions: "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nRound your fingers over the keys.\n"}
	site := httptest.NewServer(src)
	defer site.Close()
	a := newAPIWith(t, apiSettings{fetchAllow: []string{site.Listener.Addr().String()}, youtubeURL: site.URL + "/api/timedtext"})
	tok := a.register("t@example.com", "teacher").AccessToken
	for _, body := range []map[string]any{
		{"title": "Notes", "source_type": "text", "content": "Relax the wrist."},
		{"title": "Book", "source_type": "pdf"},
		{"title": "Lesson", "source_type": "youtube"},
	} {
		d := a.createDocument(tok, body)
		r := a.call("POST", "/api/knowledge/"+d.Document.ID.String()+"/refresh", tok, nil)
		if p := r.problem(t); p.Status != 409 || p.Code != CodeNotRefreshable {
			t.Errorf("refresh of %s: %+v", body["source_type"], p)
		}
		var now documentResponse
		a.mustStatus(a.call("GET", "/api/knowledge/"+d.Document.ID.String(), tok, nil), 200).decode(t, &now)
		if now.Status != "pending" {
			t.Errorf("%s after a refused refresh: %s", body["source_type"], now.Status)
		}
	}

	yt := a.createDocument(tok, map[string]any{"title": "Lesson 4", "source_type": "youtube", "source_url": "https://youtu.be/dQw4w9WgXcQ"})
	id := yt.Document.ID
	a.process(tok, id)
	first := a.waitDocument(tok, id)
	stamps := a.chunkStamps(id)
	refresh := "/api/knowledge/" + id.String() + "/refresh"
	a.mustStatus(a.call("POST", refresh, tok, nil), 202)
	if st := a.waitDocument(tok, id); st.Status != "completed" || *st.IndexLSN != *first.IndexLSN || fmt.Sprint(a.chunkStamps(id)) != fmt.Sprint(stamps) {
		t.Errorf("unchanged captions: %+v", st)
	}
	src.set(func(s *source) {
		s.captions = "WEBVTT\n\n00:00:02.000 --> 00:00:06.000\nLet the wrist stay loose.\n"
	})
	a.mustStatus(a.call("POST", refresh, tok, nil), 202)
	st := a.waitDocument(tok, id)
	c := a.chunks(id)
	if st.Status != "completed" || *st.IndexLSN == *first.IndexLSN || len(c) != 1 || !strings.Contains(c[0].Text, "wrist") || *c[0].TimeStart != 2000 {
		t.Errorf("changed captions: %+v, chunks %+v", st, c)
	}
}

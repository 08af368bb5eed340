package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// waitDocument polls the status until it is completed or failed.
func (a *testAPI) waitDocument(token string, id uuid.UUID) documentStatus {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st documentStatus
		a.mustStatus(a.call("GET", "/api/knowledge/"+id.String()+"/status", token, nil), 200).decode(a.t, &st)
		if st.Status == "completed" || st.Status == "failed" {
			return st
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("document %s still %s", id, st.Status)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func (a *testAPI) createDocument(token string, body map[string]any) documentWithUpload {
	a.t.Helper()
	var d documentWithUpload
	a.mustStatus(a.call("POST", "/api/knowledge", token, body), 201).decode(a.t, &d)
	return d
}

func (a *testAPI) process(token string, id uuid.UUID) documentResponse {
	a.t.Helper()
	var d documentResponse
	a.mustStatus(a.call("POST", "/api/knowledge/"+id.String()+"/process", token, nil), 202).decode(a.t, &d)
	return d
}

type chunkRow struct {
	Ordinal, PageStart, PageEnd, CharStart, CharEnd int
	Text                                            string
	TimeStart, TimeEnd                              *int64
}

func (a *testAPI) chunks(doc uuid.UUID) []chunkRow {
	a.t.Helper()
	rows, err := a.db.Pool.Query(context.Background(), `SELECT ordinal, page_start, page_end, char_start, char_end, text,
		time_start_ms, time_end_ms FROM chunks WHERE document_id = $1 ORDER BY ordinal`, doc)
	if err != nil {
		a.t.Fatal(err)
	}
	defer rows.Close()
	var out []chunkRow
	for rows.Next() {
		var c chunkRow
		rows.Scan(&c.Ordinal, &c.PageStart, &c.PageEnd, &c.CharStart, &c.CharEnd, &c.Text, &c.TimeStart, &c.TimeEnd)
		out = append(out, c)
	}
	return out
}

func TestIngestText(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	content := strings.Repeat("Legato means smoothly connected notes. Keep each finger down until the next key sounds.\n\n", 80)
	d := a.createDocument(tok, map[string]any{"title": "Legato", "source_type": "text", "content": content, "is_public": false})
	if d.Document.Status != "pending" || d.Upload != nil {
		t.Fatalf("created %+v", d)
	}
	if q := a.process(tok, d.Document.ID); q.Status != "queued" {
		t.Errorf("queued status %q", q.Status)
	}
	st := a.waitDocument(tok, d.Document.ID)
	if st.Status != "completed" || st.ChunkCount < 3 || st.Progress.ChunksDone != st.ChunkCount || st.Progress.ChunksTotal != st.ChunkCount ||
		st.IndexLSN == nil || st.ProcessedAt == nil || st.Error != nil {
		t.Fatalf("status %+v", st)
	}
	chunks := a.chunks(d.Document.ID)
	if len(chunks) != st.ChunkCount || chunks[0].CharStart != 0 || chunks[len(chunks)-1].CharEnd != len([]rune(content))-2 && chunks[len(chunks)-1].CharEnd != len([]rune(content)) {
		t.Errorf("%d chunks, last ends at %d of %d", len(chunks), chunks[len(chunks)-1].CharEnd, len([]rune(content)))
	}
	// Reprocessing replaces the chunks: still exactly one set.
	a.process(tok, d.Document.ID)
	st2 := a.waitDocument(tok, d.Document.ID)
	if n := len(a.chunks(d.Document.ID)); n != st.ChunkCount || st2.ChunkCount != n {
		t.Errorf("after reprocessing %d chunks, want %d", n, st.ChunkCount)
	}
	if n := a.rowCount("chunk_staging"); n != 0 {
		t.Errorf("%d staged chunks left", n)
	}
	// Delete: chunks go; the answer names the WAL position.
	r := a.mustStatus(a.call("DELETE", "/api/knowledge/"+d.Document.ID.String(), tok, nil), 204)
	if !strings.Contains(r.header.Get(HeaderIndexLSN), "/") {
		t.Errorf("X-Index-LSN %q", r.header.Get(HeaderIndexLSN))
	}
	if n := a.rowCount("chunks"); n != 0 {
		t.Errorf("%d chunks after delete", n)
	}
}

// A real multi-page PDF ingests with the right page numbers on its chunks,
// and pages without text are reported.
func TestIngestPDF(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	const pages = 6
	body := pdftest.Generate(pages, func(i int) string {
		if i == 3 {
			return "" // a scanned page: no text
		}
		var b strings.Builder
		for line := range 60 {
			fmt.Fprintf(&b, "Page%d marker line %d: practise the passage hands separately, then together.\n", i, line)
		}
		return b.String()
	})
	d := a.createDocument(tok, map[string]any{"title": "Method book", "source_type": "pdf", "is_public": true})
	if d.Upload == nil || d.Upload.Headers["Content-Type"] != "application/pdf" {
		t.Fatalf("upload %+v", d.Upload)
	}
	// Processing before the upload: 409.
	a.mustStatus(a.call("POST", "/api/knowledge/"+d.Document.ID.String()+"/process", tok, nil), 409)
	if st := a.upload(projectWithUpload{Upload: *d.Upload}, body); st != 200 {
		t.Fatalf("upload %d", st)
	}
	a.process(tok, d.Document.ID)
	st := a.waitDocument(tok, d.Document.ID)
	if st.Status != "completed" || len(st.EmptyPages) != 1 || st.EmptyPages[0] != 3 {
		t.Fatalf("status %+v", st)
	}
	chunks := a.chunks(d.Document.ID)
	seen := map[int]bool{}
	for _, c := range chunks {
		for p := 1; p <= pages; p++ {
			if strings.Contains(c.Text, fmt.Sprintf("Page%d marker", p)) {
				seen[p] = true
				if p < c.PageStart || p > c.PageEnd {
					t.Errorf("chunk %d (pages %d-%d) holds text of page %d", c.Ordinal, c.PageStart, c.PageEnd, p)
				}
			}
		}
	}
	for _, p := range []int{1, 2, 4, 5, 6} {
		if !seen[p] {
			t.Errorf("no chunk holds page %d", p)
		}
	}
}

func TestIngestWebAndCaptions(t *testing.T) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pedalling":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(`<html><head><title>Pedalling</title></head><body><nav>Menu</nav><article><h1>Pedalling</h1>
				<p>Syncopated pedalling: press the damper pedal just after the new chord sounds, so the old harmony clears.</p>
				<p>Listen closely; the ear decides when the pedal is clean. Practise on slow chord progressions first.</p>
				<p>Half pedalling thins the sound without a full break and helps in fast bass passages.</p></article></body></html>`))
		case "/api/timedtext":
			w.Header().Set("Content-Type", "text/vtt")
			w.Write([]byte("WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nRound your fingers over the keys.\n\n00:00:04.000 --> 00:00:08.500\nLet the wrist stay loose.\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer site.Close()
	a := newAPIWith(t, apiSettings{fetchAllow: []string{site.Listener.Addr().String()}, youtubeURL: site.URL + "/api/timedtext"})
	tok := a.register("t@example.com", "teacher").AccessToken

	web := a.createDocument(tok, map[string]any{"title": "Pedalling", "source_type": "web", "source_url": site.URL + "/pedalling", "is_public": true})
	a.process(tok, web.Document.ID)
	if st := a.waitDocument(tok, web.Document.ID); st.Status != "completed" {
		t.Fatalf("web: %+v", st)
	}
	if c := a.chunks(web.Document.ID); len(c) != 1 || !strings.Contains(c[0].Text, "Half pedalling") || strings.Contains(c[0].Text, "Menu") {
		t.Errorf("web chunks %+v", c)
	}

	// A caption file uploaded for a lesson video keeps its timestamps.
	vid := a.createDocument(tok, map[string]any{"title": "Lesson 3", "source_type": "youtube", "is_public": false})
	if vid.Upload == nil || vid.Upload.Headers["Content-Type"] != "text/vtt" {
		t.Fatalf("caption upload %+v", vid.Upload)
	}
	srt := "1\n00:00:10,000 --> 00:00:12,500\nThumb under on the scale.\n\n2\n00:00:12,500 --> 00:00:15,000\nKeep the elbow relaxed.\n"
	if st := a.uploadAs(*vid.Upload, []byte(srt)); st != 200 {
		t.Fatalf("caption PUT %d", st)
	}
	a.process(tok, vid.Document.ID)
	if st := a.waitDocument(tok, vid.Document.ID); st.Status != "completed" {
		t.Fatalf("captions: %+v", st)
	}
	c := a.chunks(vid.Document.ID)
	if len(c) != 1 || c[0].TimeStart == nil || *c[0].TimeStart != 10000 || *c[0].TimeEnd != 15000 {
		t.Errorf("caption chunks %+v", c)
	}

	// A video URL: captions through the timedtext client.
	yt := a.createDocument(tok, map[string]any{"title": "Lesson 4", "source_type": "youtube", "source_url": "https://youtu.be/dQw4w9WgXcQ", "is_public": false})
	a.process(tok, yt.Document.ID)
	if st := a.waitDocument(tok, yt.Document.ID); st.Status != "completed" {
		t.Fatalf("youtube: %+v", st)
	}
	if c := a.chunks(yt.Document.ID); len(c) != 1 || *c[0].TimeStart != 1000 || *c[0].TimeEnd != 8500 {
		t.Errorf("youtube chunks %+v", c)
	}
}

// Blocked web sources fail with a clear error: literals at creation, names
// resolving to blocked addresses when fetched.
func TestIngestSSRF(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	for _, u := range []string{"http://127.0.0.1/", "http://127.1/", "http://0x7f000001/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
		"http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://example.com:22/", "file:///etc/passwd"} {
		r := a.call("POST", "/api/knowledge", tok, map[string]any{"title": "x", "source_type": "web", "source_url": u})
		if r.status != 400 || r.problem(t).Errors[0].Field != "source_url" {
			t.Errorf("%s: %d %s", u, r.status, r.body)
		}
	}
	d := a.createDocument(tok, map[string]any{"title": "Sneaky", "source_type": "web", "source_url": "http://localhost/admin"})
	a.process(tok, d.Document.ID)
	st := a.waitDocument(tok, d.Document.ID)
	if st.Status != "failed" || st.Error == nil || !strings.Contains(*st.Error, "not allowed") || !strings.Contains(*st.Error, "loopback") ||
		st.ErrorCode == nil || *st.ErrorCode != "blocked_address" || strings.Contains(*st.Error, "127.0.0.1") {
		t.Errorf("status %+v", st)
	}
}

func TestKnowledgeValidationAndListing(t *testing.T) {
	a := newAPI(t)
	teacher := a.register("t@example.com", "teacher")
	student := a.register("s@example.com", "student")
	other := a.register("o@example.com", "teacher")
	tok := teacher.AccessToken
	for name, body := range map[string]map[string]any{
		"no title":        {"source_type": "text", "content": "x"},
		"bad type":        {"title": "x", "source_type": "fax"},
		"text no content": {"title": "x", "source_type": "text"},
		"web no url":      {"title": "x", "source_type": "web"},
		"pdf with url":    {"title": "x", "source_type": "pdf", "source_url": "https://example.com/a.pdf"},
		"bad video":       {"title": "x", "source_type": "youtube", "source_url": "https://vimeo.com/1"},
		"web content":     {"title": "x", "source_type": "web", "source_url": "https://example.com/", "content": "x"},
	} {
		if r := a.call("POST", "/api/knowledge", tok, body); r.status != 400 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	a.mustStatus(a.call("POST", "/api/knowledge", student.AccessToken, map[string]any{"title": "x", "source_type": "text", "content": "x"}), 403)
	if n := a.rowCount("documents"); n != 0 {
		t.Fatalf("%d documents after bad input", n)
	}
	a.mustStatus(a.call("POST", "/api/relationships", tok, map[string]any{"student_id": student.User.ID}), 201)
	a.createDocument(tok, map[string]any{"title": "Private scales", "source_type": "text", "content": "C major", "is_public": false})
	a.createDocument(tok, map[string]any{"title": "Public arpeggios", "source_type": "text", "content": "A minor", "is_public": true})
	a.createDocument(other.AccessToken, map[string]any{"title": "Other's private", "source_type": "text", "content": "x"})
	count := func(token, q string) int {
		var l List[documentResponse]
		a.mustStatus(a.call("GET", "/api/knowledge?"+q, token, nil), 200).decode(t, &l)
		return len(l.Items)
	}
	for _, tc := range []struct {
		who   string
		token string
		q     string
		want  int
	}{
		{"teacher", tok, "", 2}, {"student of teacher", student.AccessToken, "", 2}, {"other teacher", other.AccessToken, "", 2},
		{"teacher", tok, "q=scales", 1}, {"teacher", tok, "status=pending&source_type=text", 2}, {"teacher", tok, "status=completed", 0},
	} {
		if got := count(tc.token, tc.q); got != tc.want {
			t.Errorf("%s ?%s: %d, want %d", tc.who, tc.q, got, tc.want)
		}
	}
	a.mustStatus(a.call("GET", "/api/knowledge?status=done", tok, nil), 400)
}

package server

import (
	"slices"
	"strings"
	"testing"

	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// scannedPage renders lines of practice advice (with marker among them)
// as a scanned page.
func scannedPage(t *testing.T, marker string, sentences []string) pdftest.Page {
	t.Helper()
	var lines []string
	for i := range 28 {
		lines = append(lines, sentences[i%len(sentences)])
		if i == 13 {
			lines = append(lines, marker)
		}
	}
	img, err := pdftest.Scan(strings.Join(lines, "\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	return pdftest.Page{Image: img}
}

// TestScannedPDFBecomesSearchable uploads a PDF of scanned pages (one in
// German), a born-digital page and a page of notation through the API:
// the scanned pages are read by OCR, the status says how, the notation
// page is empty, and a search finds a scanned page's words with that
// page's number.
func TestScannedPDFBecomesSearchable(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	notation, err := pdftest.Staff("")
	if err != nil {
		t.Fatal(err)
	}
	body, err := pdftest.Mixed([]pdftest.Page{
		scannedPage(t, "Czerny studies build even finger strength.", []string{
			"Keep the wrist relaxed and level while the fingers move.",
			"Practise every scale slowly with a metronome at sixty beats.",
			"The left hand plays the accompaniment softly beneath the melody."}),
		{Text: "Born-digital preface: this book teaches legato, staccato and pedalling."},
		scannedPage(t, "Die Klavierschule beginnt mit einfachen Tonleitern.", []string{
			"Der Daumen gleitet unter die Hand, ohne dass sich das Handgelenk dreht.",
			"Üben Sie langsam und gleichmäßig mit beiden Händen.",
			"Die Fingersätze für Tonleitern sind wichtig."}),
		{Image: notation},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := a.createDocument(tok, map[string]any{"title": "Scanned method book", "source_type": "pdf", "is_public": false})
	if st := a.upload(projectWithUpload{Upload: *d.Upload}, body); st != 200 {
		t.Fatalf("upload %d", st)
	}
	a.process(tok, d.Document.ID)
	st := a.waitDocument(tok, d.Document.ID)
	if st.Status != "completed" || st.OCRPages != 3 || !slices.Equal(st.EmptyPages, []int32{4}) || len(st.LowConfidencePages) != 0 ||
		st.Progress.OCRPagesDone != 3 || st.Progress.OCRPagesTotal != 3 || len(st.OCRConfidence) != 3 {
		t.Fatalf("status %+v", st)
	}
	for i, c := range st.OCRConfidence {
		if want := []int{1, 3, 4}[i]; c.Page != want || (c.Page != 4 && c.Confidence < 80) {
			t.Errorf("ocr_confidence[%d] = %+v, want page %d, confidence ≥ 80", i, c, want)
		}
	}
	var doc documentResponse
	a.mustStatus(a.call("GET", "/api/knowledge/"+d.Document.ID.String(), tok, nil), 200).decode(t, &doc)
	if doc.OCRPages != 3 {
		t.Errorf("document ocr_pages %d", doc.OCRPages)
	}
	for _, c := range []struct {
		query string
		page  int
	}{{"Czerny studies", 1}, {"Klavierschule Tonleitern", 3}, {"legato staccato pedalling", 2}} {
		var res searchResponse
		a.mustStatus(a.call("POST", "/api/search", tok, map[string]any{"query": c.query, "mode": "bm25", "min_lsn": *st.IndexLSN}), 200).decode(t, &res)
		if len(res.Results) == 0 {
			t.Errorf("%q: no hits", c.query)
			continue
		}
		h := res.Results[0]
		word := strings.Fields(c.query)[0]
		if h.DocumentID != d.Document.ID || !strings.Contains(h.Text, word) || h.PageStart > c.page || h.PageEnd < c.page {
			t.Errorf("%q: top hit pages %d-%d %q…, want page %d", c.query, h.PageStart, h.PageEnd, firstN(h.Text, 80), c.page)
		}
	}
}

func firstN(s string, n int) string { return string([]rune(s)[:min(n, len([]rune(s)))]) }

// TestScannedPDFLimitsFail: a PDF of 10,000 scanned pages (one image
// shared by every page) fails with too_large at once, leaving no chunk.
func TestScannedPDFLimitsFail(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(tok, map[string]any{"title": "Huge scan", "source_type": "pdf", "is_public": false})
	if st := a.upload(projectWithUpload{Upload: *d.Upload}, pdftest.ImagePages(10000, 595, 842)); st != 200 {
		t.Fatalf("upload %d", st)
	}
	a.process(tok, d.Document.ID)
	st := a.waitDocument(tok, d.Document.ID)
	if st.Status != "failed" || st.ErrorCode == nil || *st.ErrorCode != "too_large" || st.Error == nil || strings.Contains(*st.Error, "pdf:") {
		t.Fatalf("status %+v", st)
	}
	if n := a.rowCount("chunks") + a.rowCount("chunk_staging"); n != 0 {
		t.Errorf("%d chunks left", n)
	}
	t.Logf("failed as: %s", *st.Error)
}

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// TestMain lets this test binary serve as the PDF reader's child, as the
// sostenuto binary does (main calls pdf.MaybeChild first).
func TestMain(m *testing.M) {
	pdf.MaybeChild()
	os.Exit(m.Run())
}

// TestIngestCommandReadsScans bulk-loads a folder holding a scanned PDF:
// its pages are read by OCR, the progress bar says so, the summary counts
// them, and the chunks hold the scanned words with their page.
func TestIngestCommandReadsScans(t *testing.T) {
	db := pgtest.NewEmptyDB(t, "")
	env := []string{"SOSTENUTO_DATABASE_URL=" + db.URL, "SOSTENUTO_LOG_LEVEL=warn", "SOSTENUTO_DATA_DIR=" + t.TempDir()}
	if code, out, stderr := runCmd(t, env, "", "migrate"); code != 0 {
		t.Fatalf("migrate = %d %q %q", code, out, stderr)
	}
	if code, out, stderr := runCmd(t, env, "organ-pipes-42\n", "admin", "create", "--email", "root@example.com"); code != 0 {
		t.Fatalf("admin create = %d %q %q", code, out, stderr)
	}
	scan, err := pdftest.Scan("Hanon exercises strengthen the fourth and fifth fingers.\nPlay them legato at a slow tempo before speeding up.", 0)
	if err != nil {
		t.Fatal(err)
	}
	notation, err := pdftest.Staff("")
	if err != nil {
		t.Fatal(err)
	}
	body, err := pdftest.Mixed([]pdftest.Page{{Text: "A born-digital title page about finger independence and practice."}, {Image: scan}, {Image: notation}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hanon.pdf"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCmd(t, env, "", "ingest", "--as", "root@example.com", dir)
	if code != 0 || !strings.Contains(out, "ingested 1 of 1 documents") || !strings.Contains(out, "OCR: 2 scanned pages read") {
		t.Fatalf("ingest = %d %q %q", code, out, stderr)
	}
	if !strings.Contains(stderr, "hanon: OCR page 2 of 2") {
		t.Errorf("the progress bar did not show OCR progress: %q", stderr)
	}
	var text string
	var pageStart, pageEnd, ocrPages int
	err = mustPool(t, db.URL).QueryRow(context.Background(), `SELECT c.text, c.page_start, c.page_end, d.ocr_pages
		FROM chunks c JOIN documents d ON d.id = c.document_id`).Scan(&text, &pageStart, &pageEnd, &ocrPages)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "Hanon exercises strengthen") || pageStart != 1 || pageEnd != 2 || ocrPages != 2 {
		t.Errorf("chunk pages %d-%d, ocr_pages %d: %q", pageStart, pageEnd, ocrPages, text)
	}
}

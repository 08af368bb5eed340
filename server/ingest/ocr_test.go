package ingest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/jobs"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
	"github.com/sostenuto/sostenuto/server/store"
)

func TestMain(m *testing.M) {
	pdf.MaybeChild()
	os.Exit(m.Run())
}

// italianPage and germanPage are 24 lines of piano teaching in the
// language, with its diacritics (as bench/ocr_test.go's pages).
var (
	italianPage = page("Tieni il polso morbido mentre le dita si muovono.", "Studia ogni scala lentamente, con il metronomo a sessanta.",
		"La mano sinistra accompagna dolcemente la melodia più alta.", "Solleva il pedale quando cambia l'armonia, così è più pulito.")
	germanPage = page("Der Daumen gleitet unter die Hand, ohne dass sie sich dreht.", "Üben Sie langsam und gleichmäßig mit beiden Händen.",
		"Die Fingersätze für Tonleitern sind für Anfänger wichtig.", "Größere Sprünge übt man zuerst mit geschlossenen Augen.")
)

func page(lines ...string) string {
	out := make([]string, 24)
	for i := range out {
		out[i] = lines[i%len(lines)]
	}
	return strings.Join(out, "\n")
}

// ocrPipeline is a pipeline with the real sandboxed OCR child, the
// language detector and a store on a fresh database (for OCR progress).
func ocrPipeline(t *testing.T) *Pipeline {
	t.Helper()
	checker, err := pdf.NewChecker(pdf.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	ocr, err := pdf.NewOCR(context.Background(), checker, pdf.DefaultOCR, logger)
	if err != nil {
		t.Fatal(err)
	}
	return &Pipeline{Store: store.New(pgtest.NewDB(t).Pool), PDF: checker, OCR: ocr, Languages: NewLanguageDetector(), Logger: logger}
}

func mixedPDF(t *testing.T, pages ...pdftest.Page) string {
	t.Helper()
	b, err := pdftest.Mixed(pages)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func scan(t *testing.T, text string) pdftest.Page {
	t.Helper()
	img, err := pdftest.Scan(text, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pdftest.Page{Image: img}
}

// accuracy is pdftest.WordAccuracy without the extra words.
func accuracy(ref, got string) float64 {
	a, _ := pdftest.WordAccuracy(ref, got)
	return a
}

// TestOCRChoosesItalian reads an all-Italian scanned document: the first
// page with every configured language (no text before it), the others
// with ita alone, and those read at least as well as with all five.
func TestOCRChoosesItalian(t *testing.T) {
	p := ocrPipeline(t)
	path := mixedPDF(t, scan(t, italianPage), scan(t, italianPage), scan(t, italianPage))
	pages, err := p.readPDF(context.Background(), uuid.New(), path)
	if err != nil {
		t.Fatal(err)
	}
	all, err := p.OCR.Extract(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{pdf.DefaultOCR.Languages, "ita", "ita"}
	var chosen, five float64
	for i, pg := range pages {
		if !pg.OCR || pg.Languages != want[i] || all.Pages[i].Languages != pdf.DefaultOCR.Languages {
			t.Errorf("page %d: ocr %v, languages %q (all: %q); want %q", i+1, pg.OCR, pg.Languages, all.Pages[i].Languages, want[i])
		}
		if i > 0 {
			chosen += accuracy(italianPage, pg.Text) / 2
			five += accuracy(italianPage, all.Pages[i].Text) / 2
		}
	}
	t.Logf("word accuracy of pages 2-3: ita %.3f, all five %.3f", chosen, five)
	if chosen < five || chosen < 0.95 {
		t.Errorf("word accuracy with ita %.3f, with all five %.3f", chosen, five)
	}
}

// TestOCRChoosesFromTextLayer reads a German document of a born-digital
// page and a scanned one: the text layer decides, so even the first
// scanned page is read with deu alone.
func TestOCRChoosesFromTextLayer(t *testing.T) {
	p := ocrPipeline(t)
	path := mixedPDF(t, pdftest.Page{Text: strings.ReplaceAll(germanPage, "\n", " ")}, scan(t, germanPage))
	pages, err := p.readPDF(context.Background(), uuid.New(), path)
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 2 || pages[0].OCR || !pages[1].OCR || pages[1].Languages != "deu" {
		t.Fatalf("pages %+v; want the scan read with deu", pages)
	}
	if acc := accuracy(germanPage, pages[1].Text); acc < 0.95 {
		t.Errorf("word accuracy %.3f: %q", acc, pages[1].Text)
	}
}

// TestOCRStoppedByShutdown cancels a document's OCR as a node shutting
// down does: the job's error is the cancellation, retried later, never a
// permanent "timeout" (nor any permanent failure).
func TestOCRStoppedByShutdown(t *testing.T) {
	p := ocrPipeline(t)
	path := mixedPDF(t, scan(t, italianPage), scan(t, italianPage), scan(t, italianPage))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := p.readPDF(ctx, uuid.New(), path)
	if err == nil {
		t.Fatal("the OCR finished before the cancellation")
	}
	err = markPermanent(pdfFailure(err))
	var fe *FetchError
	if !errors.Is(err, context.Canceled) || errors.Is(err, jobs.ErrPermanent) || errors.As(err, &fe) {
		t.Fatalf("err = %v, want the cancellation, not permanent", err)
	}
}

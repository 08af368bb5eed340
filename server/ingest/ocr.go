package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/pdf"
)

// readPDF reads a PDF's pages: with OCR for scanned pages when the
// pipeline has it (recording OCR progress on the document), else the text
// layer alone.
func (p *Pipeline) readPDF(ctx context.Context, id uuid.UUID, path string) ([]pdf.Page, error) {
	if p.OCR == nil {
		res, err := p.PDF.Inspect(ctx, path, true)
		if err != nil {
			return nil, err
		}
		pages := make([]pdf.Page, len(res.Text))
		for i, text := range res.Text {
			pages[i] = pdf.Page{Number: i + 1, Text: text}
		}
		return pages, nil
	}
	ex, err := p.OCR.ExtractChoosing(ctx, path, func(done, total int) {
		if err := p.Store.OCRProgress(ctx, id, done, total); err != nil {
			p.Logger.Warn("record OCR progress", "component", "ingest", "document", id, "error", err)
		}
		if p.OnOCRProgress != nil {
			p.OnOCRProgress(id, done, total)
		}
	}, p.ocrLanguages)
	return ex.Pages, err
}

// tesseractData names the Tesseract language data of an ISO 639-1 code
// the detector tells ("" for any other).
func tesseractData(lang string) string {
	switch lang {
	case "en":
		return "eng"
	case "de":
		return "deu"
	case "fr":
		return "fra"
	case "es":
		return "spa"
	case "it":
		return "ita"
	case "nl":
		return "nld"
	case "pt":
		return "por"
	}
	return ""
}

// ocrLanguages chooses the Tesseract data for a document's scanned pages
// from its text so far: its language's alone when the detector is sure,
// else "" (every configured language; data not configured is refused by
// pdf.OCR and means the same).
func (p *Pipeline) ocrLanguages(text string) string {
	lang, ok := p.Languages.DetectSure(text)
	if !ok {
		return ""
	}
	return tesseractData(lang)
}

// pdfFailure classifies a PDF the reader refused. The sentences name no
// library or tool; the detail stays in the error, for the logs. A read
// stopped by its caller's context (the node shutting down) is no verdict
// on the PDF: it comes back as it is, so that the job is tried again.
func pdfFailure(err error) error {
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("ingest: read the PDF: %w", err)
	case errors.Is(err, pdf.ErrTooLarge):
		return permanentFailure(CodeTooLarge, "The PDF is too large to read: too many pages, or a scanned page too large for OCR.", err)
	case errors.Is(err, pdf.ErrTimeout):
		return permanentFailure(CodeTimeout, "Reading the PDF took longer than its time limit (scanned pages are read by OCR, which is bounded per page and per document).", err)
	}
	return permanentFailure(CodeUnsupported, "The PDF could not be read (damaged, encrypted, or beyond the reader's limits).", err)
}

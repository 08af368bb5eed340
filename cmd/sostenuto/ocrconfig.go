package main

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/sostenuto/sostenuto/server/pdf"
)

// ocrConfig says how scanned PDF pages are read (docs/INGESTION.md "OCR").
type ocrConfig struct {
	languages   string
	dpi         int64
	maxPages    int64
	pageTimeout time.Duration
	docTimeout  time.Duration
}

// tesseractLangs is a '+'-joined list of Tesseract language data names.
var tesseractLangs = regexp.MustCompile(`^[a-z][a-z_]{1,15}(\+[a-z][a-z_]{1,15})*$`)

func (c *ocrConfig) settings() []setting {
	return []setting{
		{name: "ocr-languages", usage: "Tesseract language data for scanned PDF pages, joined by '+' (Debian: tesseract-ocr-LANG), or off", def: "eng+deu+fra+spa+ita",
			parse: func(v string) error {
				if v != "off" && !tesseractLangs.MatchString(v) {
					return fmt.Errorf("invalid language list %q (e.g. eng+deu)", v)
				}
				c.languages = v
				return nil
			}},
		{name: "ocr-dpi", usage: "resolution scanned pages are rendered at for OCR", def: "300", parse: intVar(&c.dpi, 100, 600)},
		{name: "ocr-max-pages", usage: "most scanned pages read by OCR in one document (more: the document fails with too_large)", def: "500", parse: intVar(&c.maxPages, 1, 5000)},
		{name: "ocr-page-timeout", usage: "wall clock (and CPU) bound of rendering and reading one scanned page", def: "1m", parse: durationVar(&c.pageTimeout, time.Second, 10*time.Minute)},
		{name: "ocr-document-timeout", usage: "wall clock bound of reading one PDF, OCR included", def: "30m", parse: durationVar(&c.docTimeout, 10*time.Second, 6*time.Hour)},
	}
}

// reader builds the OCR reader; nil when OCR is off. It fails when the
// tools or a language's data are missing.
func (c *ocrConfig) reader(ctx context.Context, checker *pdf.Checker, logger *slog.Logger) (*pdf.OCR, error) {
	if c.languages == "off" {
		return nil, nil
	}
	cfg := pdf.DefaultOCR
	cfg.Languages, cfg.DPI, cfg.MaxPages = c.languages, int(c.dpi), int(c.maxPages)
	cfg.PageTimeout, cfg.DocTimeout = c.pageTimeout, c.docTimeout
	o, err := pdf.NewOCR(ctx, checker, cfg, logger)
	if err != nil {
		return nil, &configError{setting: envName("ocr-languages"), err: fmt.Errorf("%w (or set it to off)", err)}
	}
	return o, nil
}

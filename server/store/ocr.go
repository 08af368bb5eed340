package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// PageConfidence is how sure OCR was of one page: the mean confidence
// (0–100) of its words.
type PageConfidence struct {
	Page       int     `json:"page"`
	Confidence float64 `json:"confidence"`
}

// PageReport is what processing learnt about a document's pages: those
// with no text, those read by OCR, and those of them OCR was unsure of.
type PageReport struct {
	Empty         []int
	OCR           []PageConfidence
	LowConfidence []int
}

// orEmpty gives nil lists their empty value, as the columns hold them.
func (r PageReport) orEmpty() PageReport {
	if r.Empty == nil {
		r.Empty = []int{}
	}
	if r.OCR == nil {
		r.OCR = []PageConfidence{}
	}
	if r.LowConfidence == nil {
		r.LowConfidence = []int{}
	}
	return r
}

// OCRProgress records pages read by OCR so far, of those that will be.
func (s *Store) OCRProgress(ctx context.Context, id uuid.UUID, done, total int) error {
	_, err := s.pool.Exec(ctx, `UPDATE documents SET ocr_pages_done = $2, ocr_pages_total = $3, updated_at = now()
		WHERE id = $1`, id, done, total)
	if err != nil {
		return fmt.Errorf("store: OCR progress: %w", err)
	}
	return nil
}

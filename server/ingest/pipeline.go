package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/jobs"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/store"
)

// StoreBatch is how many chunks one transaction stages.
const StoreBatch = 100

// ErrNoText marks a source with no text to index.
var ErrNoText = errors.New("ingest: the source has no text")

// Pipeline processes documents: extract → chunk → embed → store.
type Pipeline struct {
	Store *store.Store // as sostenuto_worker
	Blob  blob.Store
	PDF   *pdf.Checker
	// OCR reads PDFs with OCR for scanned pages; nil reads text layers
	// only (PDF).
	OCR *pdf.OCR
	// OnOCRProgress, when set, hears of pages read by OCR (the CLI's
	// progress bar); the document's status records them regardless.
	OnOCRProgress func(doc uuid.UUID, done, total int)
	Fetch         *Fetcher
	YouTube       *YouTubeCaptions
	Chunker       *Chunker
	Embedder      embed.Embedder
	// Models, when set, are the configured embedders by name: a document
	// is embedded by the model the database names active (Embedder is
	// then unused).
	Models *embed.Models
	// Languages tells each document's language (nil: every document is
	// DefaultLanguage).
	Languages *LanguageDetector
	// MaxObjectBytes bounds stored uploads read for processing.
	MaxObjectBytes int64
	Logger         *slog.Logger
}

// Stats says what processing a document did and where the time went.
type Stats struct {
	Segments   int
	Language   string
	Chunks     int
	Tokens     int
	EmptyPages []int
	OCRPages   int   // pages read by OCR
	LowConf    []int // OCR'd pages of very low confidence
	Extract    time.Duration
	Chunk      time.Duration
	Embed      time.Duration
	Store      time.Duration
	LSN        index.LSN
	// Hash is the content hash of what was extracted; Unchanged: a
	// refresh found the stored chunks made from it and kept them.
	Hash      string
	Unchanged bool
}

// Process extracts, chunks, embeds and stores one document; its old chunks
// are replaced in one transaction at the end.
func (p *Pipeline) Process(ctx context.Context, id uuid.UUID) (Stats, error) {
	return p.process(ctx, id, false)
}

// Refresh is Process for a source fetched again: when what it extracts
// has the content hash of the stored chunks, they stay as they are (no
// chunk is written) and the document is completed again (Stats.Unchanged).
func (p *Pipeline) Refresh(ctx context.Context, id uuid.UUID) (Stats, error) {
	return p.process(ctx, id, true)
}

func (p *Pipeline) process(ctx context.Context, id uuid.UUID, refresh bool) (Stats, error) {
	var st Stats
	src, err := p.Store.IngestSourceOf(ctx, id)
	if err != nil {
		return st, fmt.Errorf("%w: %w", jobs.ErrPermanent, err)
	}
	if err := p.Store.StartIngest(ctx, id); err != nil {
		return st, err
	}
	t := time.Now()
	segs, pages, err := p.extract(ctx, src)
	st.Extract, st.EmptyPages, st.Segments = time.Since(t), pages.Empty, len(segs)
	st.OCRPages, st.LowConf = len(pages.OCR), pages.LowConfidence
	if err != nil {
		return st, err
	}
	emb, model, err := p.ActiveEmbedder(ctx)
	if err != nil {
		return st, err
	}
	st.Hash = ContentHash(segs, p.Chunker, emb.Model())
	if refresh && src.ChunkCount > 0 && src.ContentHash != nil && *src.ContentHash == st.Hash {
		st.Unchanged, st.Chunks = true, src.ChunkCount
		return st, p.Store.KeepIngest(ctx, id)
	}
	st.Language = p.Languages.Detect(segs) // on the final text, OCR'd pages included
	t = time.Now()
	chunks := p.Chunker.Split(segs)
	st.Chunk, st.Chunks = time.Since(t), len(chunks)
	if len(chunks) == 0 {
		return st, permanentFailure(CodeNoText, "The source has no text to index.", ErrNoText)
	}
	if err := p.stage(ctx, id, chunks, emb, model, &st); err != nil {
		return st, err
	}
	t = time.Now()
	st.LSN, err = p.Store.FinishIngest(ctx, id, pages, st.Hash)
	st.Store += time.Since(t)
	return st, err
}

// stage embeds the chunks in batches with emb (the active model, named
// model: "" before models are named) and stages them, recording progress.
func (p *Pipeline) stage(ctx context.Context, id uuid.UUID, chunks []Chunk, emb embed.Embedder, model string, st *Stats) error {
	if err := p.Store.IngestProgress(ctx, id, 0, len(chunks)); err != nil {
		return err
	}
	for start := 0; start < len(chunks); start += StoreBatch {
		group := chunks[start:min(start+StoreBatch, len(chunks))]
		texts := make([]string, len(group))
		for i, c := range group {
			texts[i] = c.Text
			st.Tokens += c.TokenCount
		}
		t := time.Now()
		vecs, err := embed.Batched(ctx, emb, texts, nil)
		st.Embed += time.Since(t)
		if err != nil {
			return err
		}
		t = time.Now()
		staged := make([]store.StagedChunk, len(group))
		for i, c := range group {
			staged[i] = store.StagedChunk{Ordinal: c.Ordinal, Text: c.Text, TokenCount: c.TokenCount, PageStart: c.PageStart,
				PageEnd: c.PageEnd, CharStart: c.CharStart, CharEnd: c.CharEnd, TimeStartMs: c.TimeStartMs,
				TimeEndMs: c.TimeEndMs, Embedding: vecs[i], Language: st.Language, Model: model}
		}
		if err := p.Store.StageChunks(ctx, id, staged); err != nil {
			return err
		}
		if err := p.Store.IngestProgress(ctx, id, start+len(group), len(chunks)); err != nil {
			return err
		}
		st.Store += time.Since(t)
	}
	return nil
}

// extract turns a source into located segments, with what it learnt of
// the pages (for a PDF: those without text, those read by OCR). Failures
// of the source itself are *FetchError.
func (p *Pipeline) extract(ctx context.Context, src store.IngestSource) ([]Segment, store.PageReport, error) {
	var none store.PageReport
	switch src.SourceType {
	case store.SourceText:
		if src.Content == nil || strings.TrimSpace(*src.Content) == "" {
			return nil, none, permanentFailure(CodeNoText, "The document has no text.", ErrNoText)
		}
		return []Segment{{Text: *src.Content, Page: 1}}, none, nil
	case store.SourceWeb:
		if src.SourceURL == nil {
			return nil, none, permanentFailure(CodeUnsupported, "The document has no URL.", errors.New("ingest: no URL"))
		}
		page, err := p.Fetch.FetchArticle(ctx, *src.SourceURL)
		if err != nil {
			return nil, none, err
		}
		return []Segment{{Text: page.Text, Page: 1}}, none, nil
	case store.SourceYouTube:
		segs, err := p.extractYouTube(ctx, src)
		return segs, none, err
	case store.SourcePDF:
		return p.extractPDF(ctx, src)
	}
	return nil, none, permanentFailure(CodeUnsupported, "The document's source type is not supported.",
		fmt.Errorf("ingest: unknown source type %q", src.SourceType))
}

func (p *Pipeline) extractYouTube(ctx context.Context, src store.IngestSource) ([]Segment, error) {
	if src.ObjectKey != nil {
		path, err := p.download(ctx, *src.ObjectKey)
		if err != nil {
			return nil, err
		}
		defer os.Remove(path)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return parseCaptionFile(string(data))
	}
	if src.SourceURL == nil {
		return nil, permanentFailure(CodeNotFoundAtSource, "The document has neither a video URL nor a caption file.",
			errors.New("ingest: no video URL and no caption file"))
	}
	id, err := VideoID(*src.SourceURL)
	if err != nil {
		return nil, permanentFailure(CodeUnsupported, "The URL is not a YouTube video URL.", err)
	}
	return p.YouTube.Fetch(ctx, id)
}

func (p *Pipeline) extractPDF(ctx context.Context, src store.IngestSource) ([]Segment, store.PageReport, error) {
	if src.ObjectKey == nil {
		return nil, store.PageReport{}, permanentFailure(CodeNotFoundAtSource, "The PDF has not been uploaded.", errors.New("ingest: no object key"))
	}
	path, err := p.download(ctx, *src.ObjectKey)
	if err != nil {
		return nil, store.PageReport{}, err
	}
	defer os.Remove(path)
	pages, err := p.readPDF(ctx, src.ID, path)
	if err != nil {
		return nil, store.PageReport{}, pdfFailure(err)
	}
	segs := make([]Segment, len(pages))
	var rep store.PageReport
	for i, pg := range pages {
		segs[i] = Segment{Text: pg.Text, Page: pg.Number}
		if strings.TrimSpace(pg.Text) == "" {
			rep.Empty = append(rep.Empty, pg.Number)
		}
		if pg.OCR {
			rep.OCR = append(rep.OCR, store.PageConfidence{Page: pg.Number, Confidence: math.Round(pg.Confidence*10) / 10})
		}
		if pg.LowConfidence {
			rep.LowConfidence = append(rep.LowConfidence, pg.Number)
		}
	}
	return segs, rep, nil
}

// download copies an upload to a private temporary file, refusing one
// over MaxObjectBytes.
func (p *Pipeline) download(ctx context.Context, key string) (string, error) {
	info, err := p.Blob.Stat(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return "", permanentFailure(CodeNotFoundAtSource, "The file has not been uploaded.", err)
	}
	if err != nil {
		return "", err
	}
	if p.MaxObjectBytes > 0 && info.Size > p.MaxObjectBytes {
		return "", permanentFailure(CodeTooLarge, fmt.Sprintf("The upload is larger than the limit of %d bytes.", p.MaxObjectBytes),
			fmt.Errorf("ingest: the upload has %d bytes; the limit is %d", info.Size, p.MaxObjectBytes))
	}
	path, _, err := blob.ToTempFile(ctx, p.Blob, key, p.MaxObjectBytes)
	return path, err
}

// Handler runs ingestion jobs. A failure that will be retried leaves the
// document queued with the failure's code and sentence; GiveUp marks it
// failed. The detail reaches the logs through the job runner, with the job
// id and (in the error) the document id.
func (p *Pipeline) Handler() jobs.Handler {
	return func(ctx context.Context, job store.Job) error {
		var pl store.IngestPayload
		if err := json.Unmarshal(job.Payload, &pl); err != nil {
			return fmt.Errorf("%w: bad payload", jobs.ErrPermanent)
		}
		run := p.Process
		if pl.Refresh {
			run = p.Refresh
		}
		st, err := run(ctx, pl.DocumentID)
		if err == nil {
			p.Logger.Info("document processed", "component", "ingest", "document", pl.DocumentID, "job", job.ID, "refresh", pl.Refresh,
				"unchanged", st.Unchanged, "chunks", st.Chunks, "language", st.Language,
				"empty_pages", len(st.EmptyPages), "ocr_pages", st.OCRPages, "low_confidence_pages", len(st.LowConf), "extract", st.Extract, "embed", st.Embed, "store", st.Store, "lsn", st.LSN)
			return nil
		}
		err = fmt.Errorf("ingest: document %s: %w", pl.DocumentID, markPermanent(err))
		if !errors.Is(err, jobs.ErrPermanent) && job.Attempts < job.MaxAttempts && ctx.Err() == nil {
			code, msg := Describe(err)
			msg = fmt.Sprintf("%s Attempt %d of %d failed; it will be retried.", msg, job.Attempts, job.MaxAttempts)
			if ferr := p.Store.FailIngest(context.WithoutCancel(ctx), pl.DocumentID, code, msg, true); ferr != nil {
				p.Logger.Warn("record ingest failure", "component", "ingest", "document", pl.DocumentID, "job", job.ID, "error", ferr)
			}
		}
		return err
	}
}

// GiveUp marks a document failed when its job fails for good.
func (p *Pipeline) GiveUp() jobs.GiveUp {
	return func(ctx context.Context, job store.Job, cause error) {
		var pl store.IngestPayload
		if json.Unmarshal(job.Payload, &pl) != nil {
			return
		}
		code, msg := Describe(cause)
		if err := p.Store.FailIngest(ctx, pl.DocumentID, code, msg, false); err != nil {
			p.Logger.Warn("record ingest failure", "component", "ingest", "document", pl.DocumentID, "job", job.ID, "error", err)
		}
	}
}

// ActiveEmbedder is the embedder of the active model and its name ("" without
// Models: the one Embedder, as before models were named).
func (p *Pipeline) ActiveEmbedder(ctx context.Context) (embed.Embedder, string, error) {
	if p.Models == nil {
		return p.Embedder, "", nil
	}
	st, err := p.Store.EmbeddingState(ctx)
	if err != nil {
		return nil, "", err
	}
	if st.Active == "" {
		m := p.Models.Default()
		return m.Embedder, "", nil
	}
	m, ok := p.Models.Get(st.Active)
	if !ok {
		return nil, "", fmt.Errorf("ingest: the active embedding model %s is not configured on this node", st.Active)
	}
	return m.Embedder, m.Name, nil
}

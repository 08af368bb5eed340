package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"

	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/ingest"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/store"
)

type ingestCmdConfig struct {
	log    logConfig
	db     dbConfig
	blob   blobConfig
	ingest ingestConfig
	as     string
	public bool
}

func (c *ingestCmdConfig) settings() []setting {
	s := append(c.log.settings(), c.db.settings()...)
	s = append(s, c.blob.settings()...)
	s = append(s, c.ingest.settings()...)
	return append(s,
		setting{name: "as", env: "SOSTENUTO_INGEST_AS", usage: "email of the teacher or admin who will own the documents", parse: stringVar(&c.as)},
		setting{name: "public", env: "SOSTENUTO_INGEST_PUBLIC", usage: "make the documents visible to everyone", def: "false", isBool: true, parse: boolVar(&c.public)},
	)
}

// source is one thing to ingest.
type source struct {
	path, url  string // one of them
	sourceType string
	title      string
}

// ingestable file extensions and their source types.
var ingestExt = map[string]string{".pdf": store.SourcePDF, ".txt": store.SourceText, ".md": store.SourceText,
	".markdown": store.SourceText, ".vtt": store.SourceYouTube, ".srt": store.SourceYouTube}

// runIngest bulk-loads files, folders and URLs as a user, processing each
// in this process with a progress bar, then prints a summary.
func runIngest(ctx context.Context, args, env []string, _ io.Reader, stdout, stderr io.Writer) error {
	var cfg ingestCmdConfig
	flagArgs, targets := splitIngestArgs(cfg.settings(), args)
	if err := loadSettings("ingest", cfg.settings(), flagArgs, env, stderr); err != nil {
		return err
	}
	if cfg.as == "" || len(targets) == 0 {
		return fmt.Errorf("%w: sostenuto ingest --as EMAIL [--public] PATH|URL...", errUsage)
	}
	sources, err := collectSources(targets)
	if err != nil {
		return err
	}
	if len(sources) == 0 {
		return errors.New("nothing to ingest: no .pdf, .txt, .md, .vtt or .srt files, and no URLs")
	}
	logger := cfg.log.logger(io.Discard) // the progress bar owns the terminal
	app, err := openPool(ctx, &cfg.db, store.AppRole, 10*time.Second, logger)
	if err != nil {
		return err
	}
	defer app.Close()
	worker, err := openPool(ctx, &cfg.db, store.WorkerRole, 10*time.Second, logger)
	if err != nil {
		return err
	}
	defer worker.Close()
	l, err := cfg.loader(ctx, store.New(app), store.New(worker), logger)
	if err != nil {
		return err
	}
	return l.run(sources, stdout, stderr)
}

// splitIngestArgs separates the flags (with their values) from the paths
// and URLs: flags may come before or after them.
func splitIngestArgs(settings []setting, args []string) (flagArgs, targets []string) {
	bools := map[string]bool{"h": true, "help": true}
	for _, s := range settings {
		bools[s.name] = s.isBool
	}
	for i := 0; i < len(args); i++ {
		if strings.HasPrefix(args[i], "-") {
			flagArgs = append(flagArgs, args[i])
			if !strings.Contains(args[i], "=") && i+1 < len(args) && !bools[strings.TrimLeft(args[i], "-")] {
				flagArgs = append(flagArgs, args[i+1])
				i++
			}
			continue
		}
		targets = append(targets, args[i])
	}
	return flagArgs, targets
}

// loader checks that --as names a teacher or admin and builds the loader
// that ingests as them.
func (c *ingestCmdConfig) loader(ctx context.Context, appStore, workerStore *store.Store, logger *slog.Logger) (*loader, error) {
	email, err := auth.NormalizeEmail(c.as)
	if err != nil {
		return nil, &configError{setting: "--as", err: errors.New("not an email address")}
	}
	user, err := appStore.UserByEmail(ctx, email)
	if err != nil {
		return nil, fmt.Errorf("no user %s: %w", email, err)
	}
	if user.Role == store.RoleStudent {
		return nil, fmt.Errorf("%s is a student; documents belong to teachers or admins", email)
	}
	blobs, err := c.blob.store(ctx, c.db.dataDir, ":8080")
	if err != nil {
		return nil, err
	}
	checker, err := pdf.NewChecker(pdf.DefaultLimits)
	if err != nil {
		return nil, err
	}
	pipe, err := c.ingest.pipeline(ctx, workerStore, blobs, checker, c.blob.maxUpload, logger)
	if err != nil {
		return nil, err
	}
	return &loader{ctx: ctx, app: appStore, pipe: pipe, owner: user.ID, public: c.public, maxText: c.ingest.maxDocumentLen}, nil
}

// collectSources expands folders and classifies files and URLs.
func collectSources(targets []string) ([]source, error) {
	var out []source
	for _, t := range targets {
		if strings.HasPrefix(t, "http://") || strings.HasPrefix(t, "https://") {
			typ := store.SourceWeb
			if _, err := ingest.VideoID(t); err == nil {
				typ = store.SourceYouTube
			}
			out = append(out, source{url: t, sourceType: typ, title: t})
			continue
		}
		err := filepath.WalkDir(t, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			ext := strings.ToLower(filepath.Ext(p))
			if typ, ok := ingestExt[ext]; ok {
				title := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
				out = append(out, source{path: p, sourceType: typ, title: title})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
	}
	return out, nil
}

type loader struct {
	ctx     context.Context
	app     *store.Store
	pipe    *ingest.Pipeline
	owner   uuid.UUID
	public  bool
	maxText int64
}

func (l *loader) run(sources []source, stdout, stderr io.Writer) error {
	bar := progressbar.NewOptions(len(sources), progressbar.OptionSetWriter(stderr), progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	start := time.Now()
	var t tally
	for _, s := range sources {
		title := truncateTitle(s.title)
		bar.Describe(title)
		l.pipe.OnOCRProgress = func(_ uuid.UUID, done, total int) {
			if total > 0 {
				bar.Describe(fmt.Sprintf("%s: OCR page %d of %d", title, done, total))
			}
		}
		st, err := l.one(s)
		t.add(s, st, err)
		bar.Add(1) //nolint:errcheck // a display
	}
	bar.Finish() //nolint:errcheck // a display
	t.print(stdout, len(sources), time.Since(start))
	if len(t.failed) > 0 {
		return fmt.Errorf("%d of %d documents failed", len(t.failed), len(sources))
	}
	return nil
}

// tally sums what processing the sources did.
type tally struct {
	total          ingest.Stats
	done           int
	failed, unsure []string
}

func (t *tally) add(s source, st ingest.Stats, err error) {
	if err != nil {
		t.failed = append(t.failed, fmt.Sprintf("%s: %v", s.title, err))
		return
	}
	t.done++
	t.total.Chunks += st.Chunks
	t.total.Extract += st.Extract
	t.total.Chunk += st.Chunk
	t.total.Embed += st.Embed
	t.total.Store += st.Store
	t.total.OCRPages += st.OCRPages
	if len(st.LowConf) > 0 {
		t.unsure = append(t.unsure, fmt.Sprintf("%s: pages %v", s.title, st.LowConf))
	}
}

func (t *tally) print(w io.Writer, n int, elapsed time.Duration) {
	fmt.Fprintf(w, "ingested %d of %d documents, %d chunks in %s (%.1f documents/s, %.0f chunks/s)\n",
		t.done, n, t.total.Chunks, elapsed.Round(time.Millisecond), float64(t.done)/elapsed.Seconds(), float64(t.total.Chunks)/elapsed.Seconds())
	fmt.Fprintf(w, "time: extract %s, chunk %s, embed %s, store %s\n", t.total.Extract.Round(time.Millisecond),
		t.total.Chunk.Round(time.Millisecond), t.total.Embed.Round(time.Millisecond), t.total.Store.Round(time.Millisecond))
	if t.total.OCRPages > 0 {
		fmt.Fprintf(w, "OCR: %d scanned pages read; %d documents with pages of low confidence\n", t.total.OCRPages, len(t.unsure))
	}
	for _, u := range t.unsure {
		fmt.Fprintln(w, "low OCR confidence:", u)
	}
	for _, f := range t.failed {
		fmt.Fprintln(w, "failed:", f)
	}
}

// one creates a document for a source and processes it.
func (l *loader) one(s source) (ingest.Stats, error) {
	nd := store.NewDocument{ID: uuid.New(), OwnerID: l.owner, Title: truncateTitle(s.title), SourceType: s.sourceType, IsPublic: l.public}
	if s.url != "" {
		nd.SourceURL = &s.url
	}
	var upload func() error
	if s.path != "" {
		switch s.sourceType {
		case store.SourceText:
			b, err := readBounded(s.path, l.maxText)
			if err != nil {
				return ingest.Stats{}, err
			}
			text := string(b)
			nd.Content = &text
		default:
			ext := map[string]string{store.SourcePDF: "pdf", store.SourceYouTube: "vtt"}[s.sourceType]
			key := fmt.Sprintf("documents/%s/%s.%s", nd.ID, uuid.New(), ext)
			nd.ObjectKey = &key
			upload = func() error { return l.putFile(key, s) }
		}
	}
	if _, err := l.app.CreateDocument(l.ctx, nd); err != nil {
		return ingest.Stats{}, err
	}
	if upload != nil {
		if err := upload(); err != nil {
			return ingest.Stats{}, err
		}
	}
	st, err := l.pipe.Process(l.ctx, nd.ID)
	if err != nil {
		code, msg := ingest.Describe(err)
		l.pipe.Store.FailIngest(context.WithoutCancel(l.ctx), nd.ID, code, msg, false) //nolint:errcheck // reported below
	}
	return st, err
}

func (l *loader) putFile(key string, s source) error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	ct := map[string]string{store.SourcePDF: "application/pdf", store.SourceYouTube: "text/vtt"}[s.sourceType]
	return l.pipe.Blob.Put(l.ctx, key, ct, f, fi.Size())
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

func truncateTitle(s string) string {
	r := []rune(s)
	if len(r) > 300 {
		return string(r[:300])
	}
	return s
}

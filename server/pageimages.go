package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/store"
)

// CodeRenderFailed is the 422 code for a page the renderer could not draw
// (a corrupt page, or one past the renderer's limits).
const CodeRenderFailed = "render_failed"

// pageImages draws project pages on demand and keeps them in the blob
// store: one render per (PDF version, page, width) however many ask at
// once (singleflight), at most one render per CPU at a time, and a page
// that failed is not tried again at that width for failureTTL (only the
// renderer's own verdicts are remembered: never a deadline or a
// cancellation of the drawing as a whole).
type pageImages struct {
	group    singleflight.Group
	slots    chan struct{}
	renders  *prometheus.CounterVec
	mu       sync.Mutex
	failures map[string]failedRender // by version, page and width
	sandbox  sync.Once
}

type failedRender struct {
	err   error
	until time.Time
}

// failureTTL is how long a page that failed to render answers its error
// without trying again; maxFailures bounds how many are remembered.
const (
	failureTTL  = 10 * time.Minute
	maxFailures = 10000
)

func newPageImages(reg prometheus.Registerer) *pageImages {
	p := &pageImages{slots: make(chan struct{}, max(1, runtime.NumCPU())), failures: map[string]failedRender{},
		renders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sostenuto_page_renders_total",
			Help: "Project pages drawn as images, by outcome (ok, failed)."}, []string{"outcome"})}
	if reg != nil {
		reg.MustRegister(p.renders)
	}
	return p
}

// pageImage is a stored page image; png holds its bytes when this request
// drew it.
type pageImage struct {
	key  string
	info blob.Info
	png  []byte
}

// pdfVersion names the stored PDF a project's images are drawn from: its
// sealed key and ETag.
func pdfVersion(p store.Project) string {
	sum := sha256.Sum256([]byte(p.ObjectKey + "\n" + *p.ETag))
	return hex.EncodeToString(sum[:10])
}

// ensurePageImage returns the stored image of page at width, drawing and
// storing it first when it is missing. The drawing outlives the request
// (it stores the image for the next one); a request that ends first
// answers 503.
func (s *Server) ensurePageImage(ctx context.Context, actor uuid.UUID, p store.Project, page, width int) (pageImage, error) {
	key := blob.PageImageKey(p.ID.String(), pdfVersion(p), page, width)
	info, err := s.blob.Stat(ctx, key)
	if err == nil {
		return pageImage{key: key, info: info}, nil
	}
	if !errors.Is(err, blob.ErrNotFound) {
		return pageImage{}, err
	}
	ch := s.pages.group.DoChan(key, func() (any, error) {
		return s.drawPageImage(context.WithoutCancel(ctx), actor, p, key, page, width)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return pageImage{}, res.Err
		}
		return res.Val.(pageImage), nil
	case <-ctx.Done():
		return pageImage{}, stillDrawing()
	}
}

// stillDrawing is the 503 of a page whose drawing did not end in time for
// the request (no verdict on the page: it may be stored by now).
func stillDrawing() error {
	return NewProblem(http.StatusServiceUnavailable, CodeUnavailable, "the page is still being drawn; retry shortly")
}

// drawPageImage renders the page from the confirmed PDF and stores it,
// unless a render that finished meanwhile stored it already. Waiting for a
// render slot and the drawing itself are bounded by the request timeout
// each: the drawing's deadline starts once it holds a slot.
func (s *Server) drawPageImage(ctx context.Context, actor uuid.UUID, p store.Project, key string, page, width int) (pageImage, error) {
	failKey := fmt.Sprintf("%s/%d/%d", pdfVersion(p), page, width)
	if err := s.pages.failed(failKey); err != nil {
		return pageImage{}, err
	}
	wait, cancelWait := context.WithTimeout(ctx, s.cfg.Limits.RequestTimeout)
	select {
	case s.pages.slots <- struct{}{}:
		cancelWait()
		defer func() { <-s.pages.slots }()
	case <-wait.Done():
		cancelWait()
		return pageImage{}, NewProblem(http.StatusServiceUnavailable, CodeUnavailable, "too many pages are being drawn; retry shortly")
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.RequestTimeout)
	defer cancel()
	if info, err := s.blob.Stat(ctx, key); err == nil {
		return pageImage{key: key, info: info}, nil
	}
	png, err := s.renderConfirmed(ctx, p, page, width)
	if err != nil {
		return pageImage{}, s.pages.fail(failKey, s.renderProblem(ctx, p, page, err))
	}
	return s.storePageImage(ctx, actor, p, key, png)
}

// renderConfirmed draws page from a private copy of the project's
// confirmed PDF (an object whose ETag differs is refused).
func (s *Server) renderConfirmed(ctx context.Context, p store.Project, page, width int) ([]byte, error) {
	path, info, err := blob.ToTempFile(ctx, s.blob, p.ObjectKey, *p.FileSizeBytes)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	if info.ETag != *p.ETag {
		return nil, fmt.Errorf("pages: object %s has ETag %s, confirmed %s", p.ObjectKey, info.ETag, *p.ETag)
	}
	s.pages.sandbox.Do(func() { s.logSandbox(ctx) })
	png, err := s.pdf.Render(ctx, path, page, width)
	outcome := "ok"
	if err != nil {
		outcome = "failed"
	}
	s.pages.renders.WithLabelValues(outcome).Inc()
	return png, err
}

// storePageImage keeps png under key; if the project was deleted while it
// was drawn (its images' folder may be gone already), the image goes too.
func (s *Server) storePageImage(ctx context.Context, actor uuid.UUID, p store.Project, key string, png []byte) (pageImage, error) {
	if err := s.blob.Put(ctx, key, pngContentType, bytes.NewReader(png), int64(len(png))); err != nil {
		return pageImage{}, err
	}
	info, err := s.blob.Stat(ctx, key)
	if err != nil {
		return pageImage{}, err
	}
	if _, err := s.store.ProjectByID(ctx, actor, p.ID); errors.Is(err, fault.ErrNotFound) {
		s.dropObjects(ctx, key)
		return pageImage{}, err
	}
	return pageImage{key: key, info: info, png: png}, nil
}

// renderProblem turns a render error into the client's problem; the
// renderer's reason goes to the log.
func (s *Server) renderProblem(ctx context.Context, p store.Project, page int, err error) error {
	switch {
	case ctx.Err() != nil && !errors.Is(err, pdf.ErrUnreadable):
		s.logger.WarnContext(ctx, "page render stopped by its deadline", "component", "pages", "project", p.ID, "page", page, "error", err)
		return stillDrawing()
	case errors.Is(err, pdf.ErrNoPage):
		return NewProblem(http.StatusNotFound, CodeNotFound, "no such page")
	case !errors.Is(err, pdf.ErrUnreadable):
		return err
	}
	s.logger.WarnContext(ctx, "page render failed", "component", "pages", "project", p.ID, "page", page, "error", err)
	if errors.Is(err, pdf.ErrTooSlow) {
		return NewProblem(http.StatusUnprocessableEntity, CodeRenderFailed,
			fmt.Sprintf("page %d took longer than %s to draw", page, s.pdf.Limits.Wall))
	}
	return NewProblem(http.StatusUnprocessableEntity, CodeRenderFailed,
		fmt.Sprintf("page %d of this PDF cannot be drawn: it is damaged or past the renderer's limits", page))
}

// logSandbox says once how the renderer is confined here.
func (s *Server) logSandbox(ctx context.Context) {
	mode, err := pdf.ProbeSandbox(ctx)
	if err != nil || mode != "namespaces" {
		s.logger.WarnContext(ctx, "page renderer without namespaces", "component", "pages", "sandbox", mode, "error", err)
		return
	}
	s.logger.InfoContext(ctx, "page renderer sandbox", "component", "pages", "sandbox", mode)
}

// failed returns the problem a page answered recently, if any.
func (pi *pageImages) failed(key string) error {
	pi.mu.Lock()
	defer pi.mu.Unlock()
	if f, ok := pi.failures[key]; ok && time.Now().Before(f.until) {
		return f.err
	}
	return nil
}

// fail remembers a render problem (not a 404, not a storage error) and
// returns it.
func (pi *pageImages) fail(key string, err error) error {
	var p *Problem
	if !errors.As(err, &p) || p.Code != CodeRenderFailed {
		return err
	}
	pi.mu.Lock()
	defer pi.mu.Unlock()
	if len(pi.failures) >= maxFailures {
		clear(pi.failures)
	}
	pi.failures[key] = failedRender{err: err, until: time.Now().Add(failureTTL)}
	return err
}

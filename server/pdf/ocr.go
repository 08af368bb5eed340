package pdf

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Errors of Extract, beside ErrUnreadable.
var (
	// ErrTooLarge marks a PDF over a bound of OCR: too many pages to read
	// by OCR, or a page too large to render.
	ErrTooLarge = errors.New("pdf: too large to read")
	// ErrTimeout marks a page or a document that took longer than its
	// wall-clock bound.
	ErrTimeout = errors.New("pdf: reading took too long")
)

// OCRConfig says which pages are read by OCR and bounds the reading. A page
// is read by OCR when its text layer holds fewer than MinTextChars letters
// and digits and it draws a raster image of at least MinImagePixels
// pixels (a scan); pages without such an image (born-digital pages, blank
// pages) never are.
type OCRConfig struct {
	Languages string // Tesseract's -l: language data joined by '+'
	Pdftoppm  string // path of poppler-utils' pdftoppm
	Tesseract string // path of tesseract

	DPI       int   // rendering resolution (300)
	MinDPI    int   // a page that MaxPixels allows only a lower resolution is refused (100)
	MaxPixels int64 // largest rendered page, in pixels

	PageTimeout time.Duration // wall clock and CPU of one page's rendering and reading
	DocTimeout  time.Duration // wall clock of the whole document, text layer included
	MaxPages    int           // most pages read by OCR in one document
	ToolMemory  int64         // data segment of each tool run (RLIMIT_DATA; at most the child's own)

	MinTextChars      int     // fewer letters and digits in a page's text layer: it may be a scan
	MinImagePixels    int64   // smallest image that makes such a page a scan
	MinWordConfidence float64 // words Tesseract is less sure of (0–100) are dropped
	LowPageConfidence float64 // pages whose mean word confidence is below are reported
}

// DefaultOCR suits scanned method books: A4 at 300 dpi is 8.7 megapixels.
var DefaultOCR = OCRConfig{
	Languages: "eng+deu+fra+spa+ita", Pdftoppm: "pdftoppm", Tesseract: "tesseract",
	DPI: 300, MinDPI: 100, MaxPixels: 40_000_000,
	PageTimeout: time.Minute, DocTimeout: 30 * time.Minute, MaxPages: 500, ToolMemory: 512 << 20,
	MinTextChars: 32, MinImagePixels: 250_000, MinWordConfidence: 50, LowPageConfidence: 60,
}

// Page is one page's text and how it was read.
type Page struct {
	Number        int     `json:"page"`
	Text          string  `json:"text"`
	OCR           bool    `json:"ocr,omitempty"`            // read by OCR
	Confidence    float64 `json:"confidence,omitempty"`     // OCR: mean word confidence, 0–100
	Words         int     `json:"words,omitempty"`          // OCR: words kept
	Dropped       int     `json:"dropped,omitempty"`        // OCR: words dropped (unsure, or no letter or digit)
	LowConfidence bool    `json:"low_confidence,omitempty"` // OCR: Confidence below LowPageConfidence
	Languages     string  `json:"languages,omitempty"`      // OCR: the Tesseract language data it was read with
}

// Extraction is a document's text, page by page.
type Extraction struct {
	Pages    []Page
	Isolated bool // the reader ran in its own network namespace
}

// OCRPages counts the pages read by OCR.
func (e Extraction) OCRPages() int {
	n := 0
	for _, p := range e.Pages {
		if p.OCR {
			n++
		}
	}
	return n
}

// Progress reports pages read by OCR so far, of the pages that will be.
type Progress func(done, total int)

// LanguageChooser picks the Tesseract language data (joined by '+') for a
// document's scanned pages from its text read so far: its born-digital
// pages' text layer, or that and its first scanned page read with every
// configured language. "" means unsure: every configured language. An
// answer naming data outside the configuration is ignored.
type LanguageChooser func(text string) string

// OCR reads PDFs' text in the limited child process, with OCR for scanned
// pages. The child runs in its own user and network namespaces when the
// kernel allows them, with an empty environment; the tools it starts
// inherit that and get rlimits of their own.
type OCR struct {
	checker *Checker
	cfg     OCRConfig
	box     *sandbox
}

// NewOCR resolves the tools in cfg (names are looked up on PATH: the child
// runs with an empty environment) and checks that Tesseract has every
// language asked for.
func NewOCR(ctx context.Context, c *Checker, cfg OCRConfig, logger *slog.Logger) (*OCR, error) {
	var err error
	for _, tool := range []*string{&cfg.Pdftoppm, &cfg.Tesseract} {
		if *tool, err = exec.LookPath(*tool); err != nil {
			return nil, fmt.Errorf("pdf: OCR needs poppler-utils and tesseract-ocr (scripts/deps.sh): %w", err)
		}
	}
	if err := checkLanguages(ctx, cfg.Tesseract, cfg.Languages); err != nil {
		return nil, err
	}
	box := &sandbox{onFallback: func(err error) {
		logger.Warn("user namespaces are not available: the OCR child runs WITHOUT network isolation (docs/SECURITY.md)",
			"component", "pdf", "error", err)
	}}
	return &OCR{checker: c, cfg: cfg, box: box}, nil
}

// checkLanguages asks tesseract for its language data.
func checkLanguages(ctx context.Context, tesseract, langs string) error {
	out, err := exec.CommandContext(ctx, tesseract, "--list-langs").Output()
	if err != nil {
		return fmt.Errorf("pdf: tesseract --list-langs: %w", err)
	}
	have := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		have[l] = true
	}
	for _, l := range strings.Split(langs, "+") {
		if !have[l] {
			return fmt.Errorf("pdf: tesseract has no language data %q (Debian: apt-get install tesseract-ocr-%s)", l, l)
		}
	}
	return nil
}

// Config is the configuration in use, tools resolved.
func (o *OCR) Config() OCRConfig { return o.cfg }

const (
	ocrMode   = "ocr"
	ocrEnv    = "SOSTENUTO_PDF_CHILD_OCR"
	chooseEnv = "SOSTENUTO_PDF_CHILD_OCR_CHOOSE" // "1": ask the parent for the language data
)

// Extract reads each page of the PDF at path: its text layer, or OCR for
// a scanned page, in the sandboxed child, with every configured language.
// progress (may be nil) hears of the pages read by OCR. Errors wrap
// ErrUnreadable, ErrTooLarge or ErrTimeout (its own deadlines only: when ctx
// ends first, the error wraps its cause and says nothing of the PDF); the
// child, its tools and their files are
// gone when it returns.
func (o *OCR) Extract(ctx context.Context, path string, progress Progress) (Extraction, error) {
	return o.ExtractChoosing(ctx, path, progress, nil)
}

// ExtractChoosing is Extract with the language data of the scanned pages
// chosen per document by choose (nil: every configured language): asked
// first with the born-digital pages' text, when there is some, and if
// unsure then again after the first scanned page, read with every
// configured language. Each OCR'd Page says which data read it.
func (o *OCR) ExtractChoosing(ctx context.Context, path string, progress Progress, choose LanguageChooser) (Extraction, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(parent, o.cfg.DocTimeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "sostenuto-ocr-")
	if err != nil {
		return Extraction{}, fmt.Errorf("pdf: OCR work directory: %w", err)
	}
	defer os.RemoveAll(dir)
	r, w, err := os.Pipe()
	if err != nil {
		return Extraction{}, fmt.Errorf("pdf: pipe: %w", err)
	}
	defer r.Close()
	inR, inW, err := os.Pipe()
	if err != nil {
		w.Close()
		return Extraction{}, fmt.Errorf("pdf: pipe: %w", err)
	}
	defer inW.Close()
	var errb bytes.Buffer
	cmd, isolated, err := o.box.start(func() *exec.Cmd { return o.command(ctx, path, dir, inR, w, &errb, choose != nil) })
	w.Close()
	inR.Close()
	if err != nil {
		return Extraction{}, fmt.Errorf("pdf: start the OCR child: %w", err)
	}
	ex, readErr := readChild(r, inW, progress, o.allowed(choose))
	r.Close() // a child still writing gets EPIPE, not a stall
	inW.Close()
	waitErr := cmd.Wait()
	ex.Isolated = isolated
	switch {
	case parent.Err() != nil:
		return Extraction{}, stopped("OCR", parent)
	case ctx.Err() != nil:
		return Extraction{}, fmt.Errorf("%w: the document took longer than %s", ErrTimeout, o.cfg.DocTimeout)
	case readErr != nil:
		return Extraction{}, readErr
	case waitErr != nil:
		return Extraction{}, fmt.Errorf("%w: the reader failed (%v)", ErrUnreadable, waitErr)
	}
	return ex, nil
}

// allowed wraps choose so that its answer names only configured language
// data (checked installed by NewOCR), else "".
func (o *OCR) allowed(choose LanguageChooser) LanguageChooser {
	return func(text string) string {
		if choose == nil {
			return ""
		}
		ans := choose(text)
		if ans == "" {
			return ""
		}
		have := strings.Split(o.cfg.Languages, "+")
		for _, l := range strings.Split(ans, "+") {
			if !slices.Contains(have, l) {
				return ""
			}
		}
		return ans
	}
}

func (o *OCR) command(ctx context.Context, path, dir string, stdin, stdout *os.File, stderr *bytes.Buffer, choose bool) *exec.Cmd {
	cfg, _ := json.Marshal(o.cfg) //nolint:errchkjson // plain fields
	l := o.checker.Limits
	cmd := exec.CommandContext(ctx, o.checker.Exe, ocrMode, path, dir)
	cmd.Env = []string{childEnv + "=1", ocrEnv + "=" + string(cfg),
		memEnv + "=" + strconv.FormatInt(l.MemoryBytes, 10),
		cpuEnv + "=" + strconv.Itoa(int(o.cfg.DocTimeout.Seconds())),
		pagesEnv + "=" + strconv.Itoa(l.MaxPages),
	}
	if choose {
		cmd.Env = append(cmd.Env, chooseEnv+"=1")
	}
	cmd.Dir = filepath.Dir(dir)
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	cmd.Stderr = &limitedWriter{w: stderr, n: 4096}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// childLine is one line the OCR child writes: a page, progress, the end,
// why it stopped, or a question: which language data suit this text (the
// parent answers with a languageAnswer line on the child's stdin).
type childLine struct {
	Page     *Page         `json:"page,omitempty"`
	Choose   *string       `json:"choose,omitempty"`
	Progress *[2]int       `json:"progress,omitempty"` // done, total
	Done     bool          `json:"done,omitempty"`
	Fail     *childFailure `json:"fail,omitempty"`
}

// languageAnswer is the parent's answer to a childLine's Choose.
type languageAnswer struct {
	Languages string `json:"languages"` // "": every configured language
}

type childFailure struct {
	Code    string `json:"code"` // too_large, timeout, unreadable
	Message string `json:"message"`
}

func (f *childFailure) err() error {
	switch f.Code {
	case "too_large":
		return fmt.Errorf("%w: %s", ErrTooLarge, f.Message)
	case "timeout":
		return fmt.Errorf("%w: %s", ErrTimeout, f.Message)
	}
	return fmt.Errorf("%w: %s", ErrUnreadable, f.Message)
}

// maxLine bounds one line of the child's output (a page's text).
const maxLine = 16 << 20

// readChild reads the child's lines until the end or a failure, answering
// its questions on answers with choose.
func readChild(r *os.File, answers io.Writer, progress Progress, choose LanguageChooser) (Extraction, error) {
	var ex Extraction
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var l childLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return Extraction{}, fmt.Errorf("%w: the reader's output is garbled", ErrUnreadable)
		}
		switch {
		case l.Fail != nil:
			return Extraction{}, l.Fail.err()
		case l.Done:
			return ex, nil
		case l.Page != nil:
			ex.Pages = append(ex.Pages, *l.Page)
		case l.Choose != nil:
			ans, _ := json.Marshal(languageAnswer{Languages: choose(*l.Choose)}) //nolint:errchkjson // a string
			answers.Write(append(ans, '\n'))                                     //nolint:errcheck // a child gone early reads EOF

		case l.Progress != nil && progress != nil:
			progress(l.Progress[0], l.Progress[1])
		}
	}
	return Extraction{}, fmt.Errorf("%w: the reader stopped early (killed by its limits?)", ErrUnreadable)
}

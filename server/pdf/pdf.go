// Package pdf reads untrusted PDFs: page count and per-page text through
// github.com/ledongthuc/pdf. Parsing runs in a child process with memory,
// CPU and wall-clock limits, because Go cannot recover from an
// out-of-memory or a stack overflow inside a parser: a hostile PDF may kill
// the child, never the node.
package pdf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	lpdf "github.com/ledongthuc/pdf"
)

// ErrUnreadable marks a PDF the parser could not read (or that exceeded
// the child's limits); its message says why.
var ErrUnreadable = errors.New("unreadable PDF")

// Result is what a check finds.
type Result struct {
	Pages int      `json:"pages"`
	Text  []string `json:"text,omitempty"` // per page, when asked for
	Error string   `json:"error,omitempty"`
}

// Limits bound the child process.
type Limits struct {
	MemoryBytes int64         // data segment, heap included (RLIMIT_DATA)
	CPU         time.Duration // CPU time (RLIMIT_CPU)
	Wall        time.Duration // wall clock, enforced by the parent
	MaxPages    int           // refuse documents with more pages
}

// DefaultLimits suit sheet music and method books.
var DefaultLimits = Limits{MemoryBytes: 512 << 20, CPU: 20 * time.Second, Wall: 30 * time.Second, MaxPages: 5000}

// Checker runs the child. Exe is the binary that calls MaybeChild first
// thing in main (the node itself; in tests, the test binary from TestMain).
type Checker struct {
	Exe    string
	Limits Limits
}

// NewChecker returns a checker that re-executes the running binary.
func NewChecker(l Limits) (*Checker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("pdf: find own binary: %w", err)
	}
	return &Checker{Exe: exe, Limits: l}, nil
}

const (
	childEnv = "SOSTENUTO_PDF_CHILD"
	memEnv   = "SOSTENUTO_PDF_CHILD_MEM"
	cpuEnv   = "SOSTENUTO_PDF_CHILD_CPU"
	pagesEnv = "SOSTENUTO_PDF_CHILD_PAGES"
)

// Inspect reads the page count of the PDF at path (and, with text, each
// page's text) in a limited child process.
func (c *Checker) Inspect(ctx context.Context, path string, text bool) (Result, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(parent, c.Limits.Wall)
	defer cancel()
	mode := "pages"
	if text {
		mode = "text"
	}
	cmd := exec.CommandContext(ctx, c.Exe, mode, path)
	cmd.Env = []string{childEnv + "=1",
		memEnv + "=" + strconv.FormatInt(c.Limits.MemoryBytes, 10),
		cpuEnv + "=" + strconv.Itoa(int(c.Limits.CPU.Seconds())),
		pagesEnv + "=" + strconv.Itoa(c.Limits.MaxPages),
	}
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &limitedWriter{w: &errb, n: 4096}
	err := cmd.Run()
	if parent.Err() != nil {
		return Result{}, stopped("inspect", parent)
	}
	if ctx.Err() != nil {
		return Result{}, fmt.Errorf("%w: took longer than %s", ErrUnreadable, c.Limits.Wall)
	}
	var res Result
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil || err != nil {
		return Result{}, fmt.Errorf("%w: the parser failed (%v)", ErrUnreadable, firstNonNil(err, jerr))
	}
	if res.Error != "" {
		return Result{}, fmt.Errorf("%w: %s", ErrUnreadable, res.Error)
	}
	return res, nil
}

// stopped is the error of work whose caller's context ended (a shutdown,
// a client gone, the caller's own deadline) before its own wall clock: the
// cancellation, not a verdict on the PDF, so that the caller can retry.
func stopped(op string, parent context.Context) error {
	return fmt.Errorf("pdf: %s: stopped by the caller: %w", op, context.Cause(parent))
}

func firstNonNil(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return len(p), nil
	}
	k := min(len(p), l.n)
	l.n -= k
	l.w.Write(p[:k]) //nolint:errcheck // a bounded diagnostics buffer
	return len(p), nil
}

// MaybeChild runs the child and exits when this process was started as one;
// otherwise it returns at once. Call it first thing in main (and TestMain).
func MaybeChild() {
	if os.Getenv(childEnv) != "1" {
		return
	}
	os.Exit(child(os.Args[1:], os.Stdout))
}

func child(args []string, stdout io.Writer) int {
	mem, _ := strconv.ParseInt(os.Getenv(memEnv), 10, 64)
	cpu, _ := strconv.ParseUint(os.Getenv(cpuEnv), 10, 64)
	maxPages, _ := strconv.Atoi(os.Getenv(pagesEnv))
	if mem > 0 && !raceBuild {
		syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: uint64(mem), Max: uint64(mem)}) //nolint:errcheck // best effort; the wall clock still bounds us
		debug.SetMemoryLimit(mem / 2)
	}
	if cpu > 0 {
		syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: cpu, Max: cpu + 1}) //nolint:errcheck // as above
	}
	debug.SetMaxStack(64 << 20)
	if len(args) > 0 && args[0] == "render" {
		return renderChild(args[1:], stdout, os.Stderr)
	}
	if len(args) > 0 && args[0] == ocrMode {
		return ocrChild(args[1:], stdout)
	}
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: pages|text PATH")
		return 2
	}
	res := inspect(args[1], args[0] == "text", maxPages)
	json.NewEncoder(stdout).Encode(res) //nolint:errcheck // the parent sees a decode error
	return 0
}

// inspect parses in this process; only the child calls it.
func inspect(path string, text bool, maxPages int) (res Result) {
	defer func() {
		if r := recover(); r != nil {
			res = Result{Error: fmt.Sprintf("malformed PDF: %v", r)}
		}
	}()
	f, r, err := lpdf.Open(path)
	if err != nil {
		return Result{Error: "malformed PDF: " + err.Error()}
	}
	defer f.Close()
	n := r.NumPage()
	if n < 1 {
		return Result{Error: "the PDF has no pages"}
	}
	if maxPages > 0 && n > maxPages {
		return Result{Error: fmt.Sprintf("the PDF has %d pages; at most %d are accepted", n, maxPages)}
	}
	res.Pages = n
	if !text {
		return res
	}
	budget := int64(MaxContentBytes)
	for i := 1; i <= n; i++ {
		p := r.Page(i)
		// Content streams are inflated once here, counted, before the
		// parser lays them out: a decompression bomb stops at the budget
		// instead of costing seconds of CPU.
		if budget -= contentSize(p, budget); budget < 0 {
			return Result{Error: fmt.Sprintf("the PDF's page contents expand past %d MiB (at page %d)", MaxContentBytes>>20, i)}
		}
		res.Text = append(res.Text, pageText(p))
	}
	return res
}

// MaxContentBytes bounds the inflated page content streams of one PDF whose
// text is read (method books hold a few MiB; 64 MiB is far above).
const MaxContentBytes = 64 << 20

// contentSize is the inflated size of a page's content streams, counting
// at most limit+1 bytes.
func contentSize(p lpdf.Page, limit int64) (total int64) {
	defer func() {
		if recover() != nil {
			total = 0 // unreadable streams are the parser's to report
		}
	}()
	read := func(v lpdf.Value) {
		if v.Kind() != lpdf.Stream || total > limit {
			return
		}
		rc := v.Reader()
		defer rc.Close()
		n, _ := io.Copy(io.Discard, io.LimitReader(rc, limit-total+1))
		total += n
	}
	c := p.V.Key("Contents")
	switch c.Kind() {
	case lpdf.Stream:
		read(c)
	case lpdf.Array:
		for i := 0; i < c.Len(); i++ {
			read(c.Index(i))
		}
	}
	return total
}

// pageText lays a page's glyphs out as text: a new line when the baseline
// moves, a space when a gap opens wider than a fifth of the font size.
// (The parser's own plain-text walk ignores line moves, gluing lines.)
func pageText(p lpdf.Page) (text string) {
	if p.V.IsNull() {
		return ""
	}
	defer func() {
		if recover() != nil {
			text = ""
		}
	}()
	var b strings.Builder
	var prev *lpdf.Text
	for _, t := range p.Content().Text {
		if prev != nil {
			size := max(prev.FontSize, 1)
			switch {
			case math.Abs(t.Y-prev.Y) > size*0.5:
				b.WriteByte('\n')
			case t.X-(prev.X+prev.W) > size*0.2:
				b.WriteByte(' ')
			}
		}
		b.WriteString(t.S)
		tt := t
		prev = &tt
	}
	return b.String()
}

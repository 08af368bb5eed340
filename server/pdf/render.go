package pdf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Page images. A page is rendered to PNG by poppler-utils' pdftoppm, run
// by the limited child process (see MaybeChild) as a child of its own:
// the node never links a PDF renderer and never runs one outside the
// child's limits. The child first asks pdfinfo for the page's size, so
// that the image has the requested width and a bounded height.

// Bounds of a page image.
const (
	MinImageWidth = 64
	MaxImageWidth = 2048
	// MaxImageSide bounds the other side of an image: a page many times
	// taller than wide is scaled down to fit (at 2048 x 8192 pixels,
	// pdftoppm holds some 50 MB of pixels).
	MaxImageSide = 8192
	// MaxImageBytes bounds the PNG the child may send back.
	MaxImageBytes = 32 << 20
)

// ErrNoPage marks a page number past the end of the document.
var ErrNoPage = errors.New("pdf: no such page")

// ErrTooSlow marks a render that ran out of wall-clock time; it comes
// wrapped together with ErrUnreadable.
var ErrTooSlow = errors.New("pdf: rendering took too long")

// Exit codes of the render child, beyond 0 (the PNG is on stdout).
const (
	exitRenderFailed = 4
	exitNoPage       = 3
)

// wallEnv carries the child's own deadline for the tools it runs, a little
// shorter than the parent's, so that it can say which step was too slow.
const wallEnv = "SOSTENUTO_PDF_CHILD_WALL_MS"

// Render draws page (1-based) of the PDF at path as a PNG width pixels
// wide, in the limited child, within the checker's wall clock. Errors:
// ErrNoPage past the last page; ErrUnreadable (with the reason, and
// ErrTooSlow when its own wall clock ran out) when the page cannot be
// drawn; the context's error when ctx ended first (no verdict on the page).
func (c *Checker) Render(ctx context.Context, path string, page, width int) ([]byte, error) {
	if page < 1 || width < MinImageWidth || width > MaxImageWidth {
		return nil, fmt.Errorf("pdf: render page %d at width %d: out of range", page, width)
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(parent, c.Limits.Wall)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Exe, "render", path, strconv.Itoa(page), strconv.Itoa(width))
	cmd.Env = append(c.childEnv(), wallEnv+"="+strconv.FormatInt((c.Limits.Wall*9/10).Milliseconds(), 10))
	out := &capWriter{max: MaxImageBytes}
	var errb bytes.Buffer
	cmd.Stdout = out
	cmd.Stderr = &limitedWriter{w: &errb, n: 4096}
	err := cmd.Run()
	switch {
	case parent.Err() != nil:
		return nil, stopped("render", parent)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%w: %w: longer than %s", ErrUnreadable, ErrTooSlow, c.Limits.Wall)
	case out.over:
		return nil, fmt.Errorf("%w: the image is larger than %d MiB", ErrUnreadable, MaxImageBytes>>20)
	case err == nil:
		return out.buf.Bytes(), nil
	}
	return nil, childError(err, errb.String())
}

// childError translates the render child's exit status and message.
func childError(err error, stderr string) error {
	msg := strings.TrimSpace(stderr)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case exitNoPage:
			return fmt.Errorf("%w: %s", ErrNoPage, msg)
		case exitRenderFailed:
			if strings.Contains(msg, errTooSlowText) {
				return fmt.Errorf("%w: %w: %s", ErrUnreadable, ErrTooSlow, msg)
			}
			return fmt.Errorf("%w: %s", ErrUnreadable, msg)
		}
	}
	return fmt.Errorf("%w: the renderer failed (%v)", ErrUnreadable, err)
}

// childEnv is the whole environment of a child: its limits, nothing else.
func (c *Checker) childEnv() []string {
	return []string{childEnv + "=1",
		memEnv + "=" + strconv.FormatInt(c.Limits.MemoryBytes, 10),
		cpuEnv + "=" + strconv.Itoa(int(c.Limits.CPU.Seconds())),
		pagesEnv + "=" + strconv.Itoa(c.Limits.MaxPages),
	}
}

// capWriter keeps up to max bytes and notes whether more came.
type capWriter struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		w.over = true
		return 0, errors.New("pdf: output over the limit")
	}
	return w.buf.Write(p)
}

// renderWall is the child's deadline for its tools.
func renderWall(env string) time.Duration {
	ms, err := strconv.ParseInt(env, 10, 64)
	if err != nil || ms <= 0 {
		return 20 * time.Second
	}
	return time.Duration(ms) * time.Millisecond
}

// toolDirs are where poppler-utils installs; the child has no PATH.
var toolDirs = []string{"/usr/bin", "/usr/local/bin", "/bin"}

// toolPath finds a poppler tool.
func toolPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range toolDirs {
		if fi, err := os.Stat(filepath.Join(d, name)); err == nil && fi.Mode()&0o111 != 0 {
			return filepath.Join(d, name), nil
		}
	}
	return "", fmt.Errorf("%s is not installed (Debian: poppler-utils)", name)
}

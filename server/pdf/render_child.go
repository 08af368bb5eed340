package pdf

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// errTooSlowText is how the child says its tools ran out of time.
const errTooSlowText = "took too long"

// renderChild runs in the child: render PATH PAGE WIDTH writes the PNG to
// stdout, or a reason to stderr with exitNoPage or exitRenderFailed.
func renderChild(args []string, stdout, stderr io.Writer) int {
	if len(args) != 3 {
		fmt.Fprintln(stderr, "usage: render PATH PAGE WIDTH")
		return 2
	}
	page, err1 := strconv.Atoi(args[1])
	width, err2 := strconv.Atoi(args[2])
	if err1 != nil || err2 != nil || page < 1 || width < MinImageWidth || width > MaxImageWidth {
		fmt.Fprintln(stderr, "bad page or width")
		return 2
	}
	// The tools write only to their pipes: no file of any size.
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{}) //nolint:errcheck // best effort, like the other limits
	ctx, cancel := context.WithTimeout(context.Background(), renderWall(os.Getenv(wallEnv)))
	defer cancel()
	png, err := renderPage(ctx, args[0], page, width)
	if errors.Is(err, ErrNoPage) {
		fmt.Fprintln(stderr, err.Error())
		return exitNoPage
	}
	if err != nil {
		fmt.Fprintln(stderr, err.Error())
		return exitRenderFailed
	}
	if _, err := stdout.Write(png); err != nil {
		return exitRenderFailed
	}
	return 0
}

// renderPage asks pdfinfo for the page's size, then pdftoppm for the PNG.
func renderPage(ctx context.Context, path string, page, width int) ([]byte, error) {
	w, h, turned, err := pageSize(ctx, path, page)
	if err != nil {
		return nil, err
	}
	iw, ih := imageSize(w, h, width)
	if turned { // pdftoppm scales the page before it turns it
		iw, ih = ih, iw
	}
	p := strconv.Itoa(page)
	png, err := runTool(ctx, MaxImageBytes, "pdftoppm", "-png", "-cropbox", "-f", p, "-l", p, "-singlefile",
		"-scale-to-x", strconv.Itoa(iw), "-scale-to-y", strconv.Itoa(ih), path)
	if err != nil {
		return nil, fmt.Errorf("page %d could not be drawn: %w", page, err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		return nil, fmt.Errorf("page %d could not be drawn: the renderer wrote no image", page)
	}
	return png, nil
}

var (
	pagesLine = regexp.MustCompile(`(?m)^Pages:\s+(\d+)\s*$`)
	sizeLine  = regexp.MustCompile(`(?m)^Page\s+(\d+) size:\s+([0-9.eE+-]+) x ([0-9.eE+-]+) pts`)
	rotLine   = regexp.MustCompile(`(?m)^Page\s+(\d+) rot:\s+(\d+)`)
)

// pageSize is the page's size in points as shown (crop box, turned by a
// quarter when turned), from pdfinfo; ErrNoPage past the last page.
func pageSize(ctx context.Context, path string, page int) (w, h float64, turned bool, err error) {
	p := strconv.Itoa(page)
	out, err := runTool(ctx, 64<<10, "pdfinfo", "-f", p, "-l", p, path)
	if err != nil && strings.Contains(err.Error(), "Wrong page range") {
		return 0, 0, false, fmt.Errorf("%w: the PDF has fewer than %d pages", ErrNoPage, page)
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("the PDF could not be read: %w", err)
	}
	m := pagesLine.FindSubmatch(out)
	if m == nil {
		return 0, 0, false, errors.New("the PDF could not be read: no page count")
	}
	if n, _ := strconv.Atoi(string(m[1])); page > n {
		return 0, 0, false, fmt.Errorf("%w: the PDF has %d pages", ErrNoPage, n)
	}
	s := sizeLine.FindSubmatch(out)
	if s == nil {
		return 0, 0, false, fmt.Errorf("the size of page %d could not be read", page)
	}
	w, _ = strconv.ParseFloat(string(s[2]), 64)
	h, _ = strconv.ParseFloat(string(s[3]), 64)
	if r := rotLine.FindSubmatch(out); r != nil {
		if rot, _ := strconv.Atoi(string(r[2])); rot%180 == 90 {
			w, h, turned = h, w, true
		}
	}
	if !(w > 0 && h > 0) || math.IsInf(w, 0) || math.IsInf(h, 0) {
		return 0, 0, false, fmt.Errorf("page %d has no area", page)
	}
	return w, h, turned, nil
}

// imageSize scales a w x h page to width pixels, keeping its shape; a page
// whose height would pass MaxImageSide is fitted to that height instead.
func imageSize(w, h float64, width int) (int, int) {
	ih := math.Round(float64(width) * h / w)
	if ih <= MaxImageSide {
		return width, max(1, int(ih))
	}
	return max(1, int(math.Round(MaxImageSide*w/h))), MaxImageSide
}

// runTool runs a poppler tool in the sandbox and returns its stdout (at
// most limit bytes); its error carries the first line of its stderr.
func runTool(ctx context.Context, limit int, name string, args ...string) ([]byte, error) {
	out := &capWriter{max: limit}
	var errb bytes.Buffer
	err := runSandboxed(ctx, out, &limitedWriter{w: &errb, n: 2048}, name, args...)
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%s %s", name, errTooSlowText)
	case out.over:
		return nil, fmt.Errorf("%s wrote more than %d bytes", name, limit)
	case err != nil:
		return nil, fmt.Errorf("%s failed: %s", name, firstLine(errb.Bytes(), err))
	}
	return out.buf.Bytes(), nil
}

// firstLine is the first error line of a tool's stderr (poppler's
// warnings come first), else its first line, else err.
func firstLine(stderr []byte, err error) string {
	var first string
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	for sc.Scan() {
		line := string(bytes.TrimSpace(sc.Bytes()))
		if strings.Contains(line, "Error") {
			return line
		}
		if first == "" {
			first = line
		}
	}
	if first != "" {
		return first
	}
	return err.Error()
}

package pdf

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ocrPage renders one page grey at its resolution (pdftoppm), straightens
// it (deskew), and reads it with the language data langs (tesseract, TSV
// with per-word confidence), within the page's wall-clock bound.
func (r *reader) ocrPage(ctx context.Context, sp scanPlan, langs string) (Page, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PageTimeout)
	defer cancel()
	root := filepath.Join(r.dir, "page")
	img := root + ".pgm"
	defer os.Remove(img)
	lim := toolLimits{cpuSeconds: uint64(max(r.cfg.PageTimeout.Seconds(), 1)), dataBytes: uint64(r.cfg.ToolMemory),
		fileBytes: uint64(r.cfg.MaxPixels + 1<<20)}
	n, dpi := strconv.Itoa(sp.page), strconv.Itoa(sp.dpi)
	if _, err := r.tool(ctx, lim, r.cfg.Pdftoppm, "-r", dpi, "-gray", "-f", n, "-l", n, "-singlefile", r.path, root); err != nil {
		return Page{}, r.toolFailure(ctx, sp.page, "render", err)
	}
	if err := deskewFile(img, r.cfg.MaxPixels); err != nil {
		return Page{}, fmt.Errorf("page %d: %w", sp.page, err)
	}
	tsv, err := r.tool(ctx, lim, r.cfg.Tesseract, img, "stdout", "-l", langs, "--dpi", dpi, "--psm", "3", "tsv")
	if err != nil {
		return Page{}, r.toolFailure(ctx, sp.page, "read", err)
	}
	page := readTSV(tsv, r.cfg.MinWordConfidence)
	page.Number, page.OCR, page.Languages = sp.page, true, langs
	page.LowConfidence = page.Words+page.Dropped > 0 && page.Confidence < r.cfg.LowPageConfidence
	return page, nil
}

func (r *reader) toolFailure(ctx context.Context, page int, step string, err error) error {
	if ctx.Err() != nil {
		return &childFailure{Code: "timeout", Message: fmt.Sprintf("page %d took longer than %s to %s", page, r.cfg.PageTimeout, step)}
	}
	return fmt.Errorf("page %d could not be %s: %w", page, map[string]string{"render": "rendered", "read": "read"}[step], err)
}

// tool runs one tool with an empty environment (but for one OpenMP
// thread), in the work directory, under lim, killed with the child.
func (r *reader) tool(ctx context.Context, lim toolLimits, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"OMP_THREAD_LIMIT=1"}
	cmd.Dir = r.dir
	var out bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &out, n: maxLine}
	cmd.Stderr = io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := lim.apply(cmd.Process.Pid); err != nil {
		cmd.Process.Kill() //nolint:errcheck // it must not run unlimited
		cmd.Wait()         //nolint:errcheck // reaped
		return nil, fmt.Errorf("limit %s: %w", filepath.Base(name), err)
	}
	err := cmd.Wait()
	return out.Bytes(), err
}

// readTSV turns Tesseract's TSV into a page's text: words in reading
// order, a line break per line, a blank line between blocks and
// paragraphs. A word is kept when Tesseract is at least minConf sure of it
// and it holds a letter or a digit: bar lines, stems and beams read as
// "|", "—" or "_" go, and so does unsure noise. Confidence is the mean
// over every word holding a letter or digit, kept or not.
func readTSV(tsv []byte, minConf float64) Page {
	var (
		b              strings.Builder
		page           Page
		sum            float64
		counted        int
		lastBlock, key string
	)
	for _, row := range strings.Split(string(tsv), "\n") {
		f := strings.SplitN(row, "\t", 12)
		if len(f) < 12 || f[0] != "5" {
			continue
		}
		word := strings.TrimSpace(f[11])
		conf, err := strconv.ParseFloat(f[10], 64)
		if word == "" || err != nil || conf < 0 {
			continue
		}
		letters := alnum(word) > 0
		if letters {
			sum += conf
			counted++
		}
		if !letters || conf < minConf {
			page.Dropped++
			continue
		}
		page.Words++
		block, line := f[2]+"."+f[3], f[2]+"."+f[3]+"."+f[4]
		switch {
		case b.Len() == 0:
		case block != lastBlock:
			b.WriteString("\n\n")
		case line != key:
			b.WriteByte('\n')
		default:
			b.WriteByte(' ')
		}
		b.WriteString(word)
		lastBlock, key = block, line
	}
	if counted > 0 {
		page.Confidence = sum / float64(counted)
	}
	page.Text = b.String()
	return page
}

package pdf

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	lpdf "github.com/ledongthuc/pdf"
)

// ocrChild is the child's OCR mode: args are the PDF and a work directory
// (made and removed by the parent). It writes childLines to stdout.
func ocrChild(args []string, stdout io.Writer) int {
	enc := json.NewEncoder(stdout)
	var cfg OCRConfig
	if len(args) != 2 || json.Unmarshal([]byte(os.Getenv(ocrEnv)), &cfg) != nil {
		fmt.Fprintln(os.Stderr, "usage: ocr PATH DIR, with the configuration in "+ocrEnv)
		return 2
	}
	maxPages, _ := strconv.Atoi(os.Getenv(pagesEnv))
	r := &reader{cfg: cfg, path: args[0], dir: args[1], maxPages: maxPages, out: enc,
		in: bufio.NewReader(os.Stdin), choose: os.Getenv(chooseEnv) == "1"}
	if err := r.run(context.Background()); err != nil {
		var f *childFailure
		if !errors.As(err, &f) {
			f = &childFailure{Code: "unreadable", Message: err.Error()}
		}
		enc.Encode(childLine{Fail: f}) //nolint:errcheck // the parent sees the stream end
		return 0
	}
	enc.Encode(childLine{Done: true}) //nolint:errcheck // as above
	return 0
}

func (f *childFailure) Error() string { return f.Code + ": " + f.Message }

func tooLarge(format string, a ...any) error {
	return &childFailure{Code: "too_large", Message: fmt.Sprintf(format, a...)}
}

// reader is one document's reading in the child.
type reader struct {
	cfg      OCRConfig
	path     string
	dir      string
	maxPages int
	out      *json.Encoder
	in       *bufio.Reader // the parent's answers
	choose   bool          // ask the parent for the language data
}

// scanPlan is a page to read by OCR and the resolution to render it at.
type scanPlan struct {
	page int
	dpi  int
}

// run reads the text layer, plans the scanned pages, then writes every
// page in order, reading the scanned ones by OCR.
func (r *reader) run(ctx context.Context) error {
	if err := r.checkPageCount(); err != nil {
		return err
	}
	res := inspect(r.path, true, 0)
	if res.Error != "" {
		return errors.New(res.Error)
	}
	plan, err := r.plan(res.Text)
	if err != nil {
		return err
	}
	if err := r.out.Encode(childLine{Progress: &[2]int{0, len(plan)}}); err != nil {
		return err
	}
	langs := r.startChoice(res.Text, plan)
	done := 0
	for i, text := range res.Text {
		page := Page{Number: i + 1, Text: text}
		if done < len(plan) && plan[done].page == i+1 {
			if page, err = r.ocrPage(ctx, plan[done], langs.data); err != nil {
				return err
			}
			langs.after(page.Text)
			done++
		}
		if err := r.out.Encode(childLine{Page: &page}); err != nil {
			return err
		}
		if page.OCR {
			if err := r.out.Encode(childLine{Progress: &[2]int{done, len(plan)}}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *reader) checkPageCount() (err error) {
	defer func() {
		if rec := recover(); rec != nil {
			err = fmt.Errorf("malformed PDF: %v", rec)
		}
	}()
	f, pr, err := lpdf.Open(r.path)
	if err != nil {
		return fmt.Errorf("malformed PDF: %w", err)
	}
	defer f.Close()
	if n := pr.NumPage(); r.maxPages > 0 && n > r.maxPages {
		return tooLarge("the PDF has %d pages; at most %d are accepted", n, r.maxPages)
	}
	return nil
}

// plan picks the scanned pages (too little text, a large image) and the
// resolution of each, refusing the document when there are too many or
// one is too large to render.
func (r *reader) plan(texts []string) (plan []scanPlan, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			plan, err = nil, fmt.Errorf("malformed PDF: %v", rec)
		}
	}()
	f, pr, err := lpdf.Open(r.path)
	if err != nil {
		return nil, fmt.Errorf("malformed PDF: %w", err)
	}
	defer f.Close()
	for i, text := range texts {
		p := pr.Page(i + 1)
		if alnum(text) >= r.cfg.MinTextChars || largestImage(p.Resources(), 2) < r.cfg.MinImagePixels {
			continue
		}
		if len(plan) == r.cfg.MaxPages {
			return nil, tooLarge("more than %d pages would need OCR", r.cfg.MaxPages)
		}
		dpi, err := r.resolution(p, i+1)
		if err != nil {
			return nil, err
		}
		plan = append(plan, scanPlan{page: i + 1, dpi: dpi})
	}
	return plan, nil
}

// resolution is the DPI at which a page fits MaxPixels, at most DPI.
func (r *reader) resolution(p lpdf.Page, n int) (int, error) {
	box := inherited(p.V, "MediaBox")
	w := math.Abs(box.Index(2).Float64()-box.Index(0).Float64()) / 72
	h := math.Abs(box.Index(3).Float64()-box.Index(1).Float64()) / 72
	if w <= 0 || h <= 0 {
		w, h = 8.27, 11.69 // no usable box: A4, as pdftoppm assumes
	}
	dpi := min(float64(r.cfg.DPI), math.Sqrt(float64(r.cfg.MaxPixels)/(w*h)))
	if dpi < float64(r.cfg.MinDPI) {
		return 0, tooLarge("page %d is %.0f × %.0f inches, too large to read by OCR", n, w, h)
	}
	return int(dpi), nil
}

// inherited looks key up in a page and its ancestors (at most 32: a
// hostile page tree may loop).
func inherited(v lpdf.Value, key string) lpdf.Value {
	for range 32 {
		if v.IsNull() {
			break
		}
		if r := v.Key(key); !r.IsNull() {
			return r
		}
		v = v.Key("Parent")
	}
	return lpdf.Value{}
}

// alnum counts letters and digits.
func alnum(s string) int {
	n := 0
	for _, c := range s {
		if unicode.IsLetter(c) || unicode.IsDigit(c) {
			n++
		}
	}
	return n
}

// largestImage is the pixel count of the largest image XObject in
// resources, looking into form XObjects depth levels deep.
func largestImage(resources lpdf.Value, depth int) int64 {
	xo := resources.Key("XObject")
	var best int64
	for _, name := range xo.Keys() {
		v := xo.Key(name)
		switch v.Key("Subtype").Name() {
		case "Image":
			const side = 1 << 20 // clamped: no overflow from a hostile size
			best = max(best, min(max(v.Key("Width").Int64(), 0), side)*min(max(v.Key("Height").Int64(), 0), side))
		case "Form":
			if depth > 0 {
				best = max(best, largestImage(v.Key("Resources"), depth-1))
			}
		}
	}
	return best
}

// maxChooseText bounds the text sent with a question (the parent samples
// a few thousand characters of it anyway).
const maxChooseText = 64 << 10

// languageChoice is the language data a document's scanned pages are read
// with: every configured language until the parent names the document's
// own.
type languageChoice struct {
	r    *reader
	data string // Tesseract's -l for the next scanned page
	open bool   // the parent may still be asked
	born string // the born-digital pages' text
}

// startChoice asks the parent about the born-digital pages' text, when
// asking is on, some page is scanned, more than one language is
// configured and that text holds some letters.
func (r *reader) startChoice(texts []string, plan []scanPlan) *languageChoice {
	c := &languageChoice{r: r, data: r.cfg.Languages,
		open: r.choose && len(plan) > 0 && strings.Contains(r.cfg.Languages, "+")}
	if !c.open {
		return c
	}
	var b strings.Builder
	for i, t := range texts {
		if !slices.ContainsFunc(plan, func(p scanPlan) bool { return p.page == i+1 }) {
			b.WriteString(t)
			b.WriteByte('\n')
		}
	}
	c.born = b.String()
	if alnum(c.born) >= r.cfg.MinTextChars {
		c.ask(c.born, false)
	}
	return c
}

// after asks the parent once more, with the first scanned page's text,
// when the born-digital text did not decide.
func (c *languageChoice) after(pageText string) {
	if c.open {
		c.ask(c.born+pageText, true)
	}
}

// ask writes the question and reads the answer; an answer, or a last
// question, closes the choice.
func (c *languageChoice) ask(text string, last bool) {
	if len(text) > maxChooseText {
		text = text[:maxChooseText]
		for !utf8.ValidString(text) {
			text = text[:len(text)-1]
		}
	}
	var ans languageAnswer
	if c.r.out.Encode(childLine{Choose: &text}) == nil {
		if line, err := c.r.in.ReadBytes('\n'); err == nil {
			json.Unmarshal(line, &ans) //nolint:errcheck // garbled: no answer
		}
	}
	if ans.Languages != "" {
		c.data, c.open = ans.Languages, false
	} else if last {
		c.open = false
	}
}

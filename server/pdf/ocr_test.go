package pdf

import (
	"context"
	"errors"
	"image"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

const (
	englishScan = "The pianist keeps the wrist relaxed and level while playing.\n" +
		"Practise every scale slowly with a metronome at sixty beats.\n" +
		"The left hand plays the accompaniment softly beneath the melody."
	germanScan = "Der Daumen gleitet unter die Hand, ohne dass sich das\n" +
		"Handgelenk dreht. Üben Sie langsam und gleichmäßig mit\n" +
		"beiden Händen; die Fingersätze für Tonleitern sind wichtig."
)

func newOCR(t *testing.T, cfg OCRConfig) *OCR {
	t.Helper()
	o, err := NewOCR(context.Background(), checker(t), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func mustScan(t *testing.T, text string, angle float64) *image.Gray {
	t.Helper()
	img, err := pdftest.Scan(text, angle)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustMixed(t *testing.T, pages ...pdftest.Page) string {
	t.Helper()
	b, err := pdftest.Mixed(pages)
	if err != nil {
		t.Fatal(err)
	}
	return write(t, b)
}

// words splits text into lower-case words without punctuation.
func words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !(r == 'ä' || r == 'ö' || r == 'ü' || r == 'ß' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
}

// recall is the share of want's words found, in order, in got (longest
// common subsequence over words).
func recall(want, got string) float64 {
	w, g := words(want), words(got)
	prev := make([]int, len(g)+1)
	for i := range w {
		cur := make([]int, len(g)+1)
		for j := range g {
			if w[i] == g[j] {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(cur[j], prev[j+1])
			}
		}
		prev = cur
	}
	return float64(prev[len(g)]) / float64(len(w))
}

// TestExtractMixedDocument reads a PDF of born-digital and scanned pages:
// the text layer of the former as is, the latter by OCR (a crooked one and
// a German one among them), in page order, a blank page empty.
func TestExtractMixedDocument(t *testing.T) {
	o := newOCR(t, DefaultOCR)
	path := mustMixed(t,
		pdftest.Page{Text: "Chapter one: born-digital text about chords and their inversions in every key."},
		pdftest.Page{Image: mustScan(t, englishScan, 0)},
		pdftest.Page{Image: mustScan(t, englishScan, 2.5)},
		pdftest.Page{Image: mustScan(t, germanScan, 0)},
		pdftest.Page{Text: ""},
		pdftest.Page{Image: mustScan(t, englishScan, -3)},
	)
	var progress [][2]int
	ex, err := o.Extract(context.Background(), path, func(done, total int) { progress = append(progress, [2]int{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Pages) != 6 {
		t.Fatalf("%d pages, want 6", len(ex.Pages))
	}
	wantOCR := []bool{false, true, true, true, false, true}
	for i, p := range ex.Pages {
		if p.Number != i+1 || p.OCR != wantOCR[i] {
			t.Errorf("page %d: number %d, ocr %v; want ocr %v", i+1, p.Number, p.OCR, wantOCR[i])
		}
	}
	if !strings.Contains(ex.Pages[0].Text, "born-digital text about chords") || ex.Pages[4].Text != "" {
		t.Errorf("text layer pages: %q, %q", ex.Pages[0].Text, ex.Pages[4].Text)
	}
	for _, c := range []struct {
		page int
		want string
	}{{2, englishScan}, {3, englishScan}, {4, germanScan}, {6, englishScan}} {
		p := ex.Pages[c.page-1]
		if r := recall(c.want, p.Text); r < 0.95 || p.Confidence < 80 || p.LowConfidence {
			t.Errorf("page %d: recall %.2f, confidence %.1f, low %v; text %q", c.page, r, p.Confidence, p.LowConfidence, p.Text)
		}
	}
	for _, w := range []string{"Üben", "gleichmäßig", "Händen"} {
		if !strings.Contains(ex.Pages[3].Text, w) {
			t.Errorf("German page lacks %q: %q", w, ex.Pages[3].Text)
		}
	}
	if want := [][2]int{{0, 4}, {1, 4}, {2, 4}, {3, 4}, {4, 4}}; !slices.Equal(progress, want) {
		t.Errorf("progress %v, want %v", progress, want)
	}
	if ex.OCRPages() != 4 || !ex.Isolated {
		t.Errorf("ocr pages %d, isolated %v", ex.OCRPages(), ex.Isolated)
	}
}

// TestDeskewFindsTheAngle straightens pages turned a few degrees either
// way; a level page stays as it is.
func TestDeskewFindsTheAngle(t *testing.T) {
	for _, angle := range []float64{0, 1, 2.5, -3, 4} {
		img := mustScan(t, englishScan+"\n"+englishScan, angle)
		got := skewAngle(img)
		if math.Abs(math.Abs(got)-math.Abs(angle)) > 0.2 {
			t.Errorf("turned %.1f°: found %.2f°", angle, got)
			continue
		}
		if angle == 0 {
			continue
		}
		if after := skewAngle(rotate(img, got)); math.Abs(after) > 0.2 {
			t.Errorf("turned %.1f°, straightened by %.2f°: still %.2f°", angle, got, after)
		}
	}
}

// TestReadTSVDropsNoise keeps sure words with a letter or digit, and
// reports the mean confidence over every such word.
func TestReadTSVDropsNoise(t *testing.T) {
	tsv := "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n" +
		"5\t1\t1\t1\t1\t1\t0\t0\t1\t1\t96\tPlay\n" +
		"5\t1\t1\t1\t1\t2\t0\t0\t1\t1\t94\tsoftly.\n" +
		"5\t1\t1\t1\t1\t3\t0\t0\t1\t1\t88\t|\n" +
		"5\t1\t1\t1\t2\t1\t0\t0\t1\t1\t20\tgl\n" +
		"5\t1\t1\t1\t2\t2\t0\t0\t1\t1\t95\tBar\n" +
		"5\t1\t1\t1\t2\t3\t0\t0\t1\t1\t95\t \n" +
		"5\t1\t2\t1\t1\t1\t0\t0\t1\t1\t90\t12\n"
	p := readTSV([]byte(tsv), 50)
	if p.Text != "Play softly.\nBar\n\n12" || p.Words != 4 || p.Dropped != 2 {
		t.Errorf("text %q, words %d, dropped %d", p.Text, p.Words, p.Dropped)
	}
	if want := (96.0 + 94 + 20 + 95 + 90) / 5; math.Abs(p.Confidence-want) > 1e-9 {
		t.Errorf("confidence %.2f, want %.2f", p.Confidence, want)
	}
}

func tempEntries(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(os.TempDir(), "sostenuto-ocr-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var _ = errors.Is
var _ = time.Second

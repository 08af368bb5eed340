package pdf

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
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

// TestNotationIsNotText reads a scanned page of staves, notes, stems,
// beams and bar lines: OCR must not invent words from it. Above a staff, a
// caption is still read.
func TestNotationIsNotText(t *testing.T) {
	o := newOCR(t, DefaultOCR)
	bare, err := pdftest.Staff("")
	if err != nil {
		t.Fatal(err)
	}
	captioned, err := pdftest.Staff("Exercise 12: legato thirds in the right hand")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := o.Extract(context.Background(), mustMixed(t, pdftest.Page{Image: bare}, pdftest.Page{Image: captioned}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ex.Pages {
		t.Logf("page %d: ocr %v, words %d, dropped %d, confidence %.1f, text %q", p.Number, p.OCR, p.Words, p.Dropped, p.Confidence, p.Text)
	}
	if p := ex.Pages[0]; !p.OCR || p.Text != "" || p.Words != 0 {
		t.Errorf("notation alone: ocr %v, %d words %q", p.OCR, p.Words, p.Text)
	}
	if p := ex.Pages[1]; p.Text != "Exercise 12: legato thirds in the right hand" {
		t.Errorf("notation with a caption: %q", p.Text)
	}
}

// TestSandboxHasNoNetwork runs a stand-in pdftoppm inside the OCR child
// that tries to reach a listener of this test on loopback and records its
// environment. Run directly, the same script connects (so the test can
// fail); run as the child's tool it must not, and see no environment but
// OMP_THREAD_LIMIT.
func TestSandboxHasNoNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dir := t.TempDir()
	report := filepath.Join(dir, "report")
	script := filepath.Join(dir, "pdftoppm")
	body := fmt.Sprintf("#!/bin/bash\nif exec 3<>/dev/tcp/%s; then echo connected; else echo refused; fi > %s\nenv | grep -v '^_=\\|^PWD=\\|^SHLVL=' | sort >> %s\nexit 1\n",
		strings.Replace(ln.Addr().String(), ":", "/", 1), report, report)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(script).CombinedOutput(); err == nil {
		t.Fatalf("script: %s", out)
	}
	if b, _ := os.ReadFile(report); !strings.HasPrefix(string(b), "connected") {
		t.Fatalf("outside the sandbox the script did not connect: %q", b)
	}
	cfg := DefaultOCR
	cfg.Pdftoppm = script
	o := newOCR(t, cfg)
	_, err = o.Extract(context.Background(), mustMixed(t, pdftest.Page{Image: mustScan(t, "x", 0)}), nil)
	if !errors.Is(err, ErrUnreadable) {
		t.Fatalf("err = %v, want the render to fail", err)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "refused\nOMP_THREAD_LIMIT=1\n" {
		t.Errorf("inside the sandbox the tool reported %q, want no network and no environment", got)
	}
}

// hangingTool writes a stand-in tool that sleeps under a name the test
// can look for among the running processes.
func hangingTool(t *testing.T, marker string) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "tool")
	body := fmt.Sprintf("#!/bin/bash\nexec -a %s sleep 600\n", marker)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// running lists processes whose command line holds s.
func running(t *testing.T, s string) []string {
	t.Helper()
	m, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, f := range m {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), s) {
			out = append(out, f)
		}
	}
	return out
}

// TestExtractHostile feeds what a hostile upload may hold. Each fails with
// its own error (or, a corrupt image, reads as an empty page), leaves no
// process and no file behind, and the reader works after.
func TestExtractHostile(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	marker := fmt.Sprintf("sostenuto-hang-%d", time.Now().UnixNano())
	hang := hangingTool(t, marker)
	tests := []struct {
		name  string
		pdf   []byte
		cfg   func(*OCRConfig)
		want  error // nil: succeeds with every page empty
		limit time.Duration
	}{
		{"huge page", pdftest.ImagePages(1, 200000, 200000), nil, ErrTooLarge, 10 * time.Second},
		{"10,000 pages", pdftest.ImagePages(10000, 595, 842), nil, ErrTooLarge, 20 * time.Second},
		{"more scans than MaxPages", pdftest.ImagePages(501, 595, 842), nil, ErrTooLarge, time.Minute},
		{"corrupt JPEG", pdftest.CorruptImage("/DCTDecode"), nil, nil, 30 * time.Second},
		{"corrupt Flate", pdftest.CorruptImage("/FlateDecode"), nil, nil, 30 * time.Second},
		{"page stalls", pdftest.ImagePages(1, 595, 842), func(c *OCRConfig) { c.Pdftoppm, c.PageTimeout = hang, time.Second }, ErrTimeout, 10 * time.Second},
		{"document stalls", pdftest.ImagePages(1, 595, 842), func(c *OCRConfig) { c.Tesseract, c.DocTimeout = hang, 2*time.Second }, ErrTimeout, 10 * time.Second},
		{"tool over its memory", pdftest.ImagePages(1, 595, 842), func(c *OCRConfig) { c.ToolMemory = 8 << 20 }, ErrUnreadable, 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newOCR(t, DefaultOCR)
			if tc.cfg != nil {
				tc.cfg(&o.cfg) // after NewOCR: it would ask the stand-ins for their languages
			}
			path := write(t, tc.pdf)
			start := time.Now()
			ex, err := o.Extract(context.Background(), path, nil)
			took := time.Since(start)
			switch {
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("err = %v, want %v", err, tc.want)
			case tc.want == nil && err != nil:
				t.Errorf("err = %v", err)
			case tc.want == nil && (len(ex.Pages) != 1 || ex.Pages[0].Text != "" || !ex.Pages[0].OCR):
				t.Errorf("pages %+v, want one empty scanned page", ex.Pages)
			}
			t.Logf("%v after %s", err, took.Round(time.Millisecond))
			if took > tc.limit {
				t.Errorf("took %s, bound %s", took, tc.limit)
			}
			if left, _ := filepath.Glob(filepath.Join(tmp, "sostenuto-ocr-*")); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
			if procs := running(t, marker); len(procs) > 0 {
				t.Errorf("processes left running: %v", procs)
			}
		})
	}
	ex, err := newOCR(t, DefaultOCR).Extract(context.Background(), mustMixed(t, pdftest.Page{Image: mustScan(t, englishScan, 0)}), nil)
	if err != nil || recall(englishScan, ex.Pages[0].Text) < 0.95 {
		t.Errorf("after the hostile inputs: %v, %+v", err, ex.Pages)
	}
}

// TestExtractChoosingAsks checks the language question between the child
// and the parent: asked with the born-digital text first, unsure; again
// with the first scan's text, read with every configured language; the
// answer reads the next scan; an answer naming unconfigured data is
// refused.
func TestExtractChoosingAsks(t *testing.T) {
	o := newOCR(t, DefaultOCR)
	path := mustMixed(t,
		pdftest.Page{Text: "Chapter one: born-digital text about chords and their inversions in every key."},
		pdftest.Page{Image: mustScan(t, englishScan, 0)},
		pdftest.Page{Image: mustScan(t, englishScan, 0)},
	)
	var asked []string
	ex, err := o.ExtractChoosing(context.Background(), path, nil, func(text string) string {
		asked = append(asked, text)
		return map[int]string{2: "eng"}[len(asked)]
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 || !strings.Contains(asked[0], "born-digital") || strings.Contains(asked[0], "metronome") ||
		!strings.Contains(asked[1], "born-digital") || !strings.Contains(asked[1], "metronome") {
		t.Fatalf("asked %q", asked)
	}
	got := []string{ex.Pages[0].Languages, ex.Pages[1].Languages, ex.Pages[2].Languages}
	if want := []string{"", DefaultOCR.Languages, "eng"}; !slices.Equal(got, want) {
		t.Errorf("languages %q, want %q", got, want)
	}
	if r := recall(englishScan, ex.Pages[2].Text); r < 0.95 {
		t.Errorf("page 3 recall %.2f: %q", r, ex.Pages[2].Text)
	}
	allowed := o.allowed(func(string) string { return "ita+xyz" })
	if a := allowed("testo"); a != "" {
		t.Errorf("unconfigured data allowed: %q", a)
	}
}

// A caller cancelled during OCR (a node shutting down) gets its
// cancellation back, not ErrTimeout: the document is to be read again.
func TestExtractCancelled(t *testing.T) {
	marker := fmt.Sprintf("sostenuto-hang-%d", time.Now().UnixNano())
	o := newOCR(t, DefaultOCR)
	o.cfg.Tesseract, o.cfg.DocTimeout = hangingTool(t, marker), time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	start := time.Now()
	_, err := o.Extract(ctx, write(t, pdftest.ImagePages(1, 595, 842)), nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("answered after %v", took)
	}
	time.Sleep(200 * time.Millisecond)
	if procs := running(t, marker); len(procs) > 0 {
		t.Errorf("processes left running: %v", procs)
	}
}

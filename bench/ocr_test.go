package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/pdf"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// ocrTexts are practice advice in each language the OCR reads by default,
// with its diacritics; a page is 24 lines of them.
var ocrTexts = map[string][]string{
	"eng": {"Keep the wrist relaxed and level while the fingers move.", "Practise every scale slowly with a metronome at sixty.",
		"The left hand plays the accompaniment softly beneath the melody.", "Lift the damper pedal exactly when the harmony changes."},
	"deu": {"Der Daumen gleitet unter die Hand, ohne dass sie sich dreht.", "Üben Sie langsam und gleichmäßig mit beiden Händen.",
		"Die Fingersätze für Tonleitern sind für Anfänger wichtig.", "Größere Sprünge übt man zuerst mit geschlossenen Augen."},
	"fra": {"Gardez le poignet souple et détendu pendant les gammes.", "Travaillez lentement, à la noire égale soixante.",
		"La main gauche accompagne très doucement la mélodie.", "Levez la pédale dès que l'harmonie change, même légèrement."},
	"spa": {"Mantén la muñeca relajada mientras los dedos se mueven.", "Practica cada escala despacio con el metrónomo.",
		"¿Está la mano izquierda tocando el acompañamiento suave?", "El pulgar pasa por debajo sin girar la mano ni el brazo."},
	"ita": {"Tieni il polso morbido mentre le dita si muovono.", "Studia ogni scala lentamente, con il metronomo a sessanta.",
		"La mano sinistra accompagna dolcemente la melodia più alta.", "Solleva il pedale quando cambia l'armonia, così è più pulito."},
}

func ocrPageText(lang string) string {
	s := ocrTexts[lang]
	lines := make([]string, 24)
	for i := range lines {
		lines[i] = s[i%len(s)]
	}
	return strings.Join(lines, "\n")
}

// BenchmarkOCRPage reads one scanned A4 page (24 lines, 200 dpi scan,
// rendered at 300 dpi) per operation with one worker, with the page's own
// language and with the default five, straight and turned 2°: pages/s
// and word accuracy against the rendered text.
//
//	go test -run '^$' -bench BenchmarkOCRPage -benchtime 3x ./bench/
func BenchmarkOCRPage(b *testing.B) {
	checker, err := pdf.NewChecker(pdf.DefaultLimits)
	if err != nil {
		b.Fatal(err)
	}
	for _, lang := range []string{"eng", "deu", "fra", "spa", "ita"} {
		for _, langs := range []string{lang, pdf.DefaultOCR.Languages} {
			for _, angle := range []float64{0, 2} {
				name := fmt.Sprintf("page=%s/langs=%s/angle=%g", lang, langs, angle)
				b.Run(name, func(b *testing.B) { benchOCR(b, checker, lang, langs, angle) })
			}
		}
	}
}

func benchOCR(b *testing.B, checker *pdf.Checker, lang, langs string, angle float64) {
	cfg := pdf.DefaultOCR
	cfg.Languages = langs
	o, err := pdf.NewOCR(context.Background(), checker, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	text := ocrPageText(lang)
	img, err := pdftest.Scan(text, angle)
	if err != nil {
		b.Fatal(err)
	}
	body, err := pdftest.Mixed([]pdftest.Page{{Image: img}})
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "scan.pdf")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		b.Fatal(err)
	}
	var acc, conf float64
	var extra int
	cpu0 := childCPU(b)
	start := time.Now()
	for b.Loop() {
		ex, err := o.Extract(context.Background(), path, nil)
		if err != nil || len(ex.Pages) != 1 || !ex.Pages[0].OCR {
			b.Fatalf("%v %+v", err, ex.Pages)
		}
		a, e := pdftest.WordAccuracy(text, ex.Pages[0].Text)
		acc, extra, conf = acc+a, extra+e, conf+ex.Pages[0].Confidence
	}
	n := float64(b.N)
	b.ReportMetric(n/time.Since(start).Seconds(), "pages/s")
	b.ReportMetric((childCPU(b)-cpu0).Seconds()/n, "cpu_s/page")
	b.ReportMetric(100*acc/n, "word_acc_%")
	b.ReportMetric(float64(extra)/n, "extra_words/page")
	b.ReportMetric(conf/n, "mean_conf")
}

// childCPU is the CPU time (user and system) of this process's finished
// children and their waited-for descendants: the OCR child and its tools.
func childCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package ingest

import (
	"strings"
	"unicode"
	"unicode/utf8"

	lingua "github.com/pemistahl/lingua-go"

	"github.com/sostenuto/sostenuto/index/text"
)

// DefaultLanguage is what a document is when its language cannot be told
// (too little text, or none of the supported languages stands out). The
// contract says ISO 639-1, which has no "undetermined", and English is the
// BM25 index's default analysis.
const DefaultLanguage = text.English

// Detection bounds: a document is judged on at most sampleWindows windows
// of sampleRunes characters spread over its text, and one with fewer than
// minLetters letters is DefaultLanguage.
const (
	sampleWindows = 8
	sampleRunes   = 1000
	minLetters    = 40
)

// LanguageDetector tells a document's language, among the languages the
// BM25 index has analyzers for (text.Languages), with lingua-go in its
// low-accuracy mode (trigram models of those languages only: about 7 MiB;
// docs/INGESTION.md "Language" has the figures). Safe for concurrent use.
type LanguageDetector struct {
	det lingua.LanguageDetector
}

// NewLanguageDetector loads the models (about 0.2 s).
func NewLanguageDetector() *LanguageDetector {
	var codes []lingua.IsoCode639_1
	for _, l := range text.Languages() {
		codes = append(codes, lingua.GetIsoCode639_1FromValue(l))
	}
	det := lingua.NewLanguageDetectorBuilder().FromIsoCodes639_1(codes...).
		WithLowAccuracyMode().WithPreloadedLanguageModels().Build()
	return &LanguageDetector{det: det}
}

// Detect returns the ISO 639-1 code of the language most of segs' text is
// in: each sampled window votes with its length, and the language with
// most characters wins (ties: the earlier in text.Languages). Too little
// text, or none detected: DefaultLanguage. A nil detector answers
// DefaultLanguage.
func (d *LanguageDetector) Detect(segs []Segment) string {
	if d == nil {
		return DefaultLanguage
	}
	votes := map[string]int{}
	for _, w := range sampleWindowsOf(segs) {
		if l, ok := d.det.DetectLanguageOf(w); ok {
			votes[strings.ToLower(l.IsoCode639_1().String())] += utf8.RuneCountInString(w)
		}
	}
	best, most := DefaultLanguage, 0
	for _, l := range text.Languages() {
		if votes[l] > most {
			best, most = l, votes[l]
		}
	}
	return best
}

// minSureLetters is the fewest letters DetectSure judges a text on.
const minSureLetters = 100

// DetectSure tells s's language like Detect, but says when it is
// unsure instead of answering DefaultLanguage: fewer than minSureLetters
// letters, or no language holding more than half of the sampled
// characters. A nil detector is never sure.
func (d *LanguageDetector) DetectSure(s string) (string, bool) {
	if d == nil || letterCount(s, minSureLetters) < minSureLetters {
		return "", false
	}
	votes, all := map[string]int{}, 0
	for _, w := range sampleWindowsOf([]Segment{{Text: s}}) {
		n := utf8.RuneCountInString(w)
		all += n
		if l, ok := d.det.DetectLanguageOf(w); ok {
			votes[strings.ToLower(l.IsoCode639_1().String())] += n
		}
	}
	for _, l := range text.Languages() {
		if 2*votes[l] > all {
			return l, true
		}
	}
	return "", false
}

// letterCount counts s's letters, stopping at most.
func letterCount(s string, most int) int {
	n := 0
	for _, r := range s {
		if unicode.IsLetter(r) {
			if n++; n >= most {
				break
			}
		}
	}
	return n
}

// sampleWindowsOf cuts the segments' text into windows of sampleRunes
// characters, at most sampleWindows of them, evenly spaced (a text shorter
// than one window is one); none when it holds fewer than minLetters
// letters.
func sampleWindowsOf(segs []Segment) []string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.Text)
		b.WriteByte('\n')
	}
	runes := []rune(b.String())
	letters := 0
	for _, r := range runes {
		if unicode.IsLetter(r) {
			if letters++; letters >= minLetters {
				break
			}
		}
	}
	if letters < minLetters {
		return nil
	}
	n := min(sampleWindows, (len(runes)+sampleRunes-1)/sampleRunes)
	if n <= 1 {
		return []string{string(runes)}
	}
	step := (len(runes) - sampleRunes) / (n - 1)
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, string(runes[i*step:i*step+sampleRunes]))
	}
	return out
}

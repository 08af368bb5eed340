package pdftest

import (
	"strings"
	"unicode"
)

// Words splits text into lower-case words of letters and digits, as OCR
// accuracy counts them.
func Words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// WordAccuracy compares an OCR reading got with the text ref that was
// rendered: the longest common subsequence of their words over ref's
// words, and got's words beyond that subsequence (inserted or misread).
func WordAccuracy(ref, got string) (acc float64, extra int) {
	r, g := Words(ref), Words(got)
	prev := make([]int, len(g)+1)
	for i := range r {
		cur := make([]int, len(g)+1)
		for j := range g {
			if r[i] == g[j] {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(cur[j], prev[j+1])
			}
		}
		prev = cur
	}
	lcs := prev[len(g)]
	return float64(lcs) / float64(len(r)), len(g) - lcs
}

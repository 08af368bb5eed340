package rag

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/registry"
)

// Extractive is the built-in provider: no model. It answers with the
// passages' sentences that carry most of the question's weight, each
// question term weighted by its rarity among the retrieved sentences
// (BM25's idf), chosen by maximal marginal relevance so that no sentence
// or near-duplicate (word-bigram Jaccard ≥ dupJaccard) appears twice, at
// most two per passage and four in all, in passage and reading order,
// each cited as [n]. A sentence is evidence only when it carries at least
// minShare of the question's weight (minOneTerm when it matches a single
// term); with none, the answer says plainly that nothing was found.
// DESIGN.md explains the rule and its measurements.
type Extractive struct {
	an      *termMemo
	framing map[string]bool // stemmed words that frame a question, not its subject
}

// ExtractiveModel names the extractive provider in answers.
const ExtractiveModel = "sostenuto-extractive-v2"

// The extractive answerer's rule (DESIGN.md).
const (
	maxSentences = 4
	perPassage   = 2
	// minShare: a sentence's least share of the question's weight.
	minShare = 0.2
	// minOneTerm: the least share of a sentence matching one term only.
	minOneTerm = 0.5
	// dupJaccard: sentences this alike (word bigrams) are duplicates.
	dupJaccard = 0.5
	// mmrLambda trades relevance against likeness to chosen sentences.
	mmrLambda = 0.7
)

// framingWords frame a question without naming what it is about.
const framingWords = "tell explain describe know want wonder way ways please help question questions mean means " +
	"anything something thing things also get give find information discuss discussed say says said"

// Model names the extractive provider.
func (x *Extractive) Model() string { return ExtractiveModel }

// NewExtractive returns the extractive provider.
func NewExtractive() (*Extractive, error) {
	an, err := registry.NewCache().AnalyzerNamed(en.AnalyzerName)
	if err != nil {
		return nil, fmt.Errorf("rag: analyzer: %w", err)
	}
	x := &Extractive{an: newTermMemo(an), framing: map[string]bool{}}
	for t := range x.terms(framingWords) {
		x.framing[t] = true
	}
	return x, nil
}

func (x *Extractive) terms(s string) map[string]bool {
	out := map[string]bool{}
	x.an.each(s, func(t string) { out[t] = true })
	return out
}

// questionTerms are the question's content terms, framing words dropped
// (unless nothing else is left).
func (x *Extractive) questionTerms(q string) map[string]bool {
	all := x.terms(q)
	out := map[string]bool{}
	for t := range all {
		if !x.framing[t] {
			out[t] = true
		}
	}
	if len(out) == 0 {
		return all
	}
	return out
}

// sentences splits text at sentence ends (., ! or ? followed by white
// space) and line ends, keeping pieces of at least 12 characters.
func sentences(text string) []string {
	var out []string
	for _, para := range strings.Split(text, "\n") {
		para = strings.TrimSpace(para)
		if para == "" {
			continue
		}
		for _, s := range splitEnds(para) {
			if s = strings.TrimSpace(s); utf8.RuneCountInString(s) >= 12 {
				out = append(out, s)
			}
		}
	}
	return out
}

// splitEnds splits s after each ., ! or ? that white space (RE2's \s:
// space, \t, \n, \f, \r) follows, dropping that space, and at NUL bytes
// (dropped): what replacing `([.!?])\s+` by "$1\x00" and splitting at
// "\x00" gave, without the regular expression's cost.
func splitEnds(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0:
			out, start = append(out, s[start:i]), i+1
		case '.', '!', '?':
			j := i + 1
			for j < len(s) && isSpace(s[j]) {
				j++
			}
			if j > i+1 {
				out, start = append(out, s[start:i+1]), j
				i = j - 1
			}
		}
	}
	return append(out, s[start:])
}

// isSpace is RE2's \s.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

// candidate is one sentence of a passage.
type candidate struct {
	passage, order int // index of the passage; position in it
	n              int // the passage's number
	text           string
	terms          map[string]bool
	shingles       map[string]bool
	share          float64 // of the question's weight
	matched        int     // question terms it holds
}

// weights are the question's terms weighted by idf over sents.
type weights struct {
	w     map[string]float64
	total float64
}

func newWeights(q map[string]bool, sents []map[string]bool) weights {
	out := weights{w: map[string]float64{}}
	n := float64(len(sents))
	for t := range q {
		df := 0.0
		for _, s := range sents {
			if s[t] {
				df++
			}
		}
		out.w[t] = math.Log(1 + (n-df+0.5)/(df+0.5))
		out.total += out.w[t]
	}
	return out
}

// share is the part of the question's weight the terms hold, and how
// many question terms they hold.
func (w weights) share(terms map[string]bool) (float64, int) {
	if w.total == 0 {
		return 0, 0
	}
	s, m := 0.0, 0
	for t, v := range w.w {
		if terms[t] {
			s += v
			m++
		}
	}
	return s / w.total, m
}

// Answer implements Provider.
func (x *Extractive) Answer(ctx context.Context, req Request, emit func(string) error) (Answer, error) {
	cands, w := x.candidates(x.questionTerms(req.Question), req.Passages)
	chosen := choose(evidence(cands))
	if len(chosen) == 0 {
		if err := emit(NothingFound); err != nil {
			return Answer{}, err
		}
		return Answer{Content: NothingFound, Model: ExtractiveModel}, nil
	}
	a := Answer{Model: ExtractiveModel}
	var b strings.Builder
	covered := map[string]bool{}
	for i, c := range chosen {
		if err := ctx.Err(); err != nil {
			return Answer{}, err
		}
		piece := c.text + " [" + fmt.Sprint(c.n) + "]"
		if i > 0 {
			piece = " " + piece
		}
		b.WriteString(piece)
		if err := emit(piece); err != nil {
			return Answer{}, err
		}
		for t := range c.terms {
			covered[t] = true
		}
		a.Cited = appendOnce(a.Cited, c.n)
	}
	a.Content, a.Sentences = b.String(), len(chosen)
	a.Coverage, _ = w.share(covered)
	return a, nil
}

func appendOnce(xs []int, n int) []int {
	for _, x := range xs {
		if x == n {
			return xs
		}
	}
	return append(xs, n)
}

// candidates are the passages' sentences with their share of the
// question's weight (idf over all the passages' sentences).
func (x *Extractive) candidates(q map[string]bool, passages []Passage) ([]candidate, weights) {
	var cands []candidate
	var sents []map[string]bool
	for pi, p := range passages {
		for si, s := range sentences(p.Text) {
			ts := x.terms(s)
			sents = append(sents, ts)
			cands = append(cands, candidate{passage: pi, order: si, n: p.N, text: s, terms: ts})
		}
	}
	w := newWeights(q, sents)
	for i := range cands {
		cands[i].share, cands[i].matched = w.share(cands[i].terms)
	}
	return cands, w
}

// evidence keeps the candidates that carry enough of the question, with
// their shingles (which choose compares; made only for these: most
// sentences carry too little).
func evidence(cands []candidate) []candidate {
	var out []candidate
	for _, c := range cands {
		if c.share >= minShare && (c.matched >= 2 || c.share >= minOneTerm) {
			c.shingles = shingles(c.text)
			out = append(out, c)
		}
	}
	return out
}

// choose picks by maximal marginal relevance (relevance: the share, a
// little more for better-ranked passages; likeness: bigram Jaccard to the
// sentences already chosen), never a near-duplicate, at most perPassage a
// passage and maxSentences in all; then orders them by passage and
// position so the answer reads as the sources do.
func choose(cands []candidate) []candidate {
	var chosen []candidate
	used := make([]bool, len(cands))
	perP := map[int]int{}
	for len(chosen) < maxSentences {
		best, bestScore := -1, math.Inf(-1)
		for i, c := range cands {
			if used[i] || perP[c.passage] == perPassage {
				continue
			}
			sim := maxSimilarity(c, chosen)
			if sim >= dupJaccard {
				used[i] = true
				continue
			}
			rel := c.share + 0.02/float64(1+c.passage)
			if score := mmrLambda*rel - (1-mmrLambda)*sim; score > bestScore {
				best, bestScore = i, score
			}
		}
		if best < 0 {
			break
		}
		used[best] = true
		perP[cands[best].passage]++
		chosen = append(chosen, cands[best])
	}
	sort.SliceStable(chosen, func(i, j int) bool {
		if chosen[i].passage != chosen[j].passage {
			return chosen[i].passage < chosen[j].passage
		}
		return chosen[i].order < chosen[j].order
	})
	return chosen
}

func maxSimilarity(c candidate, chosen []candidate) float64 {
	m := 0.0
	for _, o := range chosen {
		m = max(m, jaccard(c.shingles, o.shingles))
	}
	return m
}

// shingles are a sentence's word bigrams (its word, for one word), case
// and punctuation folded.
func shingles(s string) map[string]bool {
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	out := map[string]bool{}
	if len(words) == 1 {
		out[words[0]] = true
	}
	for i := 1; i < len(words); i++ {
		out[words[i-1]+" "+words[i]] = true
	}
	return out
}

func jaccard(a, b map[string]bool) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	inter := 0
	for k := range a {
		if b[k] {
			inter++
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}

// Coverage is the share of the question's weight (idf over the passages'
// sentences) that text holds: how hosted models' answers are measured for
// the confidence rule.
func (x *Extractive) Coverage(req Request, text string) float64 {
	_, w := x.candidates(x.questionTerms(req.Question), req.Passages)
	s, _ := w.share(x.terms(text))
	return s
}

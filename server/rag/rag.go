// Package rag turns retrieved passages into a cited answer: the answering
// providers (the built-in extractive one here; hosted models join behind the
// same interface), the confidence rule, and the answer's hygiene (links to
// hosts outside an allowlist removed).
package rag

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/registry"
)

// Passage is one retrieved chunk, numbered as the answer cites it.
type Passage struct {
	N          int
	Title      string
	Page       int
	Text       string
	VectorRank int // 0: not in the vector list
	BM25Rank   int // 0: not in the BM25 list
}

// Request is what a provider answers.
type Request struct {
	Question string
	Passages []Passage
}

// Answer is a provider's result.
type Answer struct {
	Content string
	Model   string
	// Cited lists the passage numbers the answer cites.
	Cited []int
	// Coverage is the share of the question's content terms the cited text
	// contains (0 to 1), for the confidence rule.
	Coverage float64
}

// Provider answers a question from passages, streaming the answer's text
// through emit as it is produced.
type Provider interface {
	Answer(ctx context.Context, req Request, emit func(delta string) error) (Answer, error)
}

// NothingFound is the answer when no visible passage bears on the question.
const NothingFound = "I could not find anything about this in the knowledge base you can see. Try other words, or ask your teacher to add material on it."

// Extractive is the built-in provider: no model. It picks the sentences of
// the passages that share the most content terms with the question (after
// English stemming and stop words), at most two per passage and four in
// all, keeps them in passage order, and cites each as [n].
type Extractive struct {
	an analysis.Analyzer
}

// ExtractiveModel names the extractive provider in answers.
const ExtractiveModel = "sostenuto-extractive-v1"

// Model names the extractive provider.
func (x *Extractive) Model() string { return ExtractiveModel }

// NewExtractive returns the extractive provider.
func NewExtractive() (*Extractive, error) {
	an, err := registry.NewCache().AnalyzerNamed(en.AnalyzerName)
	if err != nil {
		return nil, fmt.Errorf("rag: analyzer: %w", err)
	}
	return &Extractive{an: an}, nil
}

func (x *Extractive) terms(s string) map[string]bool {
	out := map[string]bool{}
	for _, t := range x.an.Analyze([]byte(s)) {
		out[string(t.Term)] = true
	}
	return out
}

var sentenceEnd = regexp.MustCompile(`([.!?])\s+`)

// sentences splits text at sentence ends and blank lines.
func sentences(text string) []string {
	var out []string
	for _, para := range strings.Split(text, "\n") {
		para = strings.TrimSpace(para)
		if para == "" {
			continue
		}
		marked := sentenceEnd.ReplaceAllString(para, "$1\x00")
		for _, s := range strings.Split(marked, "\x00") {
			if s = strings.TrimSpace(s); len([]rune(s)) >= 12 {
				out = append(out, s)
			}
		}
	}
	return out
}

type candidate struct {
	passage, order int
	n              int
	text           string
	terms          map[string]bool
	score          float64
}

// Answer implements Provider.
func (x *Extractive) Answer(ctx context.Context, req Request, emit func(string) error) (Answer, error) {
	q := x.terms(req.Question)
	chosen := choose(x.candidates(q, req.Passages))
	if len(chosen) == 0 {
		if err := emit(NothingFound); err != nil {
			return Answer{}, err
		}
		return Answer{Content: NothingFound, Model: ExtractiveModel}, nil
	}
	var b strings.Builder
	covered := map[string]bool{}
	cited := map[int]bool{}
	var citedList []int
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
		for t := range q {
			if c.terms[t] {
				covered[t] = true
			}
		}
		if !cited[c.n] {
			cited[c.n] = true
			citedList = append(citedList, c.n)
		}
	}
	cov := 0.0
	if len(q) > 0 {
		cov = float64(len(covered)) / float64(len(q))
	}
	return Answer{Content: b.String(), Model: ExtractiveModel, Cited: citedList, Coverage: cov}, nil
}

// candidates are the passages' sentences sharing terms with the question
// q, scored: shared terms first, then the better-ranked passage, then the
// shorter sentence (denser).
func (x *Extractive) candidates(q map[string]bool, passages []Passage) []candidate {
	var cands []candidate
	for pi, p := range passages {
		for si, s := range sentences(p.Text) {
			ts := x.terms(s)
			hit := 0
			for t := range q {
				if ts[t] {
					hit++
				}
			}
			if hit == 0 {
				continue
			}
			score := float64(hit) - 0.01*float64(pi) - 0.0001*math.Sqrt(float64(len(s)))
			cands = append(cands, candidate{passage: pi, order: si, n: p.N, text: s, terms: ts, score: score})
		}
	}
	return cands
}

// choose keeps the best candidates, at most two per passage and four in
// all, in passage order.
func choose(cands []candidate) []candidate {
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].score > cands[j].score })
	perPassage := map[int]int{}
	var chosen []candidate
	for _, c := range cands {
		if len(chosen) == 4 {
			break
		}
		if perPassage[c.passage] == 2 {
			continue
		}
		perPassage[c.passage]++
		chosen = append(chosen, c)
	}
	sort.SliceStable(chosen, func(i, j int) bool {
		if chosen[i].passage != chosen[j].passage {
			return chosen[i].passage < chosen[j].passage
		}
		return chosen[i].order < chosen[j].order
	})
	return chosen
}

// Confidence grades an answer from the retrieval evidence:
//   - LOW: nothing cited, or the cited text holds under a third of the
//     question's content terms;
//   - HIGH: it holds at least two thirds of them, and either two or more
//     passages are cited or the first passage was found by both the vector
//     and the BM25 search (each ranked it in its top 3);
//   - MEDIUM: otherwise.
func Confidence(a Answer, passages []Passage) string {
	if len(a.Cited) == 0 || a.Coverage < 1.0/3 {
		return "LOW"
	}
	agree := len(passages) > 0 && passages[0].VectorRank > 0 && passages[0].VectorRank <= 3 &&
		passages[0].BM25Rank > 0 && passages[0].BM25Rank <= 3
	if a.Coverage >= 2.0/3 && (len(a.Cited) >= 2 || agree) {
		return "HIGH"
	}
	return "MEDIUM"
}

var (
	mdImage = regexp.MustCompile(`!\[([^\]]*)\]\(([^)\s]+)[^)]*\)`)
	mdLink  = regexp.MustCompile(`\[([^\]]+)\]\(([^)\s]+)[^)]*\)`)
	bareURL = regexp.MustCompile(`https?://[^\s<>()\[\]"']+`)
)

// Sanitize removes images and links whose host is not in allow (hosts,
// lower case; subdomains of an allowed host are allowed): an image becomes
// its alt text, a link its text, a bare URL "[link removed]".
func Sanitize(s string, allow []string) string {
	ok := func(raw string) bool {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			return false
		}
		h := strings.ToLower(u.Hostname())
		for _, a := range allow {
			if h == a || strings.HasSuffix(h, "."+a) {
				return true
			}
		}
		return false
	}
	s = mdImage.ReplaceAllStringFunc(s, func(m string) string {
		sub := mdImage.FindStringSubmatch(m)
		if ok(sub[2]) {
			return m
		}
		return sub[1]
	})
	s = mdLink.ReplaceAllStringFunc(s, func(m string) string {
		sub := mdLink.FindStringSubmatch(m)
		if ok(sub[2]) {
			return m
		}
		return sub[1]
	})
	// Bare URLs outside markdown links.
	var b strings.Builder
	last := 0
	for _, loc := range bareURL.FindAllStringIndex(s, -1) {
		u := strings.TrimRightFunc(s[loc[0]:loc[1]], func(r rune) bool { return unicode.IsPunct(r) && r != '/' })
		end := loc[0] + len(u)
		inLink := loc[0] >= 2 && s[loc[0]-2:loc[0]] == "]("
		b.WriteString(s[last:loc[0]])
		if ok(u) || inLink {
			b.WriteString(u)
		} else {
			b.WriteString("[link removed]")
		}
		last = end
	}
	b.WriteString(s[last:])
	return b.String()
}

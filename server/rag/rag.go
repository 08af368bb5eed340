// Package rag turns retrieved passages into a cited answer: the answering
// providers (the built-in extractive one here; hosted models join behind the
// same interface), the confidence rule, and the answer's hygiene (links to
// hosts outside an allowlist removed).
package rag

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"unicode"
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
	// Coverage is the share of the question's weight (its content terms,
	// each weighted by its rarity among the passages' sentences) the cited
	// text holds, 0 to 1, for the confidence rule.
	Coverage float64
	// Sentences counts the sentences an extractive answer quotes (0 for a
	// hosted model's answer).
	Sentences int
}

// Provider answers a question from passages, streaming the answer's text
// through emit as it is produced.
type Provider interface {
	Answer(ctx context.Context, req Request, emit func(delta string) error) (Answer, error)
}

// NothingFound is the answer when no visible passage bears on the question.
const NothingFound = "I could not find anything about this in the knowledge base you can see. Try other words, or ask your teacher to add material on it."

// Confidence grades an answer from its evidence (calibrated on the
// labelled CISI answer set, server/rag/DESIGN.md):
//   - LOW: nothing cited, or the cited text holds under 20 % of the
//     question's weight;
//   - HIGH: it holds at least 40 %, from two or three passages (more than
//     one source agrees);
//   - MEDIUM: otherwise.
func Confidence(a Answer, _ []Passage) string {
	switch {
	case len(a.Cited) == 0 || a.Coverage < 0.2:
		return "LOW"
	case a.Coverage >= 0.4 && len(a.Cited) >= 2 && len(a.Cited) <= 3:
		return "HIGH"
	default:
		return "MEDIUM"
	}
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

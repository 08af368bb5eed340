package rag

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/registry"
)

// Turn is one earlier exchange of a chat session: the question as it was
// asked and its answer.
type Turn struct {
	Question, Answer string
}

// Rewriter makes a follow-up question standalone from the earlier turns of
// its session (oldest first): what is searched and answered. A question
// that stands on its own comes back unchanged.
type Rewriter interface {
	Rewrite(ctx context.Context, history []Turn, question string) (string, error)
}

const (
	// maxHistory is how many earlier turns a rewrite reads.
	maxHistory = 4
	// maxCarried bounds the words the rule carries into a question.
	maxCarried = 12
)

// Rule is the built-in Rewriter: no model. Each earlier question is
// resolved in turn against the one before it, then the new question
// against the last; a question is resolved when it refers back:
//   - it opens with a connective ("and", "or", "but", "also", "so",
//     "then") or a follow-up phrase ("what about", "how about", "what if",
//     "same for");
//   - or it holds a pronoun that points back (it, they, them, this, that,
//     these, those, one, ...) and at most three content words;
//   - or it is short: at most three words and one content word ("Why?").
//
// A question that refers back gets the content words (English stemming,
// stop words dropped) of the previous standalone question that it lacks,
// in parentheses (at most 12), except those it replaces: where both questions hold two
// adjacent content words and one of the two is the same, the other is a
// substitute ("the left hand" replaces "right" of "the right hand").
// Only the turns passed in are read: the caller passes those of the
// asker's own session.
type Rule struct {
	an analysis.Analyzer
}

// NewRule returns the rule.
func NewRule() (*Rule, error) {
	an, err := registry.NewCache().AnalyzerNamed(en.AnalyzerName)
	if err != nil {
		return nil, fmt.Errorf("rag: analyzer: %w", err)
	}
	return &Rule{an: an}, nil
}

// Rewrite implements Rewriter; it never fails.
func (r *Rule) Rewrite(_ context.Context, history []Turn, question string) (string, error) {
	return r.Standalone(history, question), nil
}

// Standalone applies the rule.
func (r *Rule) Standalone(history []Turn, question string) string {
	if len(history) > maxHistory {
		history = history[len(history)-maxHistory:]
	}
	prev := ""
	for _, t := range history {
		prev = r.resolve(prev, t.Question)
	}
	return r.resolve(prev, question)
}

// resolve makes q standalone given the previous standalone question.
func (r *Rule) resolve(prev, q string) string {
	q = strings.TrimSpace(q)
	if prev == "" || !r.refersBack(q) {
		return q
	}
	carry := r.carried(r.content(prev), r.content(q))
	if len(carry) == 0 {
		return q
	}
	return q + " (" + strings.Join(carry, " ") + ")"
}

var (
	connectives = map[string]bool{"and": true, "or": true, "but": true, "also": true, "so": true, "then": true}
	openers     = map[string]bool{"what about": true, "how about": true, "what if": true, "same for": true}
	anaphors    = map[string]bool{"it": true, "its": true, "they": true, "them": true, "their": true, "theirs": true,
		"this": true, "that": true, "these": true, "those": true, "he": true, "she": true, "him": true, "her": true,
		"his": true, "hers": true, "one": true, "ones": true}
)

// refersBack reports whether q leans on what came before (see Rule).
func (r *Rule) refersBack(q string) bool {
	words := strings.FieldsFunc(strings.ToLower(q), func(c rune) bool { return !unicode.IsLetter(c) && c != '\'' })
	if len(words) == 0 {
		return true
	}
	if connectives[words[0]] || (len(words) > 1 && openers[words[0]+" "+words[1]]) {
		return true
	}
	n := len(r.content(q))
	if len(words) <= 3 && n <= 1 {
		return true
	}
	for _, w := range words {
		if anaphors[w] && n <= 3 {
			return true
		}
	}
	return false
}

// word is a content word of a question: as written (lower case) and stemmed.
type word struct{ text, stem string }

// content lists the content words of s in order.
func (r *Rule) content(s string) []word {
	var out []word
	for _, t := range r.an.Analyze([]byte(s)) {
		text := strings.ToLower(s[t.Start:t.End])
		text = strings.TrimSuffix(strings.TrimSuffix(text, "'s"), "’s")
		out = append(out, word{text: text, stem: string(t.Term)})
	}
	return out
}

// carried lists the words of prev that q lacks and does not replace, once each.
func (r *Rule) carried(prev, q []word) []string {
	have := map[string]bool{}
	for _, w := range q {
		have[w.stem] = true
	}
	replaced := substitutes(prev, q)
	var out []string
	for i, w := range prev {
		if have[w.stem] || replaced[i] {
			continue
		}
		have[w.stem] = true
		out = append(out, w.text)
	}
	if len(out) > maxCarried {
		out = out[len(out)-maxCarried:] // the latest question's words come last
	}
	return out
}

// substitutes marks the words of prev that q replaces: prev holds the
// adjacent pair (c, d) and q the pair (a, b) with one word shared in the
// same place and the other different.
func substitutes(prev, q []word) map[int]bool {
	out := map[int]bool{}
	for i := 0; i+1 < len(q); i++ {
		a, b := q[i].stem, q[i+1].stem
		for j := 0; j+1 < len(prev); j++ {
			c, d := prev[j].stem, prev[j+1].stem
			switch {
			case b == d && a != c:
				out[j] = true
			case a == c && b != d:
				out[j+1] = true
			}
		}
	}
	return out
}

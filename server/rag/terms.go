package rag

import (
	"sync"

	"github.com/blevesearch/bleve/v2/analysis"
)

// maxMemoTokens bounds the terms a termMemo keeps (a few MB at most): it
// starts afresh when full.
const maxMemoTokens = 1 << 16

// termMemo analyses text as an analyzer does, remembering what the
// analyzer's token filters made of each token the tokenizer cut (the
// English analyzer's filters — possessive, lower case, stop words,
// stemming — each look at one token alone, so a token always becomes the
// same term or is always dropped). The answerer analyses every sentence
// of every passage of every answer, and most of that time went to the
// filters (stemming) of words it had met before.
type termMemo struct {
	an      analysis.Analyzer
	tok     analysis.Tokenizer     // nil: an is not a plain tokenizer and filters; no memo
	filters []analysis.TokenFilter // applied to one token at a time
	mu      sync.RWMutex
	terms   map[string]memoTerm // by token as cut
}

// memoTerm is what the filters made of a token: its term, or dropped.
type memoTerm struct {
	term string
	kept bool
}

// newTermMemo memoizes an; an analyzer other than a tokenizer followed by
// token filters is used as it is.
func newTermMemo(an analysis.Analyzer) *termMemo {
	m := &termMemo{an: an, terms: map[string]memoTerm{}}
	if d, ok := an.(*analysis.DefaultAnalyzer); ok && len(d.CharFilters) == 0 {
		m.tok, m.filters = d.Tokenizer, d.TokenFilters
	}
	return m
}

// each calls f with every term of s, in order, as the analyzer makes them.
func (m *termMemo) each(s string, f func(term string)) {
	if m.tok == nil {
		for _, t := range m.an.Analyze([]byte(s)) {
			f(string(t.Term))
		}
		return
	}
	for _, t := range m.tok.Tokenize([]byte(s)) {
		if mt := m.term(t); mt.kept {
			f(mt.term)
		}
	}
}

// term is what the filters make of token t, remembered.
func (m *termMemo) term(t *analysis.Token) memoTerm {
	m.mu.RLock()
	mt, ok := m.terms[string(t.Term)]
	m.mu.RUnlock()
	if ok {
		return mt
	}
	raw := string(t.Term)
	stream := analysis.TokenStream{t}
	for _, f := range m.filters {
		stream = f.Filter(stream)
	}
	if len(stream) == 1 {
		mt = memoTerm{term: string(stream[0].Term), kept: true}
	}
	m.mu.Lock()
	if len(m.terms) >= maxMemoTokens {
		clear(m.terms)
	}
	m.terms[raw] = mt
	m.mu.Unlock()
	return mt
}

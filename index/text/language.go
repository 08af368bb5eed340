package text

import (
	"fmt"
	"slices"
	"strings"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/lang/de"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/analysis/lang/es"
	"github.com/blevesearch/bleve/v2/analysis/lang/fr"
	"github.com/blevesearch/bleve/v2/analysis/lang/it"
	"github.com/blevesearch/bleve/v2/analysis/lang/nl"
	"github.com/blevesearch/bleve/v2/analysis/lang/pt"
	"github.com/blevesearch/bleve/v2/registry"
)

// Languages every document and query is analysed in: ISO 639-1 codes,
// each with Bleve's analyzer of that name (Unicode word segmentation,
// lower case, the language's stop words and stemmer). English is the
// default: a document of any other language, or of none, is English.
var languages = []string{en.AnalyzerName, de.AnalyzerName, es.AnalyzerName, fr.AnalyzerName,
	it.AnalyzerName, nl.AnalyzerName, pt.AnalyzerName}

// English is the default language.
const English = en.AnalyzerName

// Languages lists the languages the index analyses (ISO 639-1), English
// first.
func Languages() []string { return slices.Clone(languages) }

// Supports reports whether lang has an analyzer of its own here.
func Supports(lang string) bool { return slices.Contains(languages, lang) }

// langSep separates a language from a term in the index's term keys. Word
// segmentation never leaves a control character inside a token, so a key
// holding it cannot be an English term.
const langSep = "\x1f"

// key is a term's key: the term itself for English (so an English index
// is exactly what it was before languages), "de\x1fspiel" for German.
func key(lang, term string) string {
	if lang == English {
		return term
	}
	return lang + langSep + term
}

// langOfKey is the language of a term key.
func langOfKey(k string) string {
	if i := strings.Index(k, langSep); i > 0 {
		return k[:i]
	}
	return English
}

// analyzers returns one analyzer per language.
func analyzers() (map[string]analysis.Analyzer, error) {
	cache := registry.NewCache()
	out := make(map[string]analysis.Analyzer, len(languages))
	for _, l := range languages {
		an, err := cache.AnalyzerNamed(l)
		if err != nil {
			return nil, fmt.Errorf("text: analyzer %s: %w", l, err)
		}
		out[l] = an
	}
	return out, nil
}

// normLang maps a document's language to the one it is analysed in:
// itself when supported, English otherwise ("" included).
func normLang(lang string) string {
	if Supports(lang) {
		return lang
	}
	return English
}

// noteLang records the language of a new term key in x.langs (in the
// order of languages: English first). The write lock is held.
func (x *Index) noteLang(k string) {
	l := langOfKey(k)
	if slices.Contains(x.langs, l) {
		return
	}
	langs := append(slices.Clone(x.langs), l) // a search may hold the old slice
	slices.SortFunc(langs, func(a, b string) int { return langRank(a) - langRank(b) })
	x.langs = langs
}

// relang recomputes x.langs from the term keys (after compaction or
// ReadFrom). The write lock is held.
func (x *Index) relang() {
	x.langs = nil
	for _, k := range x.terms {
		x.noteLang(k)
	}
}

// langRank orders languages as the languages list does; one it does not
// list comes last.
func langRank(l string) int {
	if i := slices.Index(languages, l); i >= 0 {
		return i
	}
	return len(languages)
}

// analyzeQuery analyses a query once in every language the index holds
// terms of, each term keyed by its language: an English document is scored
// with the English analysis of the query only, a German one with the
// German analysis only.
func (x *Index) analyzeQuery(query string) analyzed {
	x.mu.RLock()
	langs := x.langs
	x.mu.RUnlock()
	if len(langs) == 0 {
		langs = []string{English}
	}
	var q analyzed
	for _, l := range langs {
		if x.ans[l] == nil {
			continue
		}
		a := x.analyze(query, l)
		q.terms = append(q.terms, a.terms...)
		q.tfs = append(q.tfs, a.tfs...)
		q.n += a.n
	}
	return q
}

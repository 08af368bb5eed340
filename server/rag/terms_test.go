package rag

import (
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/registry"
)

// termWords mix what the English analyzer's filters treat apart:
// possessives (straight, curly and full-width apostrophes, a bare "'s"),
// case, stop words, stems, digits, accents, scripts without spaces.
var termWords = strings.Fields(`The teacher's TEACHERS’S pupils' 's ’s ＇s pedalling pedals PEDAL pedal's can't O'Neil
	and of it its it's is was were Naïve naive Über über café 123 3.14 1st x y a I
	running runs ran runner relational retrieval retrieving informational information INFORMATION
	日本語のテキスト Ελληνικά русский العربية 🎹 co-operation e-mail don’t won't`)

// The answerer's terms are the English analyzer's, token for token, the
// first time a token is met (filtered) and after (remembered), from many
// goroutines at once; and so when the memo starts afresh.
func TestTermsAsTheAnalyzer(t *testing.T) {
	an, err := registry.NewCache().AnalyzerNamed(en.AnalyzerName)
	if err != nil {
		t.Fatal(err)
	}
	want := func(s string) map[string]bool {
		out := map[string]bool{}
		for _, tk := range an.Analyze([]byte(s)) {
			out[string(tk.Term)] = true
		}
		return out
	}
	x := mustExtractive(t)
	if x.an.tok == nil {
		t.Fatal("the English analyzer is not memoized")
	}
	r := rand.New(rand.NewPCG(8, 8))
	texts := make([]string, 400)
	for i := range texts {
		ws := make([]string, 1+r.IntN(30))
		for j := range ws {
			ws[j] = termWords[r.IntN(len(termWords))]
		}
		texts[i] = strings.Join(ws, []string{" ", ", ", ". ", " — ", "\n"}[r.IntN(5)])
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 2 {
				for i := g; i < len(texts); i += 4 {
					if got := x.terms(texts[i]); !maps.Equal(got, want(texts[i])) {
						t.Errorf("round %d, %q: terms %v, the analyzer's %v", round, texts[i], got, want(texts[i]))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	x.an.mu.Lock()
	clear(x.an.terms)
	x.an.mu.Unlock()
	for _, s := range texts[:50] {
		if got := x.terms(s); !maps.Equal(got, want(s)) {
			t.Errorf("after a fresh start, %q: terms %v, the analyzer's %v", s, got, want(s))
		}
	}
}

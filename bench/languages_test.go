package bench

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sostenuto/sostenuto/index/text"
)

// BenchmarkLanguages prices multi-language query analysis (index/DESIGN.md
// "Languages") on the BM25 index alone: SOSTENUTO_BENCH_N chunks of four
// CISI sentences (English), then the same index holding one document in
// each of the six other languages, which makes every query be analysed
// seven times (one analysis per language the index holds) and looked up
// under each language's keys. Admin scope, k = 10.
//
// Run: SOSTENUTO_BENCH_N=20000 go test ./bench -run '^$' -bench Languages -benchtime 2000x
func BenchmarkLanguages(b *testing.B) {
	dir, err := CISIDir()
	if err != nil {
		b.Fatal(err)
	}
	docs, _ := LoadCISI(dir)
	cq, _ := LoadCISIQueries(dir)
	sentences := CISISentences(docs)
	queries := make([]string, len(cq))
	for i, q := range cq {
		queries[i] = q.Text
	}
	r := rand.New(rand.NewPCG(5, 5))
	x, err := text.New()
	if err != nil {
		b.Fatal(err)
	}
	ups := map[text.ID]text.Doc{}
	for i := range benchN() {
		var s strings.Builder
		for range 4 {
			s.WriteString(sentences[r.IntN(len(sentences))])
			s.WriteString(". ")
		}
		ups[text.ID{byte(i), byte(i >> 8), byte(i >> 16), 1}] = text.Doc{Text: s.String()}
	}
	if err := x.Batch(ups, nil); err != nil {
		b.Fatal(err)
	}
	run := func(name string) {
		for _, qs := range []struct {
			name string
			q    func(i int) string
		}{{"3words", func(i int) string { return ContentWords(queries[i%len(queries)], 3) }},
			{"paragraph", func(i int) string { return queries[i%len(queries)] }}} {
			b.Run(name+"/"+qs.name, func(b *testing.B) {
				i := 0
				for b.Loop() {
					if _, err := x.Search(qs.q(i), 10, text.Scope{}); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
	run("english-only")
	other := map[text.ID]text.Doc{}
	for i, l := range text.Languages()[1:] {
		other[text.ID{0xff, byte(i)}] = text.Doc{Text: fmt.Sprintf("document %d of the index in %s", i, l), Language: l}
	}
	if err := x.Batch(other, nil); err != nil {
		b.Fatal(err)
	}
	run("seven-languages")
}

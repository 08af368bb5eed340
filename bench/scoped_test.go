package bench

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/sostenuto/sostenuto/index/text"
)

// BenchmarkScopedStatistics prices scoped BM25 statistics (docs/SECURITY.md,
// "Search statistics") on the BM25 index alone: 100,000 chunks of four
// CISI sentences, 10,000 documents of 50 owners, a third public, as in
// BenchmarkEngine. Each query runs in two ways in the same process:
//   - global: the statistics of the whole index with the caller's filter
//     (what every search did before scoping: the admin path still does);
//   - scoped: the statistics of the caller's groups (public + own + a
//     teacher's), what a student's search does now.
//
// Run: go test ./bench -run '^$' -bench ScopedStatistics -count 6 | benchstat -
func BenchmarkScopedStatistics(b *testing.B) {
	x, owner, queries := scopedCorpus(b)
	student := map[int]bool{7: true, 8: true}
	keep := func(id text.ID) bool { o := owner[id]; return o < 0 || student[o] }
	groups := []text.Group{0, 1 + 7, 1 + 8}
	for _, qs := range []struct {
		name string
		q    func(i int) string
	}{{"3words", func(i int) string { return ContentWords(queries[i%len(queries)], 3) }},
		{"paragraph", func(i int) string { return queries[i%len(queries)] }}} {
		for _, sc := range []struct {
			name  string
			scope text.Scope
		}{{"admin", text.Scope{}},
			{"student-global", text.Scope{Keep: keep}},
			{"student-scoped", text.Scope{Keep: keep, Groups: groups}}} {
			b.Run(qs.name+"/"+sc.name, func(b *testing.B) {
				i := 0
				for b.Loop() {
					if _, err := x.Search(qs.q(i), 10, sc.scope); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

var scoped struct {
	once    sync.Once
	x       *text.Index
	owner   map[text.ID]int // -1: public
	queries []string
	err     error
}

// scopedCorpus builds the index once per process.
func scopedCorpus(b *testing.B) (*text.Index, map[text.ID]int, []string) {
	scoped.once.Do(func() {
		dir, err := CISIDir()
		if err != nil {
			scoped.err = err
			return
		}
		docs, _ := LoadCISI(dir)
		cq, _ := LoadCISIQueries(dir)
		sentences := CISISentences(docs)
		r := rand.New(rand.NewPCG(3, 3))
		n := benchN()
		x, _ := text.New()
		owner := make(map[text.ID]int, n)
		ups := make(map[text.ID]text.Doc, n)
		for i := range n {
			var s strings.Builder
			for range 4 {
				s.WriteString(sentences[r.IntN(len(sentences))])
				s.WriteString(". ")
			}
			d := i / 10
			id := text.ID(vid(i))
			o, g := d%50, text.Group(1+d%50)
			if d%3 == 0 {
				o, g = -1, 0
			}
			owner[id] = o
			ups[id] = text.Doc{Text: s.String(), Group: g}
		}
		scoped.err = x.Batch(ups, nil)
		for _, q := range cq {
			scoped.queries = append(scoped.queries, q.Text)
		}
		scoped.x, scoped.owner = x, owner
	})
	if scoped.err != nil {
		b.Fatal(fmt.Errorf("scoped corpus: %w", scoped.err))
	}
	return scoped.x, scoped.owner, scoped.queries
}

package bench

import (
	"fmt"
	"sort"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/index/scorch"
	bindex "github.com/blevesearch/bleve_index_api"
)

// bleveRow indexes texts in a Bleve v2 scorch index held in memory (the
// engine's text index before it got postings of its own) and times the
// queries one at a time: the peer row for the BM25 side.
func bleveRow(texts []string, queries []string, k int) (build time.Duration, p50, p95, p99 float64, err error) {
	field := bleve.NewTextFieldMapping()
	field.Analyzer = en.AnalyzerName
	field.Store, field.IncludeTermVectors, field.IncludeInAll, field.DocValues = false, false, false, false
	dm := bleve.NewDocumentStaticMapping()
	dm.AddFieldMappingsAt("text", field)
	m := bleve.NewIndexMapping()
	m.DefaultMapping = dm
	m.DefaultAnalyzer = en.AnalyzerName
	m.ScoringModel = bindex.BM25Scoring
	idx, err := bleve.NewUsing("", m, scorch.Name, scorch.Name, nil)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer idx.Close()
	start := time.Now()
	b := idx.NewBatch()
	for i, t := range texts {
		if err := b.Index(fmt.Sprint(i), map[string]any{"text": t}); err != nil {
			return 0, 0, 0, 0, err
		}
	}
	if err := idx.Batch(b); err != nil {
		return 0, 0, 0, 0, err
	}
	build = time.Since(start)
	lat := make([]float64, 0, len(queries))
	for _, q := range queries {
		mq := bleve.NewMatchQuery(q)
		mq.SetField("text")
		start := time.Now()
		if _, err := idx.Search(bleve.NewSearchRequestOptions(mq, k, 0, false)); err != nil {
			return 0, 0, 0, 0, err
		}
		lat = append(lat, float64(time.Since(start).Microseconds()))
	}
	sort.Float64s(lat)
	return build, lat[len(lat)/2], lat[len(lat)*95/100], lat[len(lat)*99/100], nil
}

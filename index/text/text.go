// Package text is the BM25 side of the engine: a Bleve v2 index held in
// memory (scorch, not the legacy NewMemOnly engine), English analysis
// (possessives, stop words, Porter stemming) and BM25 scoring, behind a
// small type of our own. Only ids are stored: the text lives in the
// engine, so the index stays lean.
package text

import (
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	bindex "github.com/blevesearch/bleve_index_api"
)

// ID identifies a document of the index (a chunk's UUID).
type ID [16]byte

// Hit is a scored match.
type Hit struct {
	ID    ID
	Score float64
}

// Index is an in-memory BM25 index.
type Index struct {
	mu  sync.RWMutex // Bleve is safe for concurrent use; this orders Close
	idx bleve.Index
}

type doc struct {
	Text string `json:"text"`
}

// New returns an empty index.
func New() (*Index, error) {
	field := bleve.NewTextFieldMapping()
	field.Analyzer = en.AnalyzerName
	field.Store = false
	field.IncludeTermVectors = false
	field.IncludeInAll = false
	field.DocValues = false
	dm := bleve.NewDocumentStaticMapping()
	dm.AddFieldMappingsAt("text", field)
	m := bleve.NewIndexMapping()
	m.DefaultMapping = dm
	m.DefaultAnalyzer = en.AnalyzerName
	m.StoreDynamic = false
	m.IndexDynamic = false
	m.DocValuesDynamic = false
	m.ScoringModel = bindex.BM25Scoring
	var _ mapping.IndexMapping = m
	idx, err := bleve.NewUsing("", m, scorch.Name, scorch.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("text: new index: %w", err)
	}
	return &Index{idx: idx}, nil
}

func key(id ID) string { return hex.EncodeToString(id[:]) }

func parseKey(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("text: bad key %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// Batch applies upserts and deletes in one Bleve batch (one segment).
func (x *Index) Batch(upserts map[ID]string, deletes []ID) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	b := x.idx.NewBatch()
	for id, t := range upserts {
		if err := b.Index(key(id), doc{Text: t}); err != nil {
			return fmt.Errorf("text: index: %w", err)
		}
	}
	for _, id := range deletes {
		b.Delete(key(id))
	}
	if err := x.idx.Batch(b); err != nil {
		return fmt.Errorf("text: batch: %w", err)
	}
	return nil
}

// Search returns the top n matches of a free-text query (terms OR-ed,
// BM25-scored).
func (x *Index) Search(query string, n int) ([]Hit, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	q := bleve.NewMatchQuery(query)
	q.SetField("text")
	req := bleve.NewSearchRequestOptions(q, n, 0, false)
	res, err := x.idx.Search(req)
	if err != nil {
		return nil, fmt.Errorf("text: search: %w", err)
	}
	out := make([]Hit, 0, len(res.Hits))
	for _, h := range res.Hits {
		id, err := parseKey(h.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, Hit{ID: id, Score: h.Score})
	}
	return out, nil
}

// Count is the number of indexed documents.
func (x *Index) Count() (uint64, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.idx.DocCount()
}

// Close releases the index.
func (x *Index) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.idx.Close()
}

package bench

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"testing"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/search"
)

// BenchmarkQualityCISI measures retrieval quality on CISI (76 judged
// queries, the top 100 ranked): MAP and nDCG@10 of the engine's BM25, of
// vector search with the built-in hash embedder, and of hybrid with the
// default fusion (`sostenuto eval` gives every mode), beside
// Xapian's BM25 on the same documents.
func BenchmarkQualityCISI(b *testing.B) {
	dir, err := CISIDir()
	if err != nil {
		b.Fatal(err)
	}
	docs, _ := LoadCISI(dir)
	queries, _ := LoadCISIQueries(dir)
	for b.Loop() {
		e, _ := index.New(index.DefaultConfig())
		var ops index.Ops
		owner := docID(999999)
		for _, d := range docs {
			text := d.Title + "\n" + d.Text
			v, err := embed.Hash{}.Embed(b.Context(), []string{text})
			if err != nil {
				b.Fatal(err)
			}
			ops.Upserts = append(ops.Upserts, index.Chunk{ID: docID(d.ID), DocumentID: docID(d.ID), OwnerID: owner, Text: text, PageStart: 1, PageEnd: 1, Version: 1, Vector: v[0]})
		}
		if err := e.Apply(ops); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("\nCISI, %d documents, %d judged queries, top 100\n| system | MAP | nDCG@10 |\n|---|---|---|\n", len(docs), len(queries))
		for _, mode := range []string{index.ModeBM25, index.ModeVector, index.ModeHybrid} {
			var aps, ndcgs float64
			for _, q := range queries {
				v, _ := embed.Hash{}.Embed(b.Context(), []string{q.Text})
				hits, err := e.Search(index.Query{K: 100, Mode: mode, Text: q.Text, Vector: v[0], Scope: index.Scope{Admin: true},
					Fusion: search.DefaultFusion().For(embed.Hash{}.Model())})
				if err != nil {
					b.Fatal(err)
				}
				ranked := make([]int, len(hits))
				for i, h := range hits {
					ranked[i] = int(binary.BigEndian.Uint32(h.Chunk.ID[:4]))
				}
				ap, nd := apNDCG(ranked, q.Relevant)
				aps += ap
				ndcgs += nd
			}
			n := float64(len(queries))
			fmt.Printf("| Sostenuto %s (hash embedder for vectors) | %.3f | %.3f |\n", mode, aps/n, ndcgs/n)
		}
		out, err := exec.Command("/usr/bin/python3", "peers/xapian_cisi.py", dir).Output()
		var x struct {
			System string  `json:"system"`
			MAP    float64 `json:"map"`
			NDCG   float64 `json:"ndcg10"`
		}
		if err != nil || json.Unmarshal(out, &x) != nil {
			fmt.Printf("| Xapian unavailable (apt-get install python3-xapian): %v |\n", err)
			continue
		}
		fmt.Printf("| %s | %.3f | %.3f |\n", x.System, x.MAP, x.NDCG)
	}
}

func docID(i int) index.ID {
	var id index.ID
	binary.BigEndian.PutUint32(id[:4], uint32(i))
	return id
}

func apNDCG(ranked []int, rel map[int]bool) (float64, float64) {
	hits, s := 0, 0.0
	for i, d := range ranked {
		if rel[d] {
			hits++
			s += float64(hits) / float64(i+1)
		}
	}
	var dcg, idcg float64
	for i := 0; i < len(ranked) && i < 10; i++ {
		if rel[ranked[i]] {
			dcg += 1 / math.Log2(float64(i+2))
		}
	}
	for i := 0; i < len(rel) && i < 10; i++ {
		idcg += 1 / math.Log2(float64(i+2))
	}
	return s / float64(len(rel)), dcg / idcg
}

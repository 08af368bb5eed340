package bench

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/rag"
	"github.com/sostenuto/sostenuto/server/search"
)

// BenchmarkChatSearch prices the engine's part of a chat question that
// misses the cache, in process, on the chat load benchmark's library
// (seedLibrary's shape without PostgreSQL: 100k chunks of two CISI
// sentences in documents of 100, 20 teachers, a third of the documents
// public, the hash embedder's vectors) and its questions, asked in a
// student's scope (two teachers: ~40 % of the chunks): the hybrid search
// at the chat's k (5), and each of its lists alone at the hybrid's depth.
// SOSTENUTO_BENCH_ENGINE names a file the built engine is kept in (a
// snapshot; rebuilt when missing).
//
//	GOEXPERIMENT=simd go test ./bench -run '^$' -bench ChatSearch -benchtime 2000x
func BenchmarkChatSearch(b *testing.B) {
	cs := chatSearchCorpus(b)
	fusion := search.DefaultFusion().For(embed.Hash{}.Model())
	for _, c := range []struct {
		name string
		mode string
		k    int
	}{{"hybrid", index.ModeHybrid, 5}, {"vector", index.ModeVector, 50}, {"bm25", index.ModeBM25, 50}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			cpu := processCPU()
			for b.Loop() {
				q := cs.queries[i%len(cs.queries)]
				_, err := cs.e.Search(index.Query{Text: q.text, Vector: q.vec, K: c.k, Mode: c.mode, Fusion: fusion, Scope: cs.scopes[i%len(cs.scopes)]})
				if err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// chatQuery is a chat benchmark question and its embedding.
type chatQuery struct {
	text string
	vec  []float32
}

// chatSearchData is the engine, the scopes and the questions.
type chatSearchData struct {
	once    sync.Once
	e       *index.Engine
	scopes  []index.Scope
	queries []chatQuery
	err     error
}

var chatSearch chatSearchData

// chatSearchCorpus builds (or reads) the engine once per process, with the
// students' scopes and the questions.
func chatSearchCorpus(b *testing.B) *chatSearchData {
	chatSearch.once.Do(func() { chatSearch.err = loadChatSearch() })
	if chatSearch.err != nil {
		b.Fatal(fmt.Errorf("chat search corpus: %w", chatSearch.err))
	}
	return &chatSearch
}

// loadChatSearch fills chatSearch.
func loadChatSearch() error {
	dir, err := CISIDir()
	if err != nil {
		return err
	}
	docs, _ := LoadCISI(dir)
	qs, _ := LoadCISIQueries(dir)
	teachers := make([]index.ID, 20)
	r := rand.New(rand.NewPCG(9, 9))
	for i := range teachers {
		teachers[i] = index.ID(uuidOf(r))
	}
	for i := range 200 {
		chatSearch.scopes = append(chatSearch.scopes, index.Scope{User: index.ID(uuidOf(r)),
			Teachers: []index.ID{teachers[i%20], teachers[(i*7+3)%20]}})
	}
	for _, q := range qs {
		text := "What is known about " + ContentWords(q.Text, 5) + "?"
		v, err := embed.Hash{}.Embed(context.Background(), []string{text})
		if err != nil {
			return err
		}
		chatSearch.queries = append(chatSearch.queries, chatQuery{text, v[0]})
	}
	path := os.Getenv("SOSTENUTO_BENCH_ENGINE")
	if path != "" {
		if f, err := os.Open(path); err == nil {
			defer f.Close()
			chatSearch.e, err = index.ReadSnapshot(index.DefaultConfig(), bufio.NewReader(f))
			return err
		}
	}
	start := time.Now()
	e, err := buildChatEngine(CISISentences(docs), teachers, r)
	if err != nil {
		return err
	}
	fmt.Printf("chat search engine built in %v\n", time.Since(start).Round(time.Second))
	chatSearch.e = e
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	if err := e.WriteSnapshot(w); err != nil {
		return err
	}
	return w.Flush()
}

// buildChatEngine is seedLibrary's library in an engine: 1,000 documents
// of 100 chunks (two random sentences each), owned in turn by teachers, a
// third public.
func buildChatEngine(sentences []string, teachers []index.ID, r *rand.Rand) (*index.Engine, error) {
	e, err := index.New(index.DefaultConfig())
	if err != nil {
		return nil, err
	}
	n := 100_000
	if v := os.Getenv("SOSTENUTO_BENCH_CHUNKS"); v != "" {
		fmt.Sscan(v, &n)
	}
	const perDoc = 100
	for d := range n / perDoc {
		doc := index.Document{ID: index.ID(uuidOf(r)), OwnerID: teachers[d%len(teachers)], IsPublic: d%3 == 0, Title: fmt.Sprintf("Notes %d", d)}
		ops := index.Ops{Documents: []index.Document{doc}, Position: index.Position{LSN: index.LSN(d + 1)}}
		texts := make([]string, perDoc)
		for c := range texts {
			texts[c] = sentences[r.IntN(len(sentences))] + ". " + sentences[r.IntN(len(sentences))] + "."
		}
		vecs, err := embed.Hash{}.Embed(context.Background(), texts)
		if err != nil {
			return nil, err
		}
		for c, t := range texts {
			ops.Upserts = append(ops.Upserts, index.Chunk{ID: index.ID(uuidOf(r)), DocumentID: doc.ID, OwnerID: doc.OwnerID,
				Title: doc.Title, Text: t, Version: 1, Vector: vecs[c], PageStart: 1, PageEnd: 1})
		}
		if err := e.Apply(ops); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// uuidOf is a random UUID from r (deterministic).
func uuidOf(r *rand.Rand) uuid.UUID {
	var u uuid.UUID
	for i := range u {
		u[i] = byte(r.Uint32())
	}
	return u
}

// BenchmarkChatAnswer prices the extractive answerer on what a chat
// question of BenchmarkChatSearch hands it: the question and the passages
// of its hybrid search's five hits.
//
//	GOEXPERIMENT=simd go test ./bench -run '^$' -bench ChatAnswer -benchtime 2000x
func BenchmarkChatAnswer(b *testing.B) {
	cs := chatSearchCorpus(b)
	fusion := search.DefaultFusion().For(embed.Hash{}.Model())
	var reqs []rag.Request
	for i, q := range cs.queries {
		hits, err := cs.e.Search(index.Query{Text: q.text, Vector: q.vec, K: 5, Mode: index.ModeHybrid, Fusion: fusion, Scope: cs.scopes[i%len(cs.scopes)]})
		if err != nil {
			b.Fatal(err)
		}
		req := rag.Request{Question: q.text}
		for n, h := range hits {
			req.Passages = append(req.Passages, rag.Passage{N: n + 1, Title: h.Chunk.Title, Page: h.Chunk.PageStart, Text: h.Chunk.Text})
		}
		reqs = append(reqs, req)
	}
	x, err := rag.NewExtractive()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	cpu := processCPU()
	defer func() { b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op") }()
	for b.Loop() {
		if _, err := x.Answer(context.Background(), reqs[i%len(reqs)], func(string) error { return nil }); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// processCPU is the CPU time the process has used (user and system, ns):
// on a shared machine the time a search takes is mostly waiting, its CPU
// is not.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

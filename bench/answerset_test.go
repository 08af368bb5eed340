package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/rag"
)

// answerBench is the CISI collection in the engine, one chunk a document
// (as BenchmarkQualityCISI builds it), with the extractive answerer.
type answerBench struct {
	e *index.Engine
	x *rag.Extractive
}

func newAnswerBench(t testing.TB, docs []CISIDoc) *answerBench {
	t.Helper()
	e, err := index.New(index.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var ops index.Ops
	for _, d := range docs {
		text := d.Title + "\n" + d.Text
		v, err := embed.Hash{}.Embed(context.Background(), []string{text})
		if err != nil {
			t.Fatal(err)
		}
		ops.Upserts = append(ops.Upserts, index.Chunk{ID: docID(d.ID), DocumentID: docID(d.ID), OwnerID: docID(999999),
			Title: d.Title, Text: d.Text, PageStart: 1, PageEnd: 1, Version: 1, Vector: v[0]})
	}
	if err := e.Apply(ops); err != nil {
		t.Fatal(err)
	}
	x, err := rag.NewExtractive()
	if err != nil {
		t.Fatal(err)
	}
	return &answerBench{e: e, x: x}
}

// ask answers q as chat does by default (hybrid, k = 5): the answer, its
// passages, and the CISI document of each passage number.
func (b *answerBench) ask(t testing.TB, q string) (rag.Answer, []rag.Passage, map[int]int) {
	t.Helper()
	iq := index.Query{K: 5, Mode: index.ModeHybrid, Text: q, Scope: index.Scope{Admin: true}}
	v, err := embed.Hash{}.Embed(context.Background(), []string{q})
	switch {
	case errors.Is(err, embed.ErrEmpty): // nothing to embed: BM25 only, as chat does
		iq.Mode = index.ModeBM25
	case err != nil:
		t.Fatal(err)
	default:
		iq.Vector = v[0]
	}
	hits, err := b.e.Search(iq)
	if err != nil {
		t.Fatal(err)
	}
	ps := make([]rag.Passage, len(hits))
	doc := map[int]int{}
	for i, h := range hits {
		ps[i] = rag.Passage{N: i + 1, Title: h.Chunk.Title, Page: 1, Text: h.Chunk.Text, VectorRank: h.VectorRank, BM25Rank: h.BM25Rank}
		doc[i+1] = int(binary.BigEndian.Uint32(h.Chunk.ID[:4]))
	}
	a, err := b.x.Answer(context.Background(), rag.Request{Question: q, Passages: ps}, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return a, ps, doc
}

var citedPiece = regexp.MustCompile(`(.+?) \[(\d+)\](?: |$)`)

// citedSentences are an answer's sentences and the passage each cites.
func citedSentences(content string) (texts []string, ns []int) {
	for _, m := range citedPiece.FindAllStringSubmatch(content, -1) {
		n, _ := strconv.Atoi(m[2])
		texts, ns = append(texts, strings.TrimSpace(m[1])), append(ns, n)
	}
	return texts, ns
}

// calibration tallies answers by confidence level.
type calibration struct {
	answers, right, sentences, relevantSentences map[string]int
}

func (c *calibration) add(level string, cited, relevant int) {
	c.answers[level]++
	c.sentences[level] += cited
	c.relevantSentences[level] += relevant
	if cited > 0 && 2*relevant >= cited {
		c.right[level]++
	}
}

func (c *calibration) rate(level string) float64 {
	if c.answers[level] == 0 {
		return 0
	}
	return float64(c.right[level]) / float64(c.answers[level])
}

// TestAnswerSet measures the extractive answerer on the labelled CISI
// answer set (AnswerSet): answer precision (the share of cited sentences
// that come from a judged-relevant document) and calibration (how often
// an answer of each confidence level is right: at least half its cited
// sentences from relevant documents). HIGH must be right more often than
// MEDIUM, and MEDIUM more often than LOW. Figures go to bench/RESULTS.md.
func TestAnswerSet(t *testing.T) {
	dir, err := CISIDir()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := LoadCISI(dir)
	if err != nil {
		t.Fatal(err)
	}
	queries, err := LoadCISIQueries(dir)
	if err != nil {
		t.Fatal(err)
	}
	set := AnswerSet(queries)
	if len(set) < 100 {
		t.Fatalf("%d labelled questions, want at least 100", len(set))
	}
	b := newAnswerBench(t, docs)
	cal := calibration{map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}}
	abstained, cited, relevant := 0, 0, 0
	for _, q := range set {
		a, ps, doc := b.ask(t, q.Text)
		level := rag.Confidence(a, ps)
		if len(a.Cited) == 0 {
			abstained++
			cal.add(level, 0, 0)
			continue
		}
		_, ns := citedSentences(a.Content)
		rel := 0
		for _, n := range ns {
			if q.Relevant[doc[n]] {
				rel++
			}
		}
		cited, relevant = cited+len(ns), relevant+rel
		cal.add(level, len(ns), rel)
	}
	var b2 strings.Builder
	fmt.Fprintf(&b2, "%d questions from %d judged CISI queries; %d answered, %d said nothing was found\n", len(set), len(queries), len(set)-abstained, abstained)
	fmt.Fprintf(&b2, "answer precision: %d of %d cited sentences from a relevant document (%.3f)\n", relevant, cited, float64(relevant)/float64(max(cited, 1)))
	fmt.Fprintf(&b2, "| confidence | answers | right | right rate | sentence precision |\n|---|---|---|---|---|\n")
	for _, l := range []string{"HIGH", "MEDIUM", "LOW"} {
		fmt.Fprintf(&b2, "| %s | %d | %d | %.3f | %.3f |\n", l, cal.answers[l], cal.right[l], cal.rate(l),
			float64(cal.relevantSentences[l])/float64(max(cal.sentences[l], 1)))
	}
	lowCited := cal.answers["LOW"] - abstained
	fmt.Fprintf(&b2, "LOW answers that cite: %d, right %d (%.3f)\n", lowCited, cal.right["LOW"], float64(cal.right["LOW"])/float64(max(lowCited, 1)))
	t.Log("\n" + b2.String())
	if !(cal.rate("HIGH") > cal.rate("MEDIUM") && cal.rate("MEDIUM") > cal.rate("LOW")) {
		t.Errorf("confidence is not calibrated: HIGH %.3f, MEDIUM %.3f, LOW %.3f", cal.rate("HIGH"), cal.rate("MEDIUM"), cal.rate("LOW"))
	}
}

// TestExtractiveNoRepeatedSentence: in 1,000 extractive answers (the
// labelled questions, then CISI titles as questions), no answer says a
// sentence twice, exactly or nearly (word-bigram Jaccard ≥ 0.5).
func TestExtractiveNoRepeatedSentence(t *testing.T) {
	dir, err := CISIDir()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := LoadCISI(dir)
	if err != nil {
		t.Fatal(err)
	}
	queries, err := LoadCISIQueries(dir)
	if err != nil {
		t.Fatal(err)
	}
	var qs []string
	for _, q := range AnswerSet(queries) {
		qs = append(qs, q.Text)
	}
	for _, d := range docs {
		qs = append(qs, d.Title)
	}
	qs = qs[:1000]
	b := newAnswerBench(t, docs)
	repeats, sentences, answered := 0, 0, 0
	for _, q := range qs {
		a, _, _ := b.ask(t, q)
		texts, _ := citedSentences(a.Content)
		if len(texts) > 0 {
			answered++
		}
		sentences += len(texts)
		if i, j, ok := repeated(texts); ok {
			repeats++
			t.Errorf("%q: %q repeats %q", q, texts[j], texts[i])
		}
	}
	t.Logf("1,000 answers (%d citing), %d sentences, %d with a repeated sentence", answered, sentences, repeats)
}

// repeated finds two sentences that are the same, or nearly.
func repeated(texts []string) (int, int, bool) {
	for j := range texts {
		for i := range j {
			if norm(texts[i]) == norm(texts[j]) || bigramJaccard(texts[i], texts[j]) >= 0.5 {
				return i, j, true
			}
		}
	}
	return 0, 0, false
}

func norm(s string) string {
	return strings.Join(strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }), " ")
}

func bigramJaccard(a, b string) float64 {
	set := func(s string) map[string]bool {
		w := strings.Fields(norm(s))
		out := map[string]bool{}
		for i := 1; i < len(w); i++ {
			out[w[i-1]+" "+w[i]] = true
		}
		return out
	}
	x, y := set(a), set(b)
	inter := 0
	for k := range x {
		if y[k] {
			inter++
		}
	}
	if len(x)+len(y)-inter == 0 {
		return 0
	}
	return float64(inter) / float64(len(x)+len(y)-inter)
}

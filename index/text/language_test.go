package text

import (
	"bytes"
	"math"
	"slices"
	"testing"
)

// mixed is a small index of English and German documents.
func mixed(t *testing.T) *Index {
	t.Helper()
	x, err := New()
	if err != nil {
		t.Fatal(err)
	}
	docs := map[ID]Doc{
		{1}: {Text: "Die Tonleiter in C-Dur: jeden Tag langsam üben, mit beiden Händen.", Language: "de"},
		{2}: {Text: "Practise the C major scale slowly every day, hands together.", Language: "en"},
		{3}: {Text: "Pianists die young, said nobody; practise the scales.", Language: ""},
		{4}: {Text: "Akkorde und Arpeggien: die Finger bleiben locker.", Language: "de"},
		{5}: {Text: "La gamme de do majeur se travaille lentement.", Language: "fr"},
	}
	if err := x.Batch(docs, nil); err != nil {
		t.Fatal(err)
	}
	return x
}

func ids(hits []Hit) []ID {
	out := make([]ID, len(hits))
	for i, h := range hits {
		out[i] = h.ID
	}
	return out
}

// A German document is found by a German query with inflected forms
// (German stemming), which English analysis alone would not find.
func TestGermanQueryFindsInflectedGermanDocument(t *testing.T) {
	x := mixed(t)
	if en, de := x.analyze("Tonleitern", English), x.analyze("Tonleiter", English); slices.Equal(en.terms, de.terms) {
		t.Fatalf("English analysis already meets the forms (%q): the test shows nothing", en.terms)
	}
	hits, err := x.Search("Tonleitern", 10, Scope{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].ID != (ID{1}) {
		t.Fatalf("hits %v, want the German document alone", ids(hits))
	}
	// French: "gammes" meets "gamme".
	if hits, _ := x.Search("gammes", 10, Scope{}); len(hits) != 1 || hits[0].ID != (ID{5}) {
		t.Errorf("French hits %v", ids(hits))
	}
	// An English query still finds English documents, stemmed as before.
	if hits, _ := x.Search("practising scales", 10, Scope{}); !slices.Equal(ids(hits), []ID{{2}, {3}}) && !slices.Equal(ids(hits), []ID{{3}, {2}}) {
		t.Errorf("English hits %v", ids(hits))
	}
}

// Each document is analysed in its own language: "die" is a German stop
// word, absent from the German documents' terms, and an English word,
// present in the English one.
func TestDocumentsAnalysedInTheirLanguage(t *testing.T) {
	x := mixed(t)
	hits, _ := x.Search("die", 10, Scope{})
	if !slices.Equal(ids(hits), []ID{{3}}) {
		t.Errorf("hits for die: %v, want the English document alone", ids(hits))
	}
}

// Scores follow the textbook formula when languages mix: each document is
// scored with the query's analysis in its own language, document
// frequencies count documents of that language holding the term, and N
// and the average length are the whole scope's.
func TestMixedLanguageScoresMatchFormula(t *testing.T) {
	x := mixed(t)
	texts := map[ID][2]string{
		{1}: {"Die Tonleiter in C-Dur: jeden Tag langsam üben, mit beiden Händen.", "de"},
		{2}: {"Practise the C major scale slowly every day, hands together.", "en"},
		{3}: {"Pianists die young, said nobody; practise the scales.", "en"},
		{4}: {"Akkorde und Arpeggien: die Finger bleiben locker.", "de"},
		{5}: {"La gamme de do majeur se travaille lentement.", "fr"},
	}
	const query = "Tonleitern scales Händen practise gamme"
	ana := map[ID]analyzed{}
	df := map[string]int{}
	var total float64
	for id, tl := range texts {
		a := x.analyze(tl[0], tl[1])
		ana[id] = a
		total += float64(a.n)
		for _, k := range a.terms {
			df[k]++
		}
	}
	N, avg := float64(len(texts)), total/float64(len(texts))
	want := map[ID]float64{}
	for _, lang := range []string{"en", "de", "fr"} {
		q := x.analyze(query, lang)
		for id, a := range ana {
			for j, k := range q.terms {
				i := slices.Index(a.terms, k)
				if i < 0 {
					continue
				}
				d, tf := float64(df[k]), float64(a.tfs[i])
				idf := math.Log(1 + (N-d+0.5)/(d+0.5))
				want[id] += idf * (K1 + 1) * float64(q.tfs[j]) * tf / (tf + K1*(1-B+B*float64(a.n)/avg))
			}
		}
	}
	hits, err := x.Search(query, 10, Scope{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != len(want) {
		t.Fatalf("%d hits, want %d (%v)", len(hits), len(want), want)
	}
	for _, h := range hits {
		if w := want[h.ID]; math.Abs(h.Score-w) > 1e-4*w {
			t.Errorf("document %v: score %g, formula %g", h.ID[0], h.Score, w)
		}
	}
}

// The languages live in the term keys: a snapshot round trip keeps German
// queries working, and a stream naming a language this node has no
// analyzer for is refused.
func TestSnapshotKeepsLanguages(t *testing.T) {
	x := mixed(t)
	var buf bytes.Buffer
	if _, err := x.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	y, err := ReadFrom(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if hits, _ := y.Search("Tonleitern", 10, Scope{}); len(hits) != 1 || hits[0].ID != (ID{1}) {
		t.Errorf("after restore: %v", ids(hits))
	}
	bad := bytes.Replace(buf.Bytes(), []byte("de"+langSep), []byte("xx"+langSep), 1)
	if _, err := ReadFrom(bytes.NewReader(bad)); err == nil {
		t.Error("a term of an unknown language accepted")
	}
}

// BenchmarkAnalyzeQuery prices a query's analysis alone: once (an English
// index) against once per language (an index holding all seven).
func BenchmarkAnalyzeQuery(b *testing.B) {
	const para = "What problems and concerns are there in making up descriptive titles? What difficulties are involved in automatically retrieving articles from approximate titles?"
	for _, langs := range []string{"english-only", "seven-languages"} {
		x, _ := New()
		docs := map[ID]Doc{{0}: {Text: "scales"}}
		if langs != "english-only" {
			for i, l := range Languages() {
				docs[ID{byte(i + 1)}] = Doc{Text: "scales", Language: l}
			}
		}
		x.Batch(docs, nil)
		for name, q := range map[string]string{"3words": "descriptive titles retrieving", "paragraph": para} {
			b.Run(langs+"/"+name, func(b *testing.B) {
				for b.Loop() {
					x.analyzeQuery(q)
				}
			})
		}
	}
}

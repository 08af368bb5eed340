package rag

import (
	"context"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func mustExtractive(t *testing.T) *Extractive {
	t.Helper()
	x, err := NewExtractive()
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func answer(t *testing.T, x *Extractive, q string, ps []Passage) Answer {
	t.Helper()
	a, err := x.Answer(context.Background(), Request{Question: q, Passages: ps}, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var citeMark = regexp.MustCompile(`\s*\[\d+\]`)

// answerSentences are an answer's sentences without their citations.
func answerSentences(content string) []string {
	var out []string
	for _, s := range citeMark.Split(content, -1) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// The bug of issue 16: "Work on voicing and pedaling. [2] Work on voicing
// and pedaling. [2]". A sentence said twice in a passage, or nearly the
// same in another, is answered once.
func TestExtractiveNeverRepeats(t *testing.T) {
	x := mustExtractive(t)
	ps := []Passage{
		{N: 1, Text: "Scales come first each morning. Practise them slowly."},
		{N: 2, Text: "Work on voicing and pedaling. Listen for the top line of each chord. Work on voicing and pedaling."},
		{N: 3, Text: "Work on your voicing and pedaling!"},
	}
	a := answer(t, x, "How do I work on voicing and pedaling?", ps)
	got := answerSentences(a.Content)
	for i := range got {
		for j := range i {
			if jaccard(shingles(got[i]), shingles(got[j])) >= dupJaccard || strings.EqualFold(got[i], got[j]) {
				t.Fatalf("repeated sentence in %q", a.Content)
			}
		}
	}
	if !strings.Contains(a.Content, "Work on voicing and pedaling. [2]") {
		t.Errorf("answer %q", a.Content)
	}
}

// The other bug of issue 16: sentences that each share one word with
// the question were answered, and rated HIGH. Each of these holds one
// term of three: nothing relevant was found, and it says so.
func TestExtractiveOneSharedWordIsNoAnswer(t *testing.T) {
	x := mustExtractive(t)
	ps := []Passage{
		{N: 1, Text: "He wrote letters to his sister every week.", VectorRank: 1, BM25Rank: 1},
		{N: 2, Text: "Moonlight fell across the practice room.", VectorRank: 2, BM25Rank: 2},
		{N: 3, Text: "A sonata usually has three movements.", VectorRank: 3, BM25Rank: 3},
	}
	a := answer(t, x, "Who wrote the Moonlight Sonata?", ps)
	if c := Confidence(a, ps); c == "HIGH" || a.Content != NothingFound || len(a.Cited) != 0 {
		t.Errorf("answer %q cites %v, confidence %s", a.Content, a.Cited, c)
	}
}

// Terms are weighted by rarity: "pedal" is in every sentence, so a
// sentence holding only it is not evidence; the one that holds the rare
// "nocturne" is.
func TestExtractiveWeighsRareTerms(t *testing.T) {
	x := mustExtractive(t)
	ps := []Passage{
		{N: 1, Text: "The pedal matters in all music. Use the pedal with care. A pedal can blur."},
		{N: 2, Text: "In a Chopin nocturne, change the pedal with each new bass note. The pedal is half down."},
	}
	a := answer(t, x, "How should I pedal a Chopin nocturne?", ps)
	if !strings.Contains(a.Content, "In a Chopin nocturne, change the pedal with each new bass note. [2]") {
		t.Errorf("answer %q", a.Content)
	}
	for _, weak := range []string{"matters in all music", "with care", "can blur", "half down"} {
		if strings.Contains(a.Content, weak) {
			t.Errorf("a sentence holding only the common term was answered: %q", a.Content)
		}
	}
}

// The answer reads in the sources' order: by passage, then by position.
func TestExtractiveReadingOrder(t *testing.T) {
	x := mustExtractive(t)
	ps := []Passage{
		{N: 1, Text: "Relax the wrist before the leap. Then the wrist drops into the leap's key."},
		{N: 2, Text: "A leap needs the wrist loose, and the eyes ahead."},
	}
	a := answer(t, x, "wrist leap", ps)
	i, j, k := strings.Index(a.Content, "Relax the wrist"), strings.Index(a.Content, "Then the wrist"), strings.Index(a.Content, "A leap needs")
	if i < 0 || j < 0 || k < 0 || !(i < j && j < k) {
		t.Errorf("order: %q", a.Content)
	}
}

// A question about what a teacher said is answered from her note: "say"
// frames the question (issue 18's journey).
func TestExtractiveAnswersFromATeachersNote(t *testing.T) {
	x, err := NewExtractive()
	if err != nil {
		t.Fatal(err)
	}
	note := "In the nocturne keep the pedalling shallow: change the pedal on every new harmony, never through the melody's rests."
	a, err := x.Answer(t.Context(), Request{Question: "What did my teacher say about the pedalling in the nocturne?",
		Passages: []Passage{{N: 1, Title: "Nocturne op. 9 no. 2", Page: 3, Text: note}}}, func(string) error { return nil })
	if err != nil || !strings.Contains(a.Content, "every new harmony") || !strings.Contains(a.Content, "[1]") {
		t.Fatalf("answer %+v, %v", a, err)
	}
}

// splitEnds splits as the regular expression it replaced did, on random
// texts of sentence ends, white space, NULs and letters.
func TestSplitEndsAsTheRegexp(t *testing.T) {
	re := regexp.MustCompile(`([.!?])\s+`)
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{".", "!", "?", " ", "\t", "\r", "\f", "\x00", "a", "é", "B", ",", "\v"}
	for range 20000 {
		var b strings.Builder
		for range r.IntN(24) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		s := b.String()
		want := strings.Split(re.ReplaceAllString(s, "$1\x00"), "\x00")
		if got := splitEnds(s); !slices.Equal(got, want) {
			t.Fatalf("splitEnds(%q) = %q, want %q", s, got, want)
		}
	}
}

// TestShinglesOnlyForEvidence: the sentences' shingles are made for the
// candidates evidence keeps only (candidates makes none), and choose picks
// what it picked when every candidate had its shingles from the start, on
// 300 random questions over random passages.
func TestShinglesOnlyForEvidence(t *testing.T) {
	x := mustExtractive(t)
	vocab := strings.Fields("scales chords pedal voicing tempo rubato wrist thumb legato phrase melody bass practice slowly " +
		"morning hands octave trill the a of and with each")
	r := rand.New(rand.NewPCG(20, 9))
	sentence := func() string {
		w := make([]string, 4+r.IntN(8))
		for i := range w {
			w[i] = vocab[r.IntN(len(vocab))]
		}
		return strings.Join(w, " ") + "."
	}
	kept := 0
	for range 300 {
		var ps []Passage
		for n := range 1 + r.IntN(6) {
			var ss []string
			for range 1 + r.IntN(5) {
				ss = append(ss, sentence())
			}
			ps = append(ps, Passage{N: n + 1, Text: strings.Join(ss, " ")})
		}
		cands, _ := x.candidates(x.questionTerms("How do I "+sentence()), ps)
		for _, c := range cands {
			if c.shingles != nil {
				t.Fatalf("candidates made the shingles of %q", c.text)
			}
		}
		eager := slices.Clone(cands)
		for i := range eager {
			eager[i].shingles = shingles(eager[i].text)
		}
		want, got := choose(evidence(eager)), choose(evidence(cands))
		if len(want) != len(got) {
			t.Fatalf("chose %d sentences, %d with every shingle made", len(got), len(want))
		}
		for i := range want {
			if want[i].text != got[i].text || want[i].n != got[i].n {
				t.Fatalf("chose %q [%d], with every shingle made %q [%d]", got[i].text, got[i].n, want[i].text, want[i].n)
			}
		}
		kept += len(got)
	}
	if kept == 0 {
		t.Fatal("nothing chosen: the comparison checks nothing")
	}
}

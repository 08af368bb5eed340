package rag

import (
	"context"
	"strings"
	"testing"
)

func TestExtractive(t *testing.T) {
	x, err := NewExtractive()
	if err != nil {
		t.Fatal(err)
	}
	passages := []Passage{
		{N: 1, Page: 3, Text: "Chopin wrote twenty-one nocturnes. The left hand carries wide arpeggios.", VectorRank: 1, BM25Rank: 2},
		{N: 2, Page: 7, Text: "Change the damper pedal just after each new chord. Pedalling too early blurs the harmony.\nScales come later.", VectorRank: 2, BM25Rank: 1},
		{N: 3, Page: 9, Text: "Half-pedalling lets some damping through.", BM25Rank: 3},
	}
	var deltas []string
	ans, err := x.Answer(context.Background(), Request{Question: "When should I change the damper pedal?", Passages: passages},
		func(d string) error { deltas = append(deltas, d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ans.Content, "Change the damper pedal just after each new chord. [2]") {
		t.Errorf("answer %q", ans.Content)
	}
	if strings.Contains(ans.Content, "nocturnes") {
		t.Errorf("an unrelated sentence was picked: %q", ans.Content)
	}
	if strings.Join(deltas, "") != ans.Content || ans.Model != ExtractiveModel {
		t.Errorf("deltas %q vs %q", deltas, ans.Content)
	}
	if len(ans.Cited) == 0 || ans.Cited[0] != 2 || ans.Coverage < 0.99 {
		t.Errorf("cited %v coverage %.2f", ans.Cited, ans.Coverage)
	}
	if c := Confidence(ans, passages); c != "HIGH" && c != "MEDIUM" {
		t.Errorf("confidence %s", c)
	}

	// Nothing relevant: said plainly, LOW.
	ans, _ = x.Answer(context.Background(), Request{Question: "What is the capital of France?", Passages: passages}, func(string) error { return nil })
	if ans.Content != NothingFound || Confidence(ans, passages) != "LOW" {
		t.Errorf("irrelevant question: %q", ans.Content)
	}
	ans, _ = x.Answer(context.Background(), Request{Question: "damper pedal", Passages: nil}, func(string) error { return nil })
	if ans.Content != NothingFound {
		t.Errorf("no passages: %q", ans.Content)
	}
	// A cancelled request stops.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := x.Answer(ctx, Request{Question: "damper pedal chord", Passages: passages}, func(string) error { return nil }); err == nil {
		t.Error("a cancelled answer went on")
	}
}

func TestConfidence(t *testing.T) {
	for _, c := range []struct {
		a    Answer
		want string
	}{
		{Answer{}, "LOW"},
		{Answer{Cited: []int{1, 2}, Coverage: 0.15, Sentences: 2}, "LOW"},
		{Answer{Cited: []int{1, 2}, Coverage: 0.9, Sentences: 4}, "HIGH"}, // four sentences are no longer a sign of thin evidence
		{Answer{Cited: []int{1}, Coverage: 0.9, Sentences: 2}, "MEDIUM"},
		{Answer{Cited: []int{1, 2}, Coverage: 0.35, Sentences: 2}, "MEDIUM"},
		{Answer{Cited: []int{1, 2}, Coverage: 0.4, Sentences: 2}, "HIGH"},
		{Answer{Cited: []int{1, 2, 3}, Coverage: 0.8, Sentences: 3}, "HIGH"},
		{Answer{Cited: []int{1, 2, 3, 4}, Coverage: 0.8}, "MEDIUM"}, // a hosted model citing four
		{Answer{Cited: []int{1, 2}, Coverage: 0.5}, "HIGH"},
	} {
		if got := Confidence(c.a, nil); got != c.want {
			t.Errorf("%+v: %s, want %s", c.a, got, c.want)
		}
	}
}

func TestSanitize(t *testing.T) {
	allow := []string{"imslp.org"}
	for in, want := range map[string]string{
		"See ![score](https://evil.example/x.png) now":         "See score now",
		"See [the score](https://imslp.org/wiki/Nocturne) now": "See [the score](https://imslp.org/wiki/Nocturne) now",
		"See [the score](https://www.imslp.org/x) now":         "See [the score](https://www.imslp.org/x) now",
		"Go to [this](http://phish.example/login).":            "Go to this.",
		"Visit https://phish.example/a?b=c, then practise.":    "Visit [link removed], then practise.",
		"Visit https://imslp.org/wiki/Chopin.":                 "Visit https://imslp.org/wiki/Chopin.",
		"[x](javascript:alert)":                                "x",
		"Plain text with no links [1].":                        "Plain text with no links [1].",
		"Lookalike [x](https://imslp.org.evil.example/) gone.": "Lookalike x gone.",
	} {
		if got := Sanitize(in, allow); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

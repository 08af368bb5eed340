package bench

import (
	"fmt"
	"regexp"
	"strings"
)

// LabelledQuestion is a question with the documents an answer to it may
// cite (CISI's judgements of the query it comes from).
type LabelledQuestion struct {
	// ID is "Q<query>.<sentence>": the CISI query and the sentence of it.
	ID       string
	Text     string
	Relevant map[int]bool
}

var querySentenceEnd = regexp.MustCompile(`[.?!;]\s+`)

// minQuestionWords is the least words a query sentence needs to become a
// question.
const minQuestionWords = 5

// AnswerSet builds the labelled answer set from CISI, deterministically:
// each judged query (in file order) is split at sentence ends (. ? ! ;)
// and every sentence of at least minQuestionWords words becomes a
// question whose expected sources are the query's judged documents; a
// query with no such sentence becomes one question as a whole. Nothing is
// sampled, so the set is the same on every run and every machine.
func AnswerSet(queries []CISIQuery) []LabelledQuestion {
	var out []LabelledQuestion
	for _, q := range queries {
		n := 0
		for _, s := range querySentenceEnd.Split(strings.Join(strings.Fields(q.Text), " "), -1) {
			s = strings.TrimSpace(s)
			if len(strings.Fields(s)) < minQuestionWords {
				continue
			}
			n++
			out = append(out, LabelledQuestion{ID: fmt.Sprintf("Q%d.%d", q.ID, n), Text: s, Relevant: q.Relevant})
		}
		if n == 0 {
			out = append(out, LabelledQuestion{ID: fmt.Sprintf("Q%d.1", q.ID), Text: q.Text, Relevant: q.Relevant})
		}
	}
	return out
}

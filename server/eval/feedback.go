package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Feedback is one rated chat answer, as GET /api/chat/feedback lists it.
type Feedback struct {
	MessageID string `json:"message_id"`
	Question  string `json:"question"`
	Rating    string `json:"rating"` // "up" or "down"
	Sources   []struct {
		DocumentID string `json:"document_id"`
	} `json:"sources"`
}

// FeedbackJudgements turns rated answers into judgements: each answer
// message is a query (its question), and every document it cited is
// relevant (1) when the answer was rated up, not relevant (0) when down.
func FeedbackJudgements(items []Feedback) ([]Query, Qrels) {
	var qs []Query
	qrels := Qrels{}
	for _, f := range items {
		rel := 0
		if f.Rating == "up" {
			rel = 1
		}
		if len(f.Sources) == 0 || strings.TrimSpace(f.Question) == "" {
			continue
		}
		qs = append(qs, Query{ID: f.MessageID, Text: strings.Join(strings.Fields(f.Question), " ")})
		qrels[f.MessageID] = map[string]int{}
		for _, s := range f.Sources {
			qrels[f.MessageID][s.DocumentID] = rel
		}
	}
	return qs, qrels
}

// FetchFeedback reads every rated answer from a node's admin API
// (GET /api/chat/feedback, page by page).
func FetchFeedback(ctx context.Context, client *http.Client, base, token string) ([]Feedback, error) {
	var all []Feedback
	cursor := ""
	for {
		page, next, err := feedbackPage(ctx, client, base, token, cursor)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		cursor = next
	}
}

func feedbackPage(ctx context.Context, client *http.Client, base, token, cursor string) ([]Feedback, string, error) {
	u := strings.TrimRight(base, "/") + "/api/chat/feedback?limit=100"
	if cursor != "" {
		u += "&cursor=" + url.QueryEscape(cursor)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", fmt.Errorf("eval: feedback: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("eval: feedback: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, "", fmt.Errorf("eval: feedback: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var page struct {
		Items      []Feedback `json:"items"`
		NextCursor *string    `json:"next_cursor"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, "", fmt.Errorf("eval: feedback: %w", err)
	}
	next := ""
	if page.NextCursor != nil {
		next = *page.NextCursor
	}
	return page.Items, next, nil
}
